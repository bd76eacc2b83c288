"""The pre-submission checklist: what to look at again before exporting to Moodle.

Each item answers one thing TAs complained about in real feedback, and names the page where
it is fixed. Only one thing blocks the export: a notebook that would not validate (Moodle
would accept it, but the TA could not open it). Everything else is a warning: the student
decides, and nothing they wrote is ever changed.

The text heuristics come from ``workbook.quality`` and the tutorial-log rules from
``workbook.tutorials.rules``; this module only collects them and adds the checks on the code of
``predict_next_tokens`` (comments, globals), which it reads without running anything.
"""

from __future__ import annotations

import ast
import builtins
import dis
import io
import tokenize
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbook import quality
from workbook.exercise.content import ALLOWED_GLOBALS
from workbook.submission.notebook import build_notebook, validate_notebook
from workbook.submission.snapshot import ExportError, Submission, gather_submission
from workbook.tutorials import rules

if TYPE_CHECKING:
    from db import Store, TutorialLog

__all__ = [
    "BLOCKER",
    "PAGE_ANALYSIS",
    "PAGE_NOTEBOOK",
    "PAGE_TUTORIALS",
    "WARNING",
    "Checklist",
    "ChecklistItem",
    "checklist_for",
    "function_comment_count",
    "function_globals",
    "run_checklist",
]

WARNING = "warning"
BLOCKER = "blocker"
PAGE_NOTEBOOK = "pages/notebook.py"
PAGE_ANALYSIS = "pages/analysis.py"
PAGE_TUTORIALS = "pages/tutorials.py"

FUNCTION_NAME = "predict_next_tokens"
# IPython puts these in the kernel's builtins, so check_global_vars never reports them.
_KERNEL_BUILTINS = frozenset({"display", "get_ipython"})
_LINK_LABELS = {
    PAGE_NOTEBOOK: "Open the notebook",
    PAGE_ANALYSIS: "Open the Analysis questions",
    PAGE_TUTORIALS: "Open the tutorial log",
}


@dataclass(frozen=True)
class ChecklistItem:
    """One thing to look at before submitting.

    Attributes:
        code: a stable id (``"step_not_passing"``, ``"q1_no_tokens"`` ...), for tests.
        severity: ``"warning"`` (export allowed) or ``"blocker"`` (export refused).
        message: what to look at, written for the student.
        page: the page where it is fixed (a path ``st.page_link`` accepts).
        target: which step, question or tutorial slot it is about (``None``: the whole).
    """

    code: str
    severity: str
    message: str
    page: str
    target: str | None = None

    @property
    def link_label(self) -> str:
        """The text of the link to ``page``."""
        return _LINK_LABELS.get(self.page, "Open the page")


@dataclass(frozen=True)
class Checklist:
    """Every item found; an empty checklist means the submission looks complete."""

    items: tuple[ChecklistItem, ...] = ()

    @property
    def blockers(self) -> tuple[ChecklistItem, ...]:
        return tuple(item for item in self.items if item.severity == BLOCKER)

    @property
    def warnings(self) -> tuple[ChecklistItem, ...]:
        return tuple(item for item in self.items if item.severity == WARNING)

    @property
    def can_export(self) -> bool:
        """Whether nothing blocks the export (warnings do not)."""
        return not self.blockers

    @property
    def codes(self) -> set[str]:
        return {item.code for item in self.items}


# --- reading predict_next_tokens without running it ---------------------------------------
def _function_code(code: str, name: str) -> types.CodeType | None:
    """The code object of the top-level function ``name`` defined in ``code``."""
    try:
        module = compile(code, "<cell>", "exec")
    except (SyntaxError, ValueError):
        return None
    for const in module.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == name:
            return const
    return None


def function_globals(code: str, name: str = FUNCTION_NAME) -> set[str] | None:
    """Global names the function ``name`` in ``code`` reads, builtins left out.

    Nested code (comprehensions, inner functions) counts too: a comprehension reading the
    notebook's ``phrase`` is exactly the bug ``check_global_vars`` is there to catch.

    Returns:
        The names, or ``None`` when ``code`` does not define ``name`` (or does not parse).
    """
    func = _function_code(code, name)
    if func is None:
        return None
    names: set[str] = set()
    pending = [func]
    while pending:
        current = pending.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                names.add(str(instruction.argval).removeprefix("NULL + ").split(" ")[0])
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return {n for n in names if not hasattr(builtins, n) and n not in _KERNEL_BUILTINS}


def function_comment_count(code: str, name: str = FUNCTION_NAME) -> int | None:
    """How many ``#`` comments the body of the top-level function ``name`` has.

    Returns:
        The count, or ``None`` when ``code`` does not define ``name`` (or does not parse).
    """

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    node = next(
        (
            n
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
        ),
        None,
    )
    if node is None:
        return None
    first, last = node.lineno, node.end_lineno or node.lineno
    count = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT and first <= token.start[0] <= last:
                count += 1
    except (tokenize.TokenError, IndentationError):
        return None
    return count


# --- the checklist -----------------------------------------------------------------------
def _step_items(submission: Submission) -> list[ChecklistItem]:
    items = []
    for step in submission.steps:
        if step.given or step.passed:
            continue
        if not step.ran:
            message = f"{step.title}: not run yet (or edited since the last run)."
        elif step.passed is None:
            message = f"{step.title}: ran, but its check did not run. Run it again."
        else:
            detail = f" {step.message}" if step.message else ""
            message = f"{step.title}: does not pass its check yet.{detail}"
        items.append(ChecklistItem("step_not_passing", WARNING, message, PAGE_NOTEBOOK, step.id))
    return items


def _function_items(submission: Submission) -> list[ChecklistItem]:
    """Comments and globals of ``predict_next_tokens``, wherever the student defined it."""
    defining = [
        step for step in submission.steps if _function_code(step.code, FUNCTION_NAME) is not None
    ]
    if not defining:
        return [
            ChecklistItem(
                "function_missing",
                WARNING,
                f"`{FUNCTION_NAME}` is not written yet (step 6).",
                PAGE_NOTEBOOK,
            )
        ]
    step = defining[-1]
    items = []
    if not function_comment_count(step.code):
        items.append(
            ChecklistItem(
                "function_no_comments",
                WARNING,
                f"`{FUNCTION_NAME}` has no comments. Add a short comment on what each step "
                "does: TAs look for them.",
                PAGE_NOTEBOOK,
                step.id,
            )
        )
    extra = sorted((function_globals(step.code) or set()) - set(ALLOWED_GLOBALS))
    if extra:
        items.append(
            ChecklistItem(
                "function_globals",
                WARNING,
                f"`{FUNCTION_NAME}` reads variables from outside the function "
                f"({', '.join(extra)}), so `check_global_vars` fails. Compute them inside "
                "the function from its arguments.",
                PAGE_NOTEBOOK,
                step.id,
            )
        )
    return items


def _answer_items(submission: Submission) -> list[ChecklistItem]:
    items = []
    for question in submission.questions:
        for hint in quality.answer_hints(question.id, question.answer):
            code = "answer_empty" if hint.code == "answer_missing" else hint.code
            message = (
                f"{question.label} is not answered yet."
                if code == "answer_empty"
                else f"{question.label}: {hint.message}"
            )
            items.append(ChecklistItem(code, WARNING, message, PAGE_ANALYSIS, question.id))
    return items


def _tutorial_items(
    log: TutorialLog | Any, categories: Iterable[str] | None
) -> list[ChecklistItem]:
    items = []
    for issue in rules.check_log(log, categories):
        if issue.level == "tip":
            continue
        items.append(ChecklistItem(issue.code, WARNING, issue.message, PAGE_TUTORIALS, issue.slot))
    return items


def _notebook_items(submission: Submission) -> list[ChecklistItem]:
    try:
        validate_notebook(build_notebook(submission))
    except ExportError as exc:
        return [ChecklistItem("notebook_invalid", BLOCKER, str(exc), PAGE_NOTEBOOK)]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A stored output nbformat cannot even read: same remedy as an invalid one.
        return [
            ChecklistItem(
                "notebook_invalid",
                BLOCKER,
                f"The notebook could not be built ({exc}). Re-run your cells on the Notebook "
                "page, then export again.",
                PAGE_NOTEBOOK,
            )
        ]
    return []


def run_checklist(
    submission: Submission,
    log: TutorialLog | Any,
    *,
    categories: Iterable[str] | None = None,
) -> Checklist:
    """Check a gathered submission and its tutorial log.

    Args:
        submission: the work as ``workbook.submission.snapshot.gather_submission`` returns it.
        log: the student's ``TutorialLog`` (anything with ``path, entries, project``).
        categories: the tutorial sections a student may pick (see ``rules.check_log``).

    Returns:
        The checklist: blockers first, then the notebook, tutorial log and analysis warnings.
    """
    items = [
        *_notebook_items(submission),
        *_tutorial_items(log, categories),
        *_step_items(submission),
        *_function_items(submission),
        *_answer_items(submission),
    ]
    items.sort(key=lambda item: item.severity != BLOCKER)
    return Checklist(tuple(items))


def checklist_for(
    store: Store, user_id: int, *, model_name: str, categories: Iterable[str] | None = None
) -> Checklist:
    """Gather a student's work from the store and check it.

    Raises:
        workbook.submission.snapshot.ExportError: the account does not exist.
    """
    submission = gather_submission(store, user_id, model_name=model_name)
    return run_checklist(submission, store.tutorial_log(user_id), categories=categories)

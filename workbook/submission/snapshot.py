"""The snapshot of a student's work: what one export is built from, gathered once.

``gather_submission`` reads a student's latest work from the store into a ``Submission``
(plain frozen data). The notebook, the online text and the checklist are all pure functions of
it, so they describe the same snapshot, and tests can build a ``Submission`` by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbook.errors import WorkbookError

if TYPE_CHECKING:
    from db import Store

__all__ = [
    "DEFAULT_TITLE",
    "ExportError",
    "QuestionContent",
    "ReflectionContent",
    "StepContent",
    "Submission",
    "gather_submission",
]

DEFAULT_TITLE = "Logits in Causal Language Models"


class ExportError(WorkbookError):
    """The submission cannot be exported as it is; the message says what to fix."""


@dataclass(frozen=True)
class StepContent:
    """One code cell of the notebook: a step's text and the student's latest revision.

    Attributes:
        id: the step id (``"setup"``, ``"step1"`` ...); also the cell id.
        title: the step's heading.
        instructions: markdown shown above the code.
        code: the code as last saved (the given code for a given cell).
        outputs: nbformat output dicts of the latest run; empty if never run or edited since.
        ran: whether the latest revision holds the result of a run.
        passed: the check's verdict (``None``: not checked, e.g. never run or no check).
        message: the check's message, if any.
        given: a cell the course provides (setup), not graded.
    """

    id: str
    title: str
    instructions: str
    code: str
    outputs: tuple[dict[str, Any], ...] = ()
    ran: bool = False
    passed: bool | None = None
    message: str | None = None
    given: bool = False


@dataclass(frozen=True)
class QuestionContent:
    """An Analysis question and the student's latest answer (``""`` when none)."""

    id: str
    prompt: str
    answer: str = ""
    title: str = ""

    @property
    def label(self) -> str:
        """The short name students and TAs use, e.g. ``Q1``."""
        return self.id.upper()

    @property
    def heading(self) -> str:
        """The question's heading, e.g. ``Q1. The shape of the logits``."""
        return self.title or f"{self.label}."


@dataclass(frozen=True)
class ReflectionContent:
    """One entry of the tutorial log: a tutorial (slot ``"1"``/``"2"``) or the mini-project.

    Attributes:
        slot: ``"1"``, ``"2"`` or ``"project"``.
        title: the tutorial's title, or what was built for the project.
        category: the tutorials-site menu section (empty for the project).
        url: the tutorial's address or the project's link.
        details: extra facts as ``(label, value)`` pairs (dates, time spent, notebook).
        text: the reflection paragraph as typed.
    """

    slot: str
    title: str
    category: str = ""
    url: str = ""
    details: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def heading(self, escape: Callable[[str], str] = str) -> str:
        """The entry's heading, e.g. ``Tutorial 1: Tensors``, its title on one line.

        Args:
            escape: applied to the title as typed (e.g. to keep it literal in Markdown).
        """
        title = " ".join(self.title.split())
        if self.slot == "project":
            return f"Mini-project: {escape(title) if title else '(no description)'}"
        return f"Tutorial {self.slot}: {escape(title) if title else '(untitled)'}"


@dataclass(frozen=True)
class Submission:
    """Everything that goes into one export, gathered once from the store.

    Attributes:
        student_name: the name on the account.
        model_name: the course's model the outputs were computed with.
        title: the notebook's title.
        introduction: markdown under the title.
        steps: the setup cell then steps 1-6, in order.
        questions: Q1-Q3, in order.
        tutorial_path: ``"tutorials"``, ``"project"`` or ``None`` (not chosen yet).
        reflections: the log's entries, in slot order.
        work_updated_at: when the newest piece of work was saved (``None``: nothing yet).
    """

    student_name: str
    model_name: str
    title: str = DEFAULT_TITLE
    introduction: str = ""
    steps: tuple[StepContent, ...] = ()
    questions: tuple[QuestionContent, ...] = ()
    tutorial_path: str | None = None
    reflections: tuple[ReflectionContent, ...] = field(default_factory=tuple)
    work_updated_at: datetime | None = None

    @property
    def tutorial_log_statement(self) -> str:
        """The line that opens the tutorial log on the project path (``""`` otherwise)."""
        if self.tutorial_path == "project":
            return "I did the classifier-from-scratch mini-project instead of two tutorials."
        return ""

    @property
    def tutorial_log_placeholder(self) -> str:
        """What stands for an empty tutorial log (``""`` when there are entries)."""
        if self.reflections:
            return ""
        if self.tutorial_path == "project":
            return "(mini-project not logged)"
        return "(no tutorials logged)"


def gather_submission(store: Store, user_id: int, *, model_name: str) -> Submission:
    """Read a student's latest work from the store into a ``Submission``.

    Args:
        store: the workbook's store.
        user_id: the student.
        model_name: the course's model (``Settings.model_name``).

    Raises:
        ExportError: the account does not exist.
    """
    from db import NotFoundError
    from workbook.exercise import content

    try:
        user = store.user(user_id)
    except NotFoundError as exc:
        raise ExportError("That account no longer exists.") from exc
    cells = store.cells_for(user_id)
    answers = store.answers_for(user_id)
    log = store.tutorial_log(user_id)
    stamps: list[datetime] = []

    steps = []
    for step in content.steps(model_name):
        saved = cells.get(step.id)
        # A given cell always shows the course's code; a student cell their latest save.
        code = step.starter_code if step.given or saved is None else saved.code
        if saved is not None:
            stamps.append(saved.created_at)
        ran = saved is not None and (saved.ran_at is not None or bool(saved.outputs))
        steps.append(
            StepContent(
                id=step.id,
                title=step.title,
                instructions=step.instructions,
                code=code,
                outputs=tuple(saved.outputs) if ran else (),
                ran=ran,
                passed=saved.passed if saved is not None else None,
                message=saved.message if saved is not None else None,
                given=step.given,
            )
        )

    questions = []
    for question in content.questions():
        revision = answers.get(question.id)
        if revision is not None:
            stamps.append(revision.created_at)
        questions.append(
            QuestionContent(
                id=question.id,
                prompt=question.prompt,
                answer=revision.text if revision is not None else "",
                title=question.title,
            )
        )

    reflections = []
    if log.path == "project" and log.project is not None:
        project = log.project
        stamps.append(project.created_at)
        details = (("Notebook", project.notebook_name),) if project.notebook_name else ()
        reflections.append(
            ReflectionContent(
                slot="project",
                title=project.description,
                url=project.link,
                details=details,
                text=project.reflection,
            )
        )
    elif log.path != "project":
        for slot in sorted(log.entries):
            entry = log.entries[slot]
            stamps.append(entry.created_at)
            details = []
            if entry.dates:
                details.append(("Dates", ", ".join(entry.dates)))
            if entry.minutes:
                details.append(("Time spent", f"{entry.minutes} minutes"))
            reflections.append(
                ReflectionContent(
                    slot=slot,
                    title=entry.title,
                    category=entry.category,
                    url=entry.url,
                    details=tuple(details),
                    text=entry.reflection,
                )
            )

    return Submission(
        student_name=user.name,
        model_name=model_name,
        title=DEFAULT_TITLE,
        introduction=content.INTRODUCTION,
        steps=tuple(steps),
        questions=tuple(questions),
        tutorial_path=log.path,
        reflections=tuple(reflections),
        work_updated_at=max(stamps) if stamps else None,
    )

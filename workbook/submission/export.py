"""The Moodle bundle: the notebook, the online-text answers (HTML and plain text), the zip.

A student submits two things in Moodle: the notebook ``u9n1-lm-logits.ipynb`` as a file, and
the Analysis answers pasted into the online-text box. This module builds both from what the
store holds, plus a how-to, and packs them in one zip.

The work is first gathered into a ``Submission`` (plain frozen data); every builder below is a
pure function of it, so the notebook, the texts and the checklist (``workbook.submission.checklist``)
all describe the same snapshot, and tests can build a ``Submission`` by hand.

Determinism: re-exporting unchanged work gives the same notebook content. Cell ids come from
step and question ids, execution counts are numbered in notebook order, and the only
timestamp (the build time) lives in the notebook's metadata (``VOLATILE_METADATA``).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import nbformat
from nbformat import v4
from nbformat.validator import NotebookValidationError

from workbook.errors import WorkbookError

if TYPE_CHECKING:
    from db import Store

__all__ = [
    "BUNDLE_FILES",
    "NOTEBOOK_NAME",
    "VOLATILE_METADATA",
    "Bundle",
    "ExportError",
    "QuestionContent",
    "ReflectionContent",
    "StepContent",
    "Submission",
    "build_bundle",
    "build_notebook",
    "bundle_file_name",
    "canonical_notebook",
    "export_for",
    "gather_submission",
    "how_to_submit",
    "moodle_html",
    "moodle_text",
    "notebook_bytes",
    "safe_file_name",
    "validate_notebook",
    "verbatim_markdown",
]

# The file name the course asks for; Moodle submissions are matched by it.
NOTEBOOK_NAME = "u9n1-lm-logits.ipynb"
HTML_NAME = "moodle-text.html"
TEXT_NAME = "moodle-text.txt"
HOWTO_NAME = "HOW-TO-SUBMIT.txt"
BUNDLE_FILES = (NOTEBOOK_NAME, HTML_NAME, TEXT_NAME, HOWTO_NAME)
# Keys under ``metadata["workbook"]`` that change on every export of unchanged work.
VOLATILE_METADATA = ("built_at",)
DEFAULT_TITLE = "Logits in Causal Language Models"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# Added to the setup cell unless it already says how to run elsewhere: outside the
# workbook there is no ``lm_engine``, and a TA may want to re-run the notebook anyway.
RUN_ELSEWHERE_COMMENT = """\
# Exported from the LM Logits Workbook. To re-run this notebook on a machine without the
# workbook installed, load a model from the Hugging Face hub instead of the workbook's
# bundled one, for example:
#     tokenizer = AutoTokenizer.from_pretrained("distilgpt2", add_prefix_space=True)
#     model = AutoModelForCausalLM.from_pretrained("distilgpt2")
# (numbers will differ from the outputs below, which came from the workbook's model).
"""


class ExportError(WorkbookError):
    """The submission cannot be exported as it is; the message says what to fix."""


# --- the snapshot ------------------------------------------------------------------------
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


def _attr(obj: object, *names: str, default: Any = "") -> Any:
    """The first attribute of ``obj`` that exists (the exercise data's field names)."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return default


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
        given = bool(getattr(step, "given", False))
        # A given cell always shows the course's code; a student cell their latest save.
        code = step.starter_code if given or saved is None else saved.code
        if saved is not None:
            stamps.append(saved.created_at)
        ran = saved is not None and (saved.ran_at is not None or bool(saved.outputs))
        steps.append(
            StepContent(
                id=step.id,
                title=_attr(step, "title"),
                instructions=_attr(step, "instructions", "markdown"),
                code=code,
                outputs=tuple(saved.outputs) if ran else (),
                ran=ran,
                passed=saved.passed if saved is not None else None,
                message=saved.message if saved is not None else None,
                given=given,
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
                prompt=_attr(question, "prompt", "text", "markdown"),
                answer=revision.text if revision is not None else "",
                title=_attr(question, "title"),
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
        introduction=getattr(content, "INTRODUCTION", ""),
        steps=tuple(steps),
        questions=tuple(questions),
        tutorial_path=log.path,
        reflections=tuple(reflections),
        work_updated_at=max(stamps) if stamps else None,
    )


# --- the notebook ------------------------------------------------------------------------
_CELL_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

# Which keys each output type may carry in nbformat 4; anything else (e.g. the kernel's
# ``transient``) would fail validation.
_OUTPUT_KEYS = {
    "stream": ("output_type", "name", "text"),
    "display_data": ("output_type", "data", "metadata"),
    "execute_result": ("output_type", "execution_count", "data", "metadata"),
    "error": ("output_type", "ename", "evalue", "traceback"),
}


def _cell_id(*parts: str) -> str:
    """A valid, stable nbformat cell id (letters, digits, ``-``, ``_``; at most 64)."""
    joined = "-".join(_CELL_ID_UNSAFE.sub("-", part).strip("-") for part in parts if part)
    return (joined or "cell")[:64]


def _clean_output(output: dict[str, Any], execution_count: int | None) -> dict[str, Any]:
    """One stored output as a valid nbformat output, or a stream saying what was dropped."""
    kind = output.get("output_type")
    keys = _OUTPUT_KEYS.get(kind)
    if keys is None:
        return {
            "output_type": "stream",
            "name": "stderr",
            "text": f"[an output of type {kind!r} could not be exported]\n",
        }
    cleaned = {key: output[key] for key in keys if key in output}
    if kind in ("display_data", "execute_result"):
        cleaned.setdefault("data", {})
        cleaned.setdefault("metadata", {})
    if kind == "execute_result":
        # Renumbered with its cell so the notebook reads as one top-to-bottom run.
        cleaned["execution_count"] = execution_count
    if kind == "stream":
        cleaned.setdefault("name", "stdout")
        cleaned.setdefault("text", "")
    if kind == "error":
        cleaned.setdefault("ename", "Error")
        cleaned.setdefault("evalue", "")
        cleaned.setdefault("traceback", [])
    return cleaned


def _setup_code(code: str) -> str:
    if "distilgpt2" in code:
        return code
    return RUN_ELSEWHERE_COMMENT + code


# Markdown cells show what a student typed exactly as typed. Marks that are Markdown syntax
# anywhere (emphasis, code, links, tables, strike-through, math) are backslash-escaped, as
# are those that start a block at the beginning of a line (headings, lists, quotes, setext
# underlines); &, < and > and the backslash become character references, so "<script>"
# stays text and no "\(" starts math. Runs of spaces and tabs keep their width as no-break
# spaces, and every line break is a hard break ("\" at the end of the line), so the text
# is one paragraph laid out line by line as typed. Commas and full stops stay readable.
_ANYWHERE = frozenset("`*_[]|~$")
_LINE_START = frozenset("#+-=")
_LIST_NUMBER = re.compile(r"\d{1,9}[.)]")
_REFERENCES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "&#92;"}
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$'()*+,;=%]+")


def verbatim_markdown(text: str) -> str:
    """Markdown that Jupyter renders as exactly ``text`` (line breaks and spacing included).

    Args:
        text: anything a student typed.

    Returns:
        Markdown source; rendered, its text equals ``text`` (with no-break spaces where
        ``text`` has leading spaces, runs of spaces or tabs).
    """
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.expandtabs(4)
        body = line.lstrip(" ")
        numbered = _LIST_NUMBER.match(body)
        list_mark = len(line) - len(body) + numbered.end() - 1 if numbered else -1
        out = []
        previous_space = True  # a space at the start of a line would be dropped
        first = True  # no mark yet on this line: a block could start here
        for position, char in enumerate(line):
            if char == " ":
                out.append("&nbsp;" if previous_space else " ")
                previous_space = True
                continue
            previous_space = False
            if char in _REFERENCES:
                out.append(_REFERENCES[char])
            elif (
                char in _ANYWHERE
                or position == list_mark
                or (first and char in _LINE_START)
                or (char == ":" and line.startswith("//", position + 1))  # no bare-URL link
            ):
                out.append("\\" + char)
            else:
                out.append(char)
            first = False
        if out and out[-1] == " ":
            out[-1] = "&nbsp;"  # a trailing space before a hard break would be dropped
        lines.append("".join(out) or "&nbsp;")
    return "\\\n".join(lines)


def _answer_markdown(question: QuestionContent) -> str:
    """The answer cell: a visible label, then the student's text (or a placeholder)."""
    label = f"**✍️ My answer to {question.label}:**"
    text = question.answer.strip("\n")
    if not text.strip():
        return f"{label}\n\n*(not answered)*"
    return f"{label}\n\n{verbatim_markdown(text)}"


def _reflection_markdown(entry: ReflectionContent) -> str:
    title = verbatim_markdown(" ".join(entry.title.split()))
    if entry.slot == "project":
        heading = f"### Mini-project: {title or '(no description)'}"
    else:
        heading = f"### Tutorial {entry.slot}: {title or '(untitled)'}"
    facts = []
    if entry.category:
        facts.append(f"- Category: {verbatim_markdown(' '.join(entry.category.split()))}")
    if entry.url:
        url = " ".join(entry.url.split())
        # A plain web address stays a link (its text is the address as typed).
        link = f"<{url}>" if _PLAIN_URL.fullmatch(url) else verbatim_markdown(url)
        facts.append(f"- Link: {link}")
    facts.extend(
        f"- {label}: {verbatim_markdown(' '.join(str(value).split()))}"
        for label, value in entry.details
    )
    text = entry.text.strip("\n")
    reflection = verbatim_markdown(text) if text.strip() else "*(no reflection written)*"
    parts = [heading]
    if facts:
        parts.append("\n".join(facts))
    parts.append(f"**Reflection:**\n\n{reflection}")
    return "\n\n".join(parts)


def build_notebook(submission: Submission, *, built_at: datetime | None = None):
    """The submission as an nbformat v4 notebook (not yet validated).

    Args:
        submission: the gathered work.
        built_at: the build time recorded in the metadata (default: now, UTC).

    Returns:
        An ``nbformat.NotebookNode``.
    """
    built_at = built_at or datetime.now(UTC)
    cells = []
    name = verbatim_markdown(" ".join(submission.student_name.split()))
    intro = f"# {submission.title}\n\nStudent: **{name}**"
    if submission.introduction.strip():
        intro += "\n\n" + submission.introduction.strip()
    cells.append(v4.new_markdown_cell(intro, id="title"))

    count = 0
    for step in submission.steps:
        heading = f"## {step.title or step.id}"
        text = heading + ("\n\n" + step.instructions.strip() if step.instructions.strip() else "")
        cells.append(v4.new_markdown_cell(text, id=_cell_id(step.id, "instructions")))
        execution_count = None
        if step.ran:
            count += 1
            execution_count = count
        code = _setup_code(step.code) if step.given else step.code
        cell = v4.new_code_cell(code, id=_cell_id(step.id), execution_count=execution_count)
        # Set after creation: new_code_cell would raise on a broken stored output, and
        # validate_notebook reports that as a message the student can act on.
        cell.outputs = [
            nbformat.from_dict(_clean_output(out, execution_count)) for out in step.outputs
        ]
        cell.metadata["workbook"] = {"step_id": step.id, "passed": step.passed}
        cells.append(cell)

    cells.append(
        v4.new_markdown_cell(
            "## Analysis\n\nEach question is quoted, followed by my answer.", id="analysis"
        )
    )
    for question in submission.questions:
        quoted = "\n".join(f"> {line}" if line else ">" for line in question.prompt.splitlines())
        cells.append(
            v4.new_markdown_cell(
                f"### {question.heading}\n\n{quoted}", id=_cell_id(question.id, "question")
            )
        )
        cells.append(
            v4.new_markdown_cell(_answer_markdown(question), id=_cell_id(question.id, "answer"))
        )

    log_intro = "## Tutorial log"
    if submission.tutorial_path == "project":
        log_intro += "\n\nI did the classifier-from-scratch mini-project instead of two tutorials."
    elif not submission.reflections:
        log_intro += "\n\n*(no tutorials logged)*"
    cells.append(v4.new_markdown_cell(log_intro, id="tutorial-log"))
    for entry in submission.reflections:
        cells.append(
            v4.new_markdown_cell(_reflection_markdown(entry), id=_cell_id("tutorial", entry.slot))
        )

    nb = v4.new_notebook()  # new_notebook(cells=...) would validate before we can report
    nb.cells = cells
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["workbook"] = {
        "student": submission.student_name,
        "model": submission.model_name,
        "built_at": built_at.astimezone(UTC).isoformat(timespec="seconds"),
    }
    if submission.work_updated_at is not None:
        # Not volatile: it changes only when the work does.
        nb.metadata["workbook"]["work_saved_at"] = submission.work_updated_at.astimezone(
            UTC
        ).isoformat(timespec="seconds")
    return nb


def validate_notebook(nb) -> None:
    """Raise ``ExportError`` when ``nb`` is not a valid nbformat 4 notebook."""
    try:
        nbformat.validate(nb)
    except (nbformat.ValidationError, NotebookValidationError) as exc:
        reason = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise ExportError(
            f"The notebook would not be valid ({reason}). Re-run the cell whose output "
            "looks broken on the Notebook page, then export again."
        ) from exc


def notebook_bytes(nb) -> bytes:
    """The notebook as the UTF-8 JSON Jupyter writes (one-space indent, trailing newline)."""
    return (nbformat.writes(nb) + "\n").encode("utf-8")


# --- the online text ---------------------------------------------------------------------
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
# **bold** and *emphasis*, only around non-space text, so `a * b * c` stays as typed.
_STRONG = re.compile(r"\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


def _blocks(text: str) -> list[tuple[str, str]]:
    """Split text into ``("p", paragraph)`` and ``("code", code)`` blocks.

    Code is a fenced block (``` or ~~~) or lines indented by four spaces or a tab after a
    blank line, as in Markdown.
    """
    blocks: list[tuple[str, str]] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            blocks.append(("p", "\n".join(para)))
            para.clear()

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end of the text)
            blocks.append(("code", "\n".join(body)))
            continue
        if not para and (line.startswith("    ") or line.startswith("\t")) and line.strip():
            body = []
            while i < len(lines) and (
                lines[i].startswith("    ") or lines[i].startswith("\t") or not lines[i].strip()
            ):
                body.append(lines[i][4:] if lines[i].startswith("    ") else lines[i][1:])
                i += 1
            blocks.append(("code", "\n".join(body).rstrip("\n")))
            continue
        if line.strip():
            para.append(line.strip())
        else:
            flush()
        i += 1
    flush()
    return blocks


def _styled(text: str) -> str:
    """Escape plain text, then turn Markdown's **bold** and *emphasis* into tags."""
    escaped = html.escape(text)
    escaped = _STRONG.sub(r"<strong>\1</strong>", escaped)
    return _EMPHASIS.sub(r"<em>\1</em>", escaped)


def _inline_html(text: str) -> str:
    """Escape text, keep `code` spans as <code>, line breaks as <br>."""
    parts = []
    last = 0
    for match in _INLINE_CODE.finditer(text):
        parts.append(_styled(text[last : match.start()]))
        parts.append(f"<code>{html.escape(match.group(1))}</code>")
        last = match.end()
    parts.append(_styled(text[last:]))
    return "".join(parts).replace("\n", "<br>\n")


def _text_html(text: str) -> str:
    rendered = []
    for kind, body in _blocks(text):
        if kind == "code":
            rendered.append(f"<pre><code>{html.escape(body)}</code></pre>")
        else:
            rendered.append(f"<p>{_inline_html(body)}</p>")
    return "\n".join(rendered)


def moodle_html(submission: Submission) -> str:
    """The Analysis answers and the reflections as HTML for Moodle's online-text box.

    Each question is a heading with the prompt quoted; the answer follows under a visible
    "My answer" label, as paragraphs, with code kept preformatted. All student text is
    escaped, so an answer containing ``<script>`` stays text.
    """
    out = [f"<h2>Analysis — {html.escape(submission.student_name)}</h2>"]
    for question in submission.questions:
        out.append(f"<h3>{html.escape(question.heading)}</h3>")
        out.append(f"<blockquote>{_text_html(question.prompt)}</blockquote>")
        out.append(f"<p><strong>My answer to {html.escape(question.label)}:</strong></p>")
        answer = _text_html(question.answer) if question.answer.strip() else ""
        out.append(answer or "<p><em>(not answered)</em></p>")
    out.append("<h2>Tutorial log</h2>")
    if submission.tutorial_path == "project":
        out.append(
            "<p>I did the classifier-from-scratch mini-project instead of two tutorials.</p>"
        )
    if not submission.reflections:
        out.append("<p><em>(no tutorials logged)</em></p>")
    for entry in submission.reflections:
        if entry.slot == "project":
            heading = f"Mini-project: {entry.title or '(no description)'}"
        else:
            heading = f"Tutorial {entry.slot}: {entry.title or '(untitled)'}"
        out.append(f"<h3>{html.escape(heading)}</h3>")
        facts = []
        if entry.category:
            facts.append(f"<li>Category: {html.escape(entry.category)}</li>")
        if entry.url:
            facts.append(f"<li>Link: {html.escape(entry.url)}</li>")
        facts.extend(
            f"<li>{html.escape(label)}: {html.escape(value)}</li>" for label, value in entry.details
        )
        if facts:
            out.append("<ul>\n" + "\n".join(facts) + "\n</ul>")
        out.append("<p><strong>Reflection:</strong></p>")
        out.append(_text_html(entry.text) if entry.text.strip() else "<p><em>(none)</em></p>")
    return "\n".join(out) + "\n"


def _rule(title: str, char: str = "=") -> str:
    return f"{title}\n{char * max(len(title), 8)}"


def moodle_text(submission: Submission) -> str:
    """The same content as ``moodle_html`` as plain text (for editors that drop HTML)."""
    out = [_rule(f"Analysis — {submission.student_name}")]
    for question in submission.questions:
        out.append("")
        out.append(_rule(question.heading, "-"))
        out.extend(f"> {line}".rstrip() for line in question.prompt.strip().splitlines())
        out.append("")
        out.append(f"MY ANSWER TO {question.label}:")
        out.append(question.answer.strip() or "(not answered)")
    out.append("")
    out.append(_rule("Tutorial log"))
    if submission.tutorial_path == "project":
        out.append("I did the classifier-from-scratch mini-project instead of two tutorials.")
    if not submission.reflections:
        out.append("(no tutorials logged)")
    for entry in submission.reflections:
        if entry.slot == "project":
            heading = f"Mini-project: {entry.title or '(no description)'}"
        else:
            heading = f"Tutorial {entry.slot}: {entry.title or '(untitled)'}"
        out.append("")
        out.append(_rule(heading, "-"))
        if entry.category:
            out.append(f"Category: {entry.category}")
        if entry.url:
            out.append(f"Link: {entry.url}")
        out.extend(f"{label}: {value}" for label, value in entry.details)
        out.append("")
        out.append("REFLECTION:")
        out.append(entry.text.strip() or "(none)")
    return "\n".join(out) + "\n"


def how_to_submit(submission: Submission, notebook_sha256: str) -> str:
    """The instructions that travel in the zip."""
    return f"""\
How to submit "{submission.title}" on Moodle
{"=" * 60}

Student: {submission.student_name}
Model:   {submission.model_name}

1. Open the course's Moodle assignment and click "Add submission".
2. File submission: attach {NOTEBOOK_NAME} from this zip (unzip it first; do not rename it).
3. Online text: open {HTML_NAME} from this zip in a text editor and copy all of it. In
   Moodle's online-text editor, switch to the HTML/source view (the "</>" or "HTML" button),
   paste, and switch back: the questions and your answers appear formatted.
   If your editor has no HTML view, paste the contents of {TEXT_NAME} instead.
4. Check that the preview shows every question followed by your answer, then save and
   submit.

The notebook's SHA-256 is
    {notebook_sha256}
The workbook recorded it when you exported, so your TA can match the file you submit with
the work saved in the workbook.
"""


# --- the bundle --------------------------------------------------------------------------
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{name}{i}" for name in ("COM", "LPT") for i in range(1, 10)
}
_UNSAFE_CHARS = re.compile(r'[/\\:*?"<>|\x00]+')
_SPACES = re.compile(r"\s+")
_DASHES = re.compile(r"-{2,}")


def safe_file_name(name: str, *, fallback: str = "student", max_length: int = 80) -> str:
    """A file-name-safe version of a person's name, readable in any language.

    Path separators and characters Windows forbids become ``-``, control and other
    invisible characters are dropped, whitespace becomes ``-``, and letters of every script
    are kept as they are (NFC-normalised). Never empty, never ``.``/``..``, never a reserved
    Windows device name.
    """
    text = unicodedata.normalize("NFC", name or "")
    # Category C* = control, format (zero-width, bidi overrides), unassigned, private use.
    text = "".join(
        ch for ch in text if not unicodedata.category(ch).startswith("C") or ch in "\t\n"
    )
    text = _UNSAFE_CHARS.sub("-", text)
    text = _SPACES.sub("-", text.strip())
    text = _DASHES.sub("-", text).strip("-. ")
    text = text[:max_length].rstrip("-. ")
    if not text or text.upper().split(".")[0] in _WINDOWS_RESERVED:
        text = f"{fallback}-{text}" if text else fallback
    return text


def bundle_file_name(student_name: str) -> str:
    """The zip's name, e.g. ``u9n1-lm-logits-Ana-Núñez.zip``."""
    return f"u9n1-lm-logits-{safe_file_name(student_name)}.zip"


@dataclass(frozen=True)
class Bundle:
    """One built export.

    Attributes:
        file_name: the zip's file name.
        data: the zip's bytes.
        sha256: hex SHA-256 of ``data`` (what the store records).
        notebook: the notebook's bytes (``u9n1-lm-logits.ipynb``).
        notebook_sha256: hex SHA-256 of ``notebook``.
        html: the online text as HTML.
        text: the online text as plain text.
    """

    file_name: str
    data: bytes
    sha256: str
    notebook: bytes
    notebook_sha256: str
    html: str
    text: str


def build_bundle(submission: Submission, *, built_at: datetime | None = None) -> Bundle:
    """Build and validate the notebook, the texts and the zip.

    Raises:
        ExportError: the notebook would not validate.
    """
    built_at = (built_at or datetime.now(UTC)).astimezone(UTC)
    nb = build_notebook(submission, built_at=built_at)
    validate_notebook(nb)
    nb_bytes = notebook_bytes(nb)
    nb_sha = hashlib.sha256(nb_bytes).hexdigest()
    page_html = moodle_html(submission)
    page_text = moodle_text(submission)
    files = {
        NOTEBOOK_NAME: nb_bytes,
        HTML_NAME: _html_document(submission, page_html).encode("utf-8"),
        TEXT_NAME: page_text.encode("utf-8"),
        HOWTO_NAME: how_to_submit(submission, nb_sha).encode("utf-8"),
    }
    buffer = io.BytesIO()
    # Fixed entry times (the build time) and order keep the zip reproducible.
    stamp = built_at.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in BUNDLE_FILES:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    data = buffer.getvalue()
    return Bundle(
        file_name=bundle_file_name(submission.student_name),
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        notebook=nb_bytes,
        notebook_sha256=nb_sha,
        html=page_html,
        text=page_text,
    )


def _html_document(submission: Submission, body: str) -> str:
    """The HTML fragment wrapped as a file a browser opens with the right encoding.

    What to paste into Moodle is only the part between the ``BEGIN``/``END`` comments.
    """
    title = html.escape(f"{submission.title} — {submission.student_name}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n</head>\n<body>\n"
        "<!-- BEGIN: paste from here into Moodle's online text (HTML view) -->\n"
        f"{body}"
        "<!-- END -->\n</body>\n</html>\n"
    )


def export_for(
    store: Store, user_id: int, *, model_name: str, built_at: datetime | None = None
) -> Bundle:
    """Gather, build and record one export (the store keeps the zip's SHA-256).

    Raises:
        ExportError: the account is gone or the notebook would not validate.
    """
    submission = gather_submission(store, user_id, model_name=model_name)
    bundle = build_bundle(submission, built_at=built_at)
    store.record_export(user_id, bundle.file_name, bundle.sha256)
    return bundle


def canonical_notebook(data: bytes | str) -> dict[str, Any]:
    """A notebook's JSON with the volatile metadata removed (for comparisons and goldens)."""
    nb = json.loads(data)
    meta = nb.get("metadata", {}).get("workbook", {})
    for key in VOLATILE_METADATA:
        meta.pop(key, None)
    return nb

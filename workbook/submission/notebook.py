"""The notebook: a ``Submission`` as a valid nbformat 4 notebook, ``u9n1-lm-logits.ipynb``.

Determinism: re-exporting unchanged work gives the same notebook content. Cell ids come from
step and question ids, execution counts are numbered in notebook order, and the only
timestamp (the build time) lives in the notebook's metadata (``VOLATILE_METADATA``).
What a student typed is shown exactly as typed (``verbatim_markdown``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import nbformat
from nbformat import v4
from nbformat.validator import NotebookValidationError

from workbook.submission.snapshot import (
    ExportError,
    QuestionContent,
    ReflectionContent,
    Submission,
)

__all__ = [
    "KERNELSPEC",
    "VOLATILE_METADATA",
    "build_notebook",
    "notebook_bytes",
    "validate_notebook",
    "verbatim_markdown",
]

# Keys under ``metadata["workbook"]`` that change on every export of unchanged work.
VOLATILE_METADATA = ("built_at",)
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
    heading = f"### {entry.heading(verbatim_markdown)}"
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
    if submission.tutorial_log_statement:
        log_intro += f"\n\n{submission.tutorial_log_statement}"
    if submission.tutorial_log_placeholder:
        log_intro += f"\n\n*{submission.tutorial_log_placeholder}*"
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

"""The online text: a student's Analysis answers and tutorial log for Moodle's text box.

Moodle's online-text box takes HTML (``moodle_html``); ``moodle_text`` is the same content as
plain text, for editors that drop HTML. Student text is escaped and kept as typed, with
Markdown's code, **bold** and *emphasis* shown as such.
"""

from __future__ import annotations

import html
import re

from workbook.submission.snapshot import Submission

__all__ = [
    "moodle_html",
    "moodle_text",
]

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
    if submission.tutorial_log_statement:
        out.append(f"<p>{html.escape(submission.tutorial_log_statement)}</p>")
    if submission.tutorial_log_placeholder:
        out.append(f"<p><em>{html.escape(submission.tutorial_log_placeholder)}</em></p>")
    for entry in submission.reflections:
        out.append(f"<h3>{html.escape(entry.heading())}</h3>")
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
    if submission.tutorial_log_statement:
        out.append(submission.tutorial_log_statement)
    if submission.tutorial_log_placeholder:
        out.append(submission.tutorial_log_placeholder)
    for entry in submission.reflections:
        out.append("")
        out.append(_rule(entry.heading(), "-"))
        if entry.category:
            out.append(f"Category: {entry.category}")
        if entry.url:
            out.append(f"Link: {entry.url}")
        out.extend(f"{label}: {value}" for label, value in entry.details)
        out.append("")
        out.append("REFLECTION:")
        out.append(entry.text.strip() or "(none)")
    return "\n".join(out) + "\n"

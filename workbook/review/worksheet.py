"""Moodle's offline grading worksheet: the released grades and feedback, as Moodle reads them.

The instructor downloads the worksheet from the Moodle assignment and uploads it here;
``fill_worksheet`` returns the same file with only ``Grade``, ``Feedback comments`` and
``Last modified (grade)`` filled in for the rows whose email matches a student with released
feedback. Every other byte of an untouched row is kept as it was (encoding mark, delimiter,
quoting, line endings), so Moodle reads back exactly what it wrote. Without a downloaded one,
``fresh_worksheet`` writes one with Moodle's columns.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from workbook.review.feedback import FeedbackItem, feedback_items
from workbook.review.grading import MAX_POINTS, ReviewError, grade_label, grade_points

__all__ = [
    "WORKSHEET_HEADERS",
    "GradeEntry",
    "WorksheetResult",
    "feedback_comment_html",
    "feedback_comment_text",
    "fill_worksheet",
    "fresh_worksheet",
    "grade_score",
    "moodle_date",
    "released_entry",
    "worksheet_grades",
]

# Moodle's English column headers, in Moodle's order.
WORKSHEET_HEADERS: tuple[str, ...] = (
    "Identifier",
    "Full name",
    "Email address",
    "Status",
    "Grade",
    "Maximum Grade",
    "Grade can be changed",
    "Last modified (submission)",
    "Online text",
    "Last modified (grade)",
    "Feedback comments",
)
_BOM = "\ufeff"


@dataclass(frozen=True)
class GradeEntry:
    """What goes into one student's worksheet row.

    Attributes:
        label: the grade on the course's scale; ``None`` leaves the Grade cell as it is.
        comment_html: the feedback as Moodle's comment editor stores it (HTML).
        modified: when the grade was last changed (the released feedback's time).
    """

    label: str | None
    comment_html: str
    modified: datetime


@dataclass(frozen=True)
class WorksheetResult:
    """A filled worksheet and what happened to each row.

    Attributes:
        data: the CSV file's bytes, ready to upload to Moodle.
        filled: emails whose row received a grade and feedback.
        unmatched_rows: emails in the worksheet with no released feedback here.
        not_in_worksheet: emails with released feedback that have no row in the worksheet.
        locked: emails whose row says the grade cannot be changed (left as they were).
    """

    data: bytes
    filled: list[str]
    unmatched_rows: list[str]
    not_in_worksheet: list[str]
    locked: list[str]


def worksheet_grades(store: Any, only: Collection[int] | None = None) -> dict[str, GradeEntry]:
    """What the Moodle worksheet receives: released feedback per student email.

    Drafts are not exported; a student whose feedback was never released gets no entry.

    Args:
        only: these students' ids only (a TA's sections); ``None`` for every student.
    """
    grades: dict[str, GradeEntry] = {}
    for row in store.roster():
        if only is not None and row.user_id not in only:
            continue
        found = released_entry(store, row.user_id)
        if found is not None:
            grades[row.email.strip().lower()] = found[0]
    return grades


def released_entry(store: Any, student_id: int) -> tuple[GradeEntry, Any] | None:
    """One student's worksheet entry and the released feedback it comes from, or ``None``
    when nothing was released (the same entry ``worksheet_grades`` writes)."""
    from db import NotFoundError

    try:
        feedback = store.released_feedback_for(student_id)
    except NotFoundError:
        return None
    items = feedback_items(store.tutorial_log(student_id).path)
    entry = GradeEntry(
        label=grade_label(feedback.grade),
        comment_html=feedback_comment_html(feedback.comment, feedback.item_comments, items),
        modified=feedback.created_at,
    )
    return entry, feedback


def grade_score(label: str, points_max: float = MAX_POINTS) -> tuple[float, float]:
    """A scale label as (points given, points possible), the ratio the worksheet writes.

    A point-graded Moodle item receives ``given / possible`` of its own maximum, in the
    worksheet (``fill_worksheet``) and through the gradebook services alike.

    Raises:
        ReviewError: the label is not on the course's scale.
    """
    return (grade_points(label) or 0.0), points_max


def feedback_comment_text(
    comment: str, item_comments: Mapping[str, str], items: Sequence[FeedbackItem] = ()
) -> str:
    """The overall comment and per-item comments as plain text (for a score's ``comment``).

    Same order and labels as :func:`feedback_comment_html`; paragraphs apart by blank lines.
    """
    parts = [comment.strip()] if comment.strip() else []
    labels = {item.id: item.label for item in items}
    ordered = [item.id for item in items] + sorted(set(item_comments) - set(labels))
    for item_id in ordered:
        text = item_comments.get(item_id, "")
        if text.strip():
            parts.append(f"{labels.get(item_id, item_id)}: {text.strip()}")
    return "\n\n".join(parts)


def moodle_date(moment: datetime, timezone: tzinfo | None = None) -> str:
    """A time as Moodle writes dates in the worksheet, e.g. ``Friday, 27 November 2026, 9:05 PM``.

    Moodle writes ``Last modified (grade)`` with ``userdate()`` in English's
    ``strftimedaydatetime`` format (``%A, %d %B %Y, %I:%M %p`` without leading zeros on
    the day and hour), and on upload reads it back with PHP's ``strtotime``, which takes a
    time without a zone as the Moodle server's local time. So the time is written in that
    zone (the course's time zone setting); a grade written in UTC would look hours newer or
    older than it is, and Moodle could skip it as changed since the download.

    Args:
        moment: the time; naive datetimes are taken as UTC (how the store keeps them).
        timezone: the zone to write it in; ``None`` = this server's local time zone.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(timezone)
    hour = moment.hour % 12 or 12
    return (
        f"{moment:%A}, {moment.day} {moment:%B} {moment.year}, "
        f"{hour}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"
    )


def feedback_comment_html(
    comment: str, item_comments: Mapping[str, str], items: Sequence[FeedbackItem] = ()
) -> str:
    """The overall comment and per-item comments as the HTML Moodle's comment editor stores.

    The TA's text is escaped (it is shown as text in Moodle, never interpreted as markup);
    blank lines start a new paragraph, single line breaks are kept.

    Args:
        comment: the overall comment.
        item_comments: item id -> comment; blank comments are skipped.
        items: the known items, for their labels and order; unknown ids follow, by id.
    """
    parts = [_paragraphs(comment)] if comment.strip() else []
    labels = {item.id: item.label for item in items}
    ordered = [item.id for item in items] + sorted(set(item_comments) - set(labels))
    for item_id in ordered:
        text = item_comments.get(item_id, "")
        if text.strip():
            label = html.escape(labels.get(item_id, item_id), quote=False)
            parts.append(f"<p><strong>{label}:</strong></p>{_paragraphs(text)}")
    return "".join(parts)


def _paragraphs(text: str) -> str:
    blocks = [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(
        "<p>" + "<br>".join(html.escape(line, quote=False) for line in block.split("\n")) + "</p>"
        for block in blocks
        if block.strip()
    )


def fill_worksheet(
    data: bytes,
    grades: Mapping[str, GradeEntry],
    *,
    points_max: float = MAX_POINTS,
    timezone: tzinfo | None = None,
) -> WorksheetResult:
    """Fill a worksheet downloaded from Moodle with grades and feedback.

    Rows are matched by ``Email address`` (case-insensitively). Only ``Grade``,
    ``Feedback comments`` and ``Last modified (grade)`` of matched rows change; every other
    row, column, header and formatting detail is kept as it was. A row whose
    ``Grade can be changed`` says ``No`` is left alone.

    The grade is the scale label when the row's ``Maximum Grade`` is empty (a scale-graded
    assignment), otherwise the label's points scaled to that maximum (``Excellent`` is the
    maximum), written with two decimals like Moodle does.

    Args:
        data: the uploaded CSV file (UTF-8, with or without a byte order mark).
        grades: email (lower-case) -> what to fill in.
        points_max: the points of the best label on the course's scale.
        timezone: the Moodle server's time zone, for ``Last modified (grade)`` (see
            :func:`moodle_date`); ``None`` = this server's.

    Raises:
        ReviewError: the file is not a CSV with Moodle's worksheet columns.
    """
    sheet = _parse_worksheet(data)
    columns = {name: i for i, name in enumerate(sheet.header)}
    grade_col = columns["Grade"]
    email_col = columns["Email address"]
    comment_col = columns.get("Feedback comments")
    modified_col = columns.get("Last modified (grade)")
    max_col = columns.get("Maximum Grade")
    change_col = columns.get("Grade can be changed")
    wanted = {email.strip().lower(): entry for email, entry in grades.items()}

    out = [sheet.bom + sheet.header_raw]
    filled: list[str] = []
    unmatched: list[str] = []
    locked: list[str] = []
    seen: set[str] = set()
    for fields, raw in sheet.records:
        email = fields[email_col].strip().lower() if email_col < len(fields) else ""
        seen.add(email)
        entry = wanted.get(email)
        if entry is None:
            if email:
                unmatched.append(email)
            out.append(raw)
            continue
        if change_col is not None and change_col < len(fields) and _is_no(fields[change_col]):
            locked.append(email)
            out.append(raw)
            continue
        new = list(fields) + [""] * (len(sheet.header) - len(fields))
        maximum = new[max_col] if max_col is not None else ""
        if entry.label is not None:
            new[grade_col] = _grade_cell(entry.label, maximum, points_max)
        if comment_col is not None:
            new[comment_col] = entry.comment_html
        if modified_col is not None:
            new[modified_col] = moodle_date(entry.modified, timezone)
        out.append(_format_record(new, sheet.delimiter, _line_ending(raw, sheet.newline)))
        filled.append(email)
    missing = sorted(set(wanted) - seen)
    text = "".join(out)
    return WorksheetResult(
        data=text.encode("utf-8"),
        filled=filled,
        unmatched_rows=unmatched,
        not_in_worksheet=missing,
        locked=locked,
    )


def fresh_worksheet(
    students: Iterable[tuple[str, str]],
    grades: Mapping[str, GradeEntry],
    *,
    timezone: tzinfo | None = None,
) -> bytes:
    """A worksheet with Moodle's columns for these students, when none was uploaded.

    ``Identifier`` stays empty: only Moodle knows its participant numbers, so upload the
    worksheet Moodle gives you when the grades must go back into Moodle.

    Args:
        students: (full name, email) pairs, in the order wanted.
        grades: email (lower-case) -> what to fill in; students without one get empty cells.
        timezone: the Moodle server's time zone (see :func:`moodle_date`).
    """
    buffer = io.StringIO()
    buffer.write(_format_record(list(WORKSHEET_HEADERS), ",", "\n"))
    for name, email in students:
        entry = grades.get(email.strip().lower())
        row = dict.fromkeys(WORKSHEET_HEADERS, "")
        row.update({"Full name": name, "Email address": email})
        if entry is not None:
            row.update(
                {
                    "Grade": entry.label or "",
                    "Grade can be changed": "Yes",
                    "Last modified (grade)": moodle_date(entry.modified, timezone),
                    "Feedback comments": entry.comment_html,
                }
            )
        buffer.write(_format_record([row[h] for h in WORKSHEET_HEADERS], ",", "\n"))
    return buffer.getvalue().encode("utf-8")


@dataclass(frozen=True)
class _Worksheet:
    bom: str
    delimiter: str
    newline: str
    header: list[str]
    header_raw: str
    records: list[tuple[list[str], str]]  # (fields, the record's exact text)


def _parse_worksheet(data: bytes) -> _Worksheet:
    if not data:
        raise ReviewError("The uploaded file is empty. Download the grading worksheet again.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReviewError(
            "The worksheet is not UTF-8 text. Upload the CSV exactly as Moodle exported it "
            "(if a spreadsheet program re-saved it, save it as 'CSV UTF-8')."
        ) from None
    bom = _BOM if text.startswith(_BOM) else ""
    text = text[len(bom) :]
    # Split after "\n" only: other Unicode line breaks may sit inside a student's text.
    lines = [line for line in re.split(r"(?<=\n)", text) if line]
    if not lines:
        raise ReviewError("The uploaded file is empty. Download the grading worksheet again.")
    newline = _line_ending(lines[0], "\n")
    delimiter = _detect_delimiter(lines[0])
    records = list(_raw_records(lines, delimiter))
    header, header_raw = records[0]
    header = [name.strip() for name in header]
    for required in ("Email address", "Grade"):
        if required not in header:
            raise ReviewError(
                f"The worksheet has no {required!r} column. Upload the offline grading "
                "worksheet from the Moodle assignment (Grading action: Download grading "
                "worksheet), with Moodle's language set to English."
            )
    return _Worksheet(bom, delimiter, newline, header, header_raw, records[1:])


def _detect_delimiter(first_line: str) -> str:
    # Moodle writes commas; a spreadsheet program may have re-saved with ';' or tabs.
    for delimiter in (",", ";", "\t"):
        fields = next(csv.reader([first_line], delimiter=delimiter), [])
        if "Email address" in (name.strip() for name in fields):
            return delimiter
    return ","


def _raw_records(lines: list[str], delimiter: str) -> Iterator[tuple[list[str], str]]:
    """Parse records and keep each record's exact text (a quoted field may span lines)."""
    consumed: list[str] = []

    def feed() -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line

    reader = csv.reader(feed(), delimiter=delimiter, strict=False)
    try:
        for fields in reader:
            raw = "".join(consumed)
            consumed.clear()
            if not fields and not raw.strip():
                # A blank line (often the very last): keep it, it is not a row.
                yield [], raw
                continue
            yield fields, raw
    except csv.Error as exc:
        raise ReviewError(f"The worksheet is not a readable CSV file: {exc}.") from None


def _line_ending(raw: str, default: str) -> str:
    for ending in ("\r\n", "\n", "\r"):
        if raw.endswith(ending):
            return ending
    return "" if raw else default


def _format_record(fields: Sequence[str], delimiter: str, ending: str) -> str:
    # Quote the way PHP's fputcsv (Moodle's writer) does, so rewritten rows look like the
    # rows Moodle wrote: only fields with a delimiter, quote, space, tab or line break.
    def cell(value: str) -> str:
        if any(ch in value for ch in (delimiter, '"', " ", "\t", "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    return delimiter.join(cell(str(value)) for value in fields) + ending


def _is_no(value: str) -> bool:
    return value.strip().lower() in {"no", "0", "false"}


def _grade_cell(label: str, maximum: str, points_max: float) -> str:
    try:
        top = float(maximum.strip().replace(",", "."))
    except ValueError:
        return label  # a scale-graded assignment: Moodle matches the scale item's text
    given, possible = grade_score(label, points_max)
    return f"{given / possible * top:.2f}"

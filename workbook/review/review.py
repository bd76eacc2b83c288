"""TA review: the roster, one student's work, feedback on the course's scale, Moodle CSVs.

The course grades on a scale of labels (``GRADE_SCALE``). The store keeps a grade as a number,
so labels map to points here (``grade_points`` / ``grade_label``) and nowhere else.

Moodle's *offline grading worksheet* round trip: the instructor downloads the worksheet from
the Moodle assignment and uploads it here; ``fill_worksheet`` returns the same file with
only ``Grade``, ``Feedback comments`` and ``Last modified (grade)`` filled in for the rows
whose email matches a student with released feedback. Every other byte of an untouched row
is kept as it was (encoding mark, delimiter, quoting, line endings), so Moodle reads back
exactly what it wrote.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from workbook.errors import WorkbookError

__all__ = [
    "FEEDBACK_STATUSES",
    "GRADE_SCALE",
    "WORKSHEET_HEADERS",
    "FeedbackItem",
    "GradeEntry",
    "ReviewError",
    "StudentReview",
    "WorksheetResult",
    "add_snippet",
    "feedback_comment_html",
    "feedback_items",
    "fill_worksheet",
    "filter_roster",
    "fresh_worksheet",
    "grade_label",
    "grade_points",
    "item_label",
    "moodle_date",
    "release_feedback",
    "responses_csv",
    "roster_records",
    "save_feedback_draft",
    "student_review",
    "worksheet_grades",
]


class ReviewError(WorkbookError):
    """Input the review tools cannot use (a worksheet that is not Moodle's, an unknown grade)."""


# --- the grading scale ------------------------------------------------------------------

# Best first. Points make the scale storable as a number and let a point-graded Moodle
# assignment receive a proportional grade.
GRADE_SCALE: tuple[str, ...] = (
    "Excellent",
    "Meets expectations",
    "Progressing",
    "Beginning",
    "Not submitted",
)
_POINTS: dict[str, float] = {
    "Excellent": 4.0,
    "Meets expectations": 3.0,
    "Progressing": 2.0,
    "Beginning": 1.0,
    "Not submitted": 0.0,
}
MAX_POINTS = 4.0

FEEDBACK_STATUSES: tuple[str, ...] = ("none", "draft", "released")


def grade_points(label: str | None) -> float | None:
    """The number stored for a scale label (``None`` for no grade yet).

    Raises:
        ReviewError: the label is not on the course's scale.
    """
    if label is None or label == "":
        return None
    try:
        return _POINTS[label]
    except KeyError:
        raise ReviewError(
            f"{label!r} is not on the grading scale; choose one of {', '.join(GRADE_SCALE)}."
        ) from None


def grade_label(points: float | None) -> str | None:
    """The scale label for a stored grade, or ``None`` when there is no grade.

    A number that is not on the scale (written by something else) is shown as the number.
    """
    if points is None:
        return None
    for label, value in _POINTS.items():
        if abs(value - float(points)) < 1e-9:
            return label
    return f"{float(points):g}"


# --- feedback items ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackItem:
    """Something a TA may comment on separately: a step, a question or a reflection.

    Attributes:
        id: the key in ``Feedback.item_comments`` (``"step1"``, ``"Q1"``, ``"tutorial1"`` ...).
        label: how the item is named to the TA and the student.
    """

    id: str
    label: str


def feedback_items(tutorial_path: str | None = None) -> list[FeedbackItem]:
    """The items of the homework in the order a student works them.

    Args:
        tutorial_path: ``"project"`` offers one mini-project item instead of two tutorials.
    """
    from workbook.exercise import content

    items: list[FeedbackItem] = []
    if tutorial_path == "project":
        items.append(FeedbackItem("project", "Mini-project reflection"))
    else:
        items += [
            FeedbackItem("tutorial1", "Tutorial 1 reflection"),
            FeedbackItem("tutorial2", "Tutorial 2 reflection"),
        ]
    for step in content.steps():
        if not getattr(step, "given", False):
            items.append(FeedbackItem(step.id, _step_label(step)))
    for question in content.questions():
        items.append(FeedbackItem(question.id, question.title))
    return items


def item_label(item_id: str) -> str:
    """How an item of ``Feedback.item_comments`` is named to people (its id if unknown)."""
    for path in ("tutorials", "project"):
        for item in feedback_items(path):
            if item.id == item_id:
                return item.label
    return item_id


def _step_label(step: Any) -> str:
    return getattr(step, "title", "") or step.id


# --- the roster -------------------------------------------------------------------------


def reflections_counted(row: Any) -> int:
    """Reflections written, 0-2, from a ``db.RosterRow``: a reflected mini-project counts as
    both tutorials, since it replaces them."""
    if row.tutorial_path == "project":
        return 2 if row.project_reflection else 0
    return row.reflections


def roster_records(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Roster rows (``db.RosterRow``) as flat records for a table, one per student.

    Archived students are left out.
    """
    graded = _graded_steps()
    records = []
    for row in rows:
        if row.archived:
            continue
        reflections = reflections_counted(row)
        records.append(
            {
                "user_id": row.user_id,
                "name": row.name,
                "email": row.email,
                "steps": f"{row.steps_passed}/{graded}",
                "steps_passed": row.steps_passed,
                "reflections": reflections,
                "answers": row.answers_nonempty,
                "exported": row.last_export_at is not None,
                "exported_at": row.last_export_at,
                "last_activity": row.last_activity_at,
                "feedback": row.feedback_status,
            }
        )
    return records


def filter_roster(
    records: Sequence[Mapping[str, Any]],
    *,
    text: str = "",
    feedback: Iterable[str] = (),
    exported: bool | None = None,
    sort_by: str = "name",
    descending: bool = False,
) -> list[Mapping[str, Any]]:
    """Filter and sort roster records.

    Args:
        text: keep students whose name or email contains this (case-insensitive).
        feedback: keep these feedback statuses (empty keeps all).
        exported: ``True``/``False`` keeps students who have / have not exported.
        sort_by: a record key; missing values (never exported ...) sort last.
        descending: reverse the order (missing values still last).
    """
    needle = text.strip().lower()
    statuses = set(feedback)
    kept = [
        record
        for record in records
        if (not needle or needle in record["name"].lower() or needle in record["email"].lower())
        and (not statuses or record["feedback"] in statuses)
        and (exported is None or record["exported"] == exported)
    ]
    if kept and sort_by not in kept[0]:
        raise ReviewError(f"Cannot sort the roster by {sort_by!r}.")
    present = [r for r in kept if r[sort_by] is not None]
    missing = [r for r in kept if r[sort_by] is None]

    def key(record: Mapping[str, Any]) -> Any:
        value = record[sort_by]
        return value.lower() if isinstance(value, str) else value

    present.sort(key=key, reverse=descending)
    return present + missing


# --- one student ------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentReview:
    """Everything a TA reads about one student.

    Attributes:
        student: the student's account (``db.User``).
        cells: latest cell revision per step id.
        answers: latest answer revision per question id.
        answer_history: every revision per question id, oldest first.
        tutorial_log: the tutorial log (``db.TutorialLog``).
        checklist: the Submit page's ``workbook.submission.checklist.Checklist`` for this student, or
            the ``WorkbookError`` that kept it from being built.
        feedback: the latest saved feedback (draft or released), or ``None``.
        exports: the student's exports, oldest first.
    """

    student: Any
    cells: Mapping[str, Any]
    answers: Mapping[str, Any]
    answer_history: Mapping[str, list[Any]]
    tutorial_log: Any
    checklist: Any
    feedback: Any | None
    exports: list[Any] = field(default_factory=list)

    @property
    def feedback_status(self) -> str:
        """``"none"``, ``"draft"`` or ``"released"``."""
        if self.feedback is None:
            return "none"
        return "released" if self.feedback.released else "draft"


def student_review(
    store: Any,
    student_id: int,
    *,
    model_name: str,
    categories: Iterable[str] | None = None,
) -> StudentReview:
    """Gather one student's work and the latest feedback for the review page.

    Args:
        store: the ``db.Store``.
        student_id: the student's user id.
        model_name: the course's model (the checklist rebuilds the student's notebook).
        categories: the tutorial sections a student may pick, as the Submit page uses.

    Raises:
        ReviewError: no such student.
    """
    from db import NotFoundError
    from workbook.submission import checklist

    try:
        student = store.user(student_id)
    except NotFoundError:
        raise ReviewError("That student does not exist (any more).") from None
    if student.role != "student":
        raise ReviewError(f"{student.name} is not a student; only students' work is reviewed.")
    history = {
        question_id: store.answer_history(student_id, question_id)
        for question_id in store.question_ids
    }
    try:
        feedback = store.feedback_for(student_id)
    except NotFoundError:
        feedback = None
    try:
        flags = checklist.checklist_for(
            store, student_id, model_name=model_name, categories=categories
        )
    except WorkbookError as exc:
        # The rest of the review is still worth showing; say why the flags are missing.
        flags = exc
    return StudentReview(
        student=student,
        cells=store.cells_for(student_id),
        answers=store.answers_for(student_id),
        answer_history=history,
        tutorial_log=store.tutorial_log(student_id),
        checklist=flags,
        feedback=feedback,
        exports=store.exports_for(student_id),
    )


def save_feedback_draft(
    store: Any,
    student_id: int,
    grader_id: int,
    *,
    grade: str | None,
    comment: str,
    item_comments: Mapping[str, str],
) -> Any:
    """Save a draft of a student's feedback (the student does not see drafts).

    Every save appends a version; the student keeps seeing the last *released* version
    until the TA releases again.

    Args:
        grade: a label of ``GRADE_SCALE`` or ``None``.
        comment: the overall comment.
        item_comments: item id (see ``feedback_items``) -> comment; blank ones are dropped.

    Raises:
        ReviewError: unknown grade, text too long, or the accounts do not fit.
    """
    return _save(store, student_id, grader_id, grade, comment, item_comments, released=False)


def release_feedback(
    store: Any,
    student_id: int,
    grader_id: int,
    *,
    grade: str | None,
    comment: str,
    item_comments: Mapping[str, str],
) -> Any:
    """Save the feedback and make it visible to the student on their Home page.

    Raises:
        ReviewError: no grade chosen, unknown grade, text too long, or wrong accounts.
    """
    if not grade:
        raise ReviewError("Choose a grade before releasing the feedback.")
    return _save(store, student_id, grader_id, grade, comment, item_comments, released=True)


def _save(
    store: Any,
    student_id: int,
    grader_id: int,
    grade: str | None,
    comment: str,
    item_comments: Mapping[str, str],
    *,
    released: bool,
) -> Any:
    from db import DbError

    points = grade_points(grade)
    items = {key: text for key, text in item_comments.items() if text.strip()}
    try:
        return store.save_feedback(
            student_id,
            grader_id,
            grade=points,
            comment=comment,
            item_comments=items,
            released=released,
        )
    except DbError as exc:
        raise ReviewError(f"The feedback was not saved: {exc}.") from exc


def add_snippet(store: Any, text: str, author_id: int) -> Any:
    """Save a reusable feedback comment that every TA can insert.

    Raises:
        ReviewError: the text is empty or too long.
    """
    from db import DbError

    if not text.strip():
        raise ReviewError("Write the snippet first.")
    try:
        return store.add_snippet(text, author_id)
    except DbError as exc:
        raise ReviewError(f"The snippet was not saved: {exc}.") from exc


def worksheet_grades(store: Any) -> dict[str, GradeEntry]:
    """What the Moodle worksheet receives: released feedback per student email.

    Drafts are not exported; a student whose feedback was never released gets no entry.
    """
    from db import NotFoundError

    items_by_path: dict[str | None, list[FeedbackItem]] = {}
    grades: dict[str, GradeEntry] = {}
    for row in store.roster():
        try:
            feedback = store.released_feedback_for(row.user_id)
        except NotFoundError:
            continue
        if row.tutorial_path not in items_by_path:
            items_by_path[row.tutorial_path] = feedback_items(row.tutorial_path)
        grades[row.email.strip().lower()] = GradeEntry(
            label=grade_label(feedback.grade),
            comment_html=feedback_comment_html(
                feedback.comment, feedback.item_comments, items_by_path[row.tutorial_path]
            ),
            modified=feedback.created_at,
        )
    return grades


def responses_csv(store: Any) -> bytes:
    """All students' responses as a spreadsheet: one row per student, one column per answer.

    UTF-8 with a byte order mark so spreadsheet programs read accents right. A cell that
    starts like a formula (``=``, ``+``, ``-``, ``@``) gets a leading apostrophe so that a
    spreadsheet shows it as text instead of running it.
    """
    from workbook.exercise import content

    questions = content.questions()
    header = ["Full name", "Email address", "Tutorial path"]
    for slot in store.slots:
        header += [
            f"Tutorial {slot} category",
            f"Tutorial {slot} title",
            f"Tutorial {slot} URL",
            f"Tutorial {slot} reflection",
        ]
    header += ["Project description", "Project link", "Project reflection"]
    header += [question.title for question in questions]
    header += ["Steps passed", "Last export", "Feedback status", "Released grade"]

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in store.roster():
        log = store.tutorial_log(row.user_id)
        answers = store.answers_for(row.user_id)
        cells: list[Any] = [row.name, row.email, log.path or ""]
        for slot in store.slots:
            entry = log.entries.get(slot)
            cells += (
                [entry.category, entry.title, entry.url, entry.reflection]
                if entry is not None
                else ["", "", "", ""]
            )
        project = log.project
        cells += (
            [project.description, project.link, project.reflection]
            if project is not None
            else ["", "", ""]
        )
        cells += [answers[q.id].text if q.id in answers else "" for q in questions]
        released = _released_label(store, row.user_id)
        cells += [
            f"{row.steps_passed}/{_graded_steps()}",
            row.last_export_at.isoformat(timespec="minutes") if row.last_export_at else "",
            row.feedback_status,
            released,
        ]
        writer.writerow([_spreadsheet_safe(str(cell)) for cell in cells])
    return (_BOM + buffer.getvalue()).encode("utf-8")


def _released_label(store: Any, student_id: int) -> str:
    from db import NotFoundError

    try:
        return grade_label(store.released_feedback_for(student_id).grade) or ""
    except NotFoundError:
        return ""


def _graded_steps() -> int:
    from workbook.exercise import content

    return sum(1 for step in content.steps() if not step.given)


def _spreadsheet_safe(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# --- Moodle's offline grading worksheet -------------------------------------------------

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
    points = grade_points(label)
    return f"{(points or 0.0) / points_max * top:.2f}"

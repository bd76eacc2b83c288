"""The roster: every student at a glance, as a table a TA filters and sorts, or a spreadsheet.

``roster_records`` flattens the store's roster rows for a table, ``filter_roster`` filters and
sorts them, and ``responses_csv`` writes all students' responses, one row per student.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from workbook.review.grading import ReviewError, grade_label

__all__ = [
    "filter_roster",
    "reflections_counted",
    "responses_csv",
    "roster_records",
]

# The byte order mark: spreadsheet programs then read the file as UTF-8.
_BOM = "\ufeff"


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


def responses_csv(store: Any, only: Collection[int] | None = None) -> bytes:
    """All students' responses as a spreadsheet: one row per student, one column per answer.

    UTF-8 with a byte order mark so spreadsheet programs read accents right. A cell that
    starts like a formula (``=``, ``+``, ``-``, ``@``) gets a leading apostrophe so that a
    spreadsheet shows it as text instead of running it.

    Args:
        only: these students' ids only (a TA's sections); ``None`` for every student.
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
        if only is not None and row.user_id not in only:
            continue
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

"""Who is stuck now: the students a TA should walk over to first.

Stuck on a step means the latest run of it does not pass and either ``K`` runs in a row
did not pass (since the last passing one), or the student has never passed it ``N``
minutes after their first run. Longest stuck first. Each row carries the last cause and
message, and the diff of the last two different code texts (``difflib``), so a TA sees what
the student is trying before walking over.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from workbook.exercise import cause_label

__all__ = ["code_diff", "stuck_rows"]


def code_diff(codes: Sequence[str]) -> str:
    """A unified diff from the previous code to the latest (``codes`` newest first)."""
    if len(codes) < 2:
        return ""
    latest, previous = codes[0], codes[1]
    return "".join(
        difflib.unified_diff(
            previous.splitlines(keepends=True),
            latest.splitlines(keepends=True),
            fromfile="previous",
            tofile="latest",
        )
    )


def stuck_rows(
    rows: Sequence[Mapping[str, Any]],
    titles: Mapping[str, str],
    now: datetime,
    last_codes: Callable[[int, str], list[str]],
    *,
    min_failures: int,
    name_of: Callable[[Mapping[str, Any]], str],
    with_code: bool,
) -> list[dict[str, Any]]:
    """The store's stuck rows, with minutes stuck, the cause label and the code diff.

    Args:
        rows: ``Store.class_stuck`` rows.
        last_codes: ``(user_id, step_id) -> the last two different codes``, newest first.
        min_failures: K, to say why each student is listed.
        name_of: the name to show for a row (a pseudonym in projection mode).
        with_code: include the last message and the diff (off in projection mode).
    """
    out = []
    for row in rows:
        minutes = (now - datetime.fromisoformat(row["since"])).total_seconds() / 60
        why = (
            f"{row['streak']} runs in a row not passing"
            if row["streak"] >= min_failures
            else "no pass yet since the first run"
        )
        out.append(
            {
                "user_id": row["user_id"],
                "name": name_of(row),
                "step_id": row["step_id"],
                "step": titles.get(row["step_id"], row["step_id"]),
                "why": why,
                "failing_runs": row["streak"],
                "minutes_stuck": round(max(minutes, 0.0), 1),
                "last_cause": row["cause"] or "unclassified",
                "last_cause_label": cause_label(row["cause"]),
                "last_message": row["message"] if with_code else None,
                "diff": code_diff(last_codes(row["user_id"], row["step_id"]))
                if with_code
                else None,
            }
        )
    out.sort(key=lambda r: (-r["minutes_stuck"], r["user_id"], r["step_id"]))
    return out

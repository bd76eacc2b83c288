"""What the checks named, per step: the common causes now and over all time, the share of
failures with no specific cause, and whether the run after a cause passed.

A student counts once per step, for the cause of their *latest* failing run. "No specific
cause" is a failing run whose cause is generic (``GENERIC_CAUSES``: something differs, the
check cannot say why) or unclassified (stored before cause ids): a high share means a
check is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbook.exercise import GENERIC_CAUSES, cause_label

__all__ = ["UNCLASSIFIED", "cause_rows", "next_run_rows", "specific_share_rows"]

UNCLASSIFIED = "unclassified"


def _key(cause: str | None) -> str:
    return cause if cause is not None else UNCLASSIFIED


def cause_rows(
    all_time: Sequence[Mapping[str, Any]],
    recent: Sequence[Mapping[str, Any]],
    titles: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Per step and cause: students whose latest failing run named it, all time and recent.

    Ordered by step, then most students first (recent, then all time).
    """
    recent_counts = {(r["step_id"], _key(r["cause"])): r["students"] for r in recent}
    rows = []
    for row in all_time:
        cause = _key(row["cause"])
        rows.append(
            {
                "step_id": row["step_id"],
                "step": titles.get(row["step_id"], row["step_id"]),
                "cause": cause,
                "label": cause_label(row["cause"]),
                "specific": row["cause"] is not None and row["cause"] not in GENERIC_CAUSES,
                "students_recent": recent_counts.get((row["step_id"], cause), 0),
                "students_all": row["students"],
            }
        )
    order = list(titles)
    rows.sort(
        key=lambda r: (
            order.index(r["step_id"]) if r["step_id"] in order else len(order),
            -r["students_recent"],
            -r["students_all"],
            r["cause"],
        )
    )
    return rows


def specific_share_rows(
    causes: Sequence[Mapping[str, Any]], titles: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per step: students failing now-or-before, how many without a specific cause (generic
    or unclassified), how many unclassified, and the share without a specific cause."""
    totals: dict[str, list[int]] = {}
    for row in causes:
        counts = totals.setdefault(row["step_id"], [0, 0, 0])
        counts[0] += row["students_all"]
        counts[1] += 0 if row["specific"] else row["students_all"]
        counts[2] += row["students_all"] if row["cause"] == UNCLASSIFIED else 0
    return [
        {
            "step_id": step,
            "step": titles.get(step, step),
            "failing": failing,
            "no_specific_cause": unspecific,
            "unclassified": unclassified,
            "no_specific_share": unspecific / failing if failing else 0.0,
        }
        for step in titles
        if step in totals
        for failing, unspecific, unclassified in [totals[step]]
    ]


def next_run_rows(
    rows: Sequence[Mapping[str, Any]], titles: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per step and cause: of the students who ran the step again after their last run
    naming it, the share whose next run passed; ``never_helped`` flags a cause whose next
    runs never passed."""
    out = []
    for row in rows:
        followed = row["followed"]
        out.append(
            {
                "step_id": row["step_id"],
                "step": titles.get(row["step_id"], row["step_id"]),
                "cause": _key(row["cause"]),
                "label": cause_label(row["cause"]),
                "students": row["students"],
                "followed": followed,
                "passed_next": row["passed_next"],
                "next_pass_share": row["passed_next"] / followed if followed else None,
                "never_helped": followed > 0 and row["passed_next"] == 0,
            }
        )
    return out

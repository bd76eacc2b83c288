"""How long a step takes: attempts until the first pass, and time to pass as a survival curve.

Time to pass counts from a student's first run of the step. A student who has not passed
yet is *censored* at "now": still running, not dropped (dropping them would make a hard step
look quick). The curve is the Kaplan-Meier estimate of the share still without a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["MAX_ATTEMPTS_BAR", "attempt_rows", "bucket_order", "kaplan_meier", "survival_rows"]

# Attempts past this are one bar ("10+"): the long tail matters, its exact shape less.
MAX_ATTEMPTS_BAR = 10


def _bucket(attempts: int | None) -> str:
    if attempts is None:
        return "not yet"
    return f"{MAX_ATTEMPTS_BAR}+" if attempts >= MAX_ATTEMPTS_BAR else str(attempts)


def bucket_order() -> list[str]:
    """The attempts buckets in display order."""
    return [str(n) for n in range(1, MAX_ATTEMPTS_BAR)] + [f"{MAX_ATTEMPTS_BAR}+", "not yet"]


def attempt_rows(
    rows: Sequence[Mapping[str, Any]], titles: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per step and bucket: students whose first pass took that many runs ("not yet": ran
    the step but never passed). Buckets with no student are left out."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["step_id"], _bucket(row["attempts"]))
        counts[key] = counts.get(key, 0) + 1
    order = bucket_order()
    return [
        {"step_id": step, "step": titles.get(step, step), "attempts": bucket, "students": n}
        for (step, bucket), n in sorted(
            counts.items(),
            key=lambda kv: (list(titles).index(kv[0][0]), order.index(kv[0][1])),
        )
    ]


def kaplan_meier(durations: Sequence[tuple[float, bool]]) -> list[dict[str, float]]:
    """The Kaplan-Meier curve of "not passed yet" for ``(minutes, passed)`` pairs.

    Args:
        durations: per student, minutes from the first run to the first pass (``passed``
            True) or to now (``passed`` False: censored, still running).

    Returns:
        Points ``minutes, still_running, at_risk, passed`` at 0 and at each time a pass
        happened: ``still_running`` is S(t) = prod over pass times t_i <= t of
        (1 - d_i / n_i), with n_i the students not yet passed nor censored before t_i.
    """
    points = [{"minutes": 0.0, "still_running": 1.0, "at_risk": len(durations), "passed": 0}]
    surviving = 1.0
    ordered = sorted(durations)
    at_risk = len(ordered)  # students whose time is >= the time being looked at
    i = 0
    while i < len(ordered):  # one sweep over the times, each time's students together
        t, j, passed = ordered[i][0], i, 0
        while j < len(ordered) and ordered[j][0] == t:
            passed += bool(ordered[j][1])
            j += 1
        if passed:
            surviving *= 1 - passed / at_risk
            points.append(
                {"minutes": t, "still_running": surviving, "at_risk": at_risk, "passed": passed}
            )
        at_risk -= j - i
        i = j
    return points


def _minutes(start: str, end: str | datetime) -> float:
    begin = datetime.fromisoformat(start)
    finish = end if isinstance(end, datetime) else datetime.fromisoformat(end)
    return max(0.0, (finish - begin).total_seconds() / 60)


def survival_rows(
    rows: Sequence[Mapping[str, Any]], titles: Mapping[str, str], now: datetime
) -> list[dict[str, Any]]:
    """Per step, the Kaplan-Meier points of time to pass (minutes from the first run)."""
    per_step: dict[str, list[tuple[float, bool]]] = {}
    for row in rows:
        passed = row["pass_at"] is not None
        minutes = _minutes(row["first_at"], row["pass_at"] if passed else now)
        per_step.setdefault(row["step_id"], []).append((round(minutes, 2), passed))
    out = []
    for step in titles:
        if step in per_step:
            for point in kaplan_meier(per_step[step]):
                out.append({"step_id": step, "step": titles[step], **point})
    return out

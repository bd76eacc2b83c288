"""The class view as text or JSON, for ``python -m workbook class-report``.

The same figures the Class page draws (funnel, writing, causes with counts and next-run pass
share, stuck students, clusters), so terms can be scripted and compared.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["report_json", "report_text"]


def _as_dict(view: Any) -> dict[str, Any]:
    options = view.options
    return {
        "generated_at": view.generated_at.isoformat(),
        "options": {
            "recent_minutes": options.recent_minutes,
            "stuck_runs": options.stuck_runs,
            "stuck_minutes": options.stuck_minutes,
            "projection": options.projection,
        },
        "students": view.students,
        "exports": view.exports,
        "funnel": view.funnel,
        "writing": view.writing,
        "causes": view.causes,
        "no_specific_cause": view.specific,
        "next_runs": view.next_runs,
        "attempts": view.attempts,
        "survival": view.survival,
        "stuck": view.stuck,
        "clusters": view.clusters,
    }


def report_json(view: Any) -> str:
    """Every figure as one JSON document (records as in ``ClassView``)."""
    return json.dumps(_as_dict(view), indent=2, ensure_ascii=False)


def _n(value: Any) -> str:
    if value is None:
        return "<5"
    if isinstance(value, float):
        return f"{value:.0%}"
    return str(value)


def report_text(view: Any) -> str:
    """The main figures as plain text tables."""
    out = [
        f"Class report, {view.generated_at:%Y-%m-%d %H:%M} UTC: {_n(view.students)} students, "
        f"{_n(view.exports)} exported",
        "",
        "Progress per step (opened / ran / ever passed / pass now):",
    ]
    for row in view.funnel:
        passed = (
            ""
            if row["ever_passed"] is None and row["step_id"] == "setup"
            else f" / {_n(row['ever_passed'])} / {_n(row['pass_now'])}"
        )
        out.append(f"  {row['step']:<8} {_n(row['opened'])} / {_n(row['ran'])}{passed}")
    out += ["", "Writing (started / long enough / final):"]
    for row in view.writing:
        out.append(
            f"  {row['label']:<13} {_n(row['started'])} / {_n(row['long_enough'])} / "
            f"{_n(row['final'])}"
        )
    minutes = view.options.recent_minutes
    out += ["", f"Causes (students: last {minutes:g} min / all time; next run passed):"]
    shares = {(r["step_id"], r["cause"]): r for r in view.next_runs}
    for row in view.causes:
        nxt = shares.get((row["step_id"], row["cause"]))
        helped = (
            "-" if nxt is None or nxt["next_pass_share"] is None else _n(nxt["next_pass_share"])
        )
        flag = "  (never followed by a pass)" if nxt and nxt["never_helped"] else ""
        out.append(
            f"  {row['step']:<8} {row['cause']:<26} {_n(row['students_recent']):>4} / "
            f"{_n(row['students_all']):>4}; {helped}{flag}"
        )
    for row in view.specific:
        share = "<5" if row["no_specific_share"] is None else f"{row['no_specific_share']:.0%}"
        out.append(f"  {row['step']:<8} without a specific cause: {share}")
    out += ["", f"Stuck now ({len(view.stuck)}):"]
    for row in view.stuck:
        out.append(
            f"  {row['name']:<24} {row['step']:<8} {row['minutes_stuck']:>6.1f} min  "
            f"{row['why']}; last: {row['last_cause']}"
        )
    out += ["", "Solution clusters (size, passing, candidate for a new check):"]
    for row in view.clusters:
        flag = "  <- no specific cause" if row["no_specific_cause"] else ""
        out.append(
            f"  {row['step']:<8} {row['cluster']}  size {_n(row['size'])}, "
            f"passing {_n(row['passing'])}{flag}"
        )
    return "\n".join(out) + "\n"

"""The Class page's charts (Altair / Vega-Lite), each with its numbers as words and a table.

A :class:`Chart` carries what the page shows for one figure: the chart, a caption that says
its numbers in words (for screen readers and for anyone the colours fail), and the table
behind it (shown, and offered as CSV). Meaning never rests on colour alone: facets carry
their names as headers, lines differ by dash and point shape too, and bars carry labels.
A count hidden in projection mode is "<5" in tables and left out of charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from workbook.classview.timing import bucket_order

__all__ = ["Chart", "page_charts", "stuck_table"]

HIDDEN = "<5"


@dataclass(frozen=True)
class Chart:
    """One figure of the page.

    Attributes:
        key: a stable id (widget keys, CSV file name).
        title: the heading.
        chart: the Altair chart (``None`` when there is nothing to draw yet).
        caption: the figure's numbers in words.
        table: the numbers as a table (hidden counts as "<5").
    """

    key: str
    title: str
    chart: alt.TopLevelMixin | None
    caption: str
    table: pd.DataFrame


def _n(value: Any) -> str:
    return HIDDEN if value is None else str(value)


def _pct(value: float | None) -> str:
    return HIDDEN if value is None else f"{value:.0%}"


def _shown(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """A table of ``rows`` with ``columns`` (key -> header); hidden counts become "<5"."""
    frame = pd.DataFrame([{h: r.get(k) for k, h in columns.items()} for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=list(columns.values()))
    for header in frame.columns:
        values = list(frame[header])
        mixed = len({type(v) for v in values if v is not None}) > 1
        if mixed or any(v is None or (isinstance(v, float) and v != v) for v in values):
            # One type per column (Arrow needs it): numbers as text beside the "<5" marks.
            frame[header] = [_cell(v) for v in values]
    return frame


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return HIDDEN
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _long(rows: list[dict[str, Any]], id_key: str, measures: dict[str, str]) -> pd.DataFrame:
    """One row per (row, measure) with a known count, for faceted bars."""
    records = [
        {"what": r[id_key], "measure": label, "students": r[key], "order": i}
        for r in rows
        for i, (key, label) in enumerate(measures.items())
        if r.get(key) is not None
    ]
    return pd.DataFrame(records, columns=["what", "measure", "students", "order"])


def _faceted_bars(data: pd.DataFrame, what: str, sort: list[str]) -> alt.TopLevelMixin | None:
    if data.empty:
        return None
    base = alt.Chart().encode(
        y=alt.Y("what:N", title=what, sort=sort),
        x=alt.X("students:Q", title="students"),
        tooltip=["what", "measure", "students"],
    )
    layered = alt.layer(
        base.mark_bar(),
        base.mark_text(align="left", dx=3).encode(text="students:Q"),
        data=data,
    ).properties(width=170)  # four facets side by side fit a page's width
    return layered.facet(
        column=alt.Column("measure:N", title=None, sort=alt.SortField("order"))
    ).resolve_scale(y="shared")


def _funnel(view: Any) -> Chart:
    measures = {
        "opened": "Opened",
        "ran": "Ran",
        "ever_passed": "Ever passed",
        "pass_now": "Pass now",
    }
    rows = [
        dict(r, ever_passed="no check", pass_now="no check") if r["step_id"] == "setup" else r
        for r in view.funnel
    ]
    caption = "Progress per step. " + "; ".join(
        f"{r['step']}: {_n(r['opened'])} opened, {_n(r['ran'])} ran"
        + (
            ""
            if r["step_id"] == "setup"
            else f", {_n(r['ever_passed'])} ever passed, {_n(r['pass_now'])} pass now"
        )
        for r in rows
    )
    return Chart(
        "funnel",
        "Progress per step",
        _faceted_bars(_long(view.funnel, "step", measures), "step", [r["step"] for r in rows]),
        caption + ".",
        _shown(rows, {"step": "Step", **measures}),
    )


def _writing(view: Any) -> Chart:
    measures = {"started": "Started", "long_enough": "Long enough", "final": "Final"}
    rows = view.writing
    caption = (
        "Analysis answers and reflections. "
        + "; ".join(
            f"{r['label']}: {_n(r['started'])} started, {_n(r['long_enough'])} long enough, "
            f"{_n(r['final'])} final"
            for r in rows
        )
        + f". Exports done: {_n(view.exports)}."
    )
    return Chart(
        "writing",
        "Analysis and reflections",
        _faceted_bars(_long(rows, "label", measures), "item", [r["label"] for r in rows]),
        caption,
        _shown(rows, {"label": "Item", **measures}),
    )


def _causes(view: Any, top: int) -> Chart:
    minutes = f"{view.options.recent_minutes:g}"
    rows = view.causes
    shown = []
    for step in dict.fromkeys(r["step_id"] for r in rows):
        shown += [dict(r) for r in view.top_causes(step, top)]
    for r in shown:
        r["what"] = f"{r['step']}: {r['cause']}"
    measures = {"students_recent": f"Last {minutes} min", "students_all": "All time"}
    caption = (
        f"The {top} most common causes per step (students whose latest failing run named it, "
        f"last {minutes} minutes / all time). "
        + "; ".join(
            f"{r['what']}: {_n(r['students_recent'])} / {_n(r['students_all'])}" for r in shown
        )
        + ". Share of failing students without a specific cause: "
        + "; ".join(f"{r['step']}: {_pct(r['no_specific_share'])}" for r in view.specific)
        + "."
    )
    return Chart(
        "causes",
        "Misconceptions the checks named",
        _faceted_bars(_long(shown, "what", measures), "step: cause", [r["what"] for r in shown]),
        caption if rows else "No failing runs yet.",
        _shown(
            rows,
            {
                "step": "Step",
                "cause": "Cause",
                "label": "Meaning",
                "students_recent": f"Students, last {minutes} min",
                "students_all": "Students, all time",
                "specific": "Specific",
            },
        ),
    )


def _next_runs(view: Any) -> Chart:
    rows = [dict(r, what=f"{r['step']}: {r['cause']}") for r in view.next_runs]
    for r in rows:
        r["flag"] = "never followed by a pass" if r["never_helped"] else ""
    drawn = [r for r in rows if r["next_pass_share"] is not None]
    data = pd.DataFrame(
        [
            {
                "what": r["what"],
                "share": r["next_pass_share"],
                "label": f"{r['next_pass_share']:.0%}" + (" (never)" if r["never_helped"] else ""),
            }
            for r in drawn
        ],
        columns=["what", "share", "label"],
    )
    chart = None
    if not data.empty:
        base = alt.Chart(data).encode(
            y=alt.Y("what:N", title="step: cause", sort=[r["what"] for r in drawn]),
            x=alt.X(
                "share:Q",
                title="next run passed",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=["what", alt.Tooltip("share:Q", format=".0%")],
        )
        chart = base.mark_bar() + base.mark_text(align="left", dx=3).encode(text="label:N")
    caption = "Share of students whose next run passed after the cause was named. " + "; ".join(
        f"{r['what']}: {r['next_pass_share']:.0%} of {r['followed']}"
        + (" (never followed by a pass)" if r["never_helped"] else "")
        for r in drawn
    )
    return Chart(
        "next_runs",
        "Does the message help?",
        chart,
        caption + "." if drawn else "No student has run a step again after a failing check yet.",
        _shown(
            rows,
            {
                "step": "Step",
                "cause": "Cause",
                "students": "Students shown it",
                "followed": "Ran again",
                "passed_next": "Next run passed",
                "next_pass_share": "Share",
                "flag": "Flag",
            },
        ),
    )


def _attempts(view: Any) -> Chart:
    rows = view.attempts
    data = pd.DataFrame(
        [r for r in rows if r["students"] is not None], columns=["step", "attempts", "students"]
    )
    chart = None
    if not data.empty:
        base = alt.Chart().encode(
            x=alt.X("attempts:O", title="runs until the first pass", sort=bucket_order()),
            y=alt.Y("students:Q", title="students"),
            tooltip=["step", "attempts", "students"],
        )
        chart = (
            alt.layer(base.mark_bar(), base.mark_text(dy=-6).encode(text="students:Q"), data=data)
            .properties(width=220, height=140)
            .facet(facet=alt.Facet("step:N", title=None), columns=3)
        )
    caption = "Runs until the first pass, per step. " + "; ".join(
        f"{r['step']}, {r['attempts']}: {_n(r['students'])}" for r in rows
    )
    return Chart(
        "attempts",
        "Attempts to pass",
        chart,
        caption + ".",
        _shown(
            rows, {"step": "Step", "attempts": "Runs until the first pass", "students": "Students"}
        ),
    )


def _survival(view: Any) -> Chart:
    rows = view.survival
    data = pd.DataFrame(rows, columns=["step", "minutes", "still_running"])
    chart = None
    if not data.empty:
        chart = (
            alt.Chart(data)
            .mark_line(interpolate="step-after", point=True)
            .encode(
                x=alt.X("minutes:Q", title="minutes since the first run"),
                y=alt.Y("still_running:Q", title="not passed yet", axis=alt.Axis(format="%")),
                color=alt.Color("step:N", title="step"),
                strokeDash=alt.StrokeDash("step:N", title="step"),
                shape=alt.Shape("step:N", title="step"),
                tooltip=["step", "minutes", alt.Tooltip("still_running:Q", format=".0%")],
            )
        )
    last = {r["step"]: r for r in rows}
    caption = (
        "Time to pass from the first run, students not passed yet counted as still running "
        "(Kaplan-Meier). Share not passed yet at the last pass seen: "
        + "; ".join(
            f"{s}: {r['still_running']:.0%} at {r['minutes']:g} min" for s, r in last.items()
        )
    )
    return Chart(
        "survival",
        "Time to pass",
        chart,
        caption + ".",
        _shown(
            rows,
            {
                "step": "Step",
                "minutes": "Minutes",
                "still_running": "Not passed yet",
                "at_risk": "Still running",
                "passed": "Passed then",
            },
        ),
    )


def _clusters(view: Any, top: int) -> Chart:
    rows = view.clusters
    shown = []
    for step in dict.fromkeys(r["step_id"] for r in rows):
        shown += [r for r in rows if r["step_id"] == step and r["size"] is not None][:top]
    data = pd.DataFrame(
        [
            {
                "what": f"{r['step']}: {r['cluster']}",
                "size": r["size"],
                "label": f"{r['pass_rate']:.0%} pass"
                + (" · no cause" if r["no_specific_cause"] else ""),
            }
            for r in shown
        ],
        columns=["what", "size", "label"],
    )
    chart = None
    if not data.empty:
        base = alt.Chart(data).encode(
            y=alt.Y("what:N", title="step: cluster", sort=list(data["what"])),
            x=alt.X("size:Q", title="students"),
            tooltip=["what", "size", "label"],
        )
        chart = base.mark_bar() + base.mark_text(align="left", dx=3).encode(text="label:N")
    candidates = [r for r in rows if r["no_specific_cause"]]
    caption = (
        f"The {top} largest solution clusters per step (same code up to names and constants). "
        + "; ".join(
            f"{r['step']} {r['cluster']}: {r['size']} students, {r['pass_rate']:.0%} pass"
            for r in shown
        )
        + f". {len(candidates)} failing clusters with no specific cause (candidates for a new check)."
    )
    table_rows = [
        dict(
            r,
            causes=", ".join(f"{c} {_n(n)}" for c, n in r["causes"].items()),
            candidate="candidate for a new check" if r["no_specific_cause"] else "",
        )
        for r in rows
    ]
    return Chart(
        "clusters",
        "Solution clusters",
        chart,
        caption,
        _shown(
            table_rows,
            {
                "step": "Step",
                "cluster": "Cluster",
                "size": "Students",
                "passing": "Passing",
                "pass_rate": "Pass rate",
                "causes": "Causes (failing)",
                "candidate": "Flag",
            },
        ),
    )


def page_charts(view: Any, *, top: int = 3) -> list[Chart]:
    """Every chart of the Class page, in page order (the stuck list is a table of its own)."""
    return [
        _funnel(view),
        _writing(view),
        _causes(view, top),
        _next_runs(view),
        _attempts(view),
        _survival(view),
        _clusters(view, 5),
    ]


def stuck_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The stuck students as the page's table, one row each, in the rows' order."""
    return _shown(
        rows,
        {
            "name": "Student",
            "step": "Step",
            "minutes_stuck": "Minutes stuck",
            "failing_runs": "Runs not passing",
            "why": "Why listed",
            "last_cause": "Last cause",
            "last_cause_label": "Meaning",
        },
    )

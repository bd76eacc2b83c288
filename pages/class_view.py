"""Class: the whole class at a glance for TAs and instructors, live during a lab session.

Staff only: the role is checked here on every run, and ``classview.class_view`` refuses
anyone else on the server too. Each chart comes with its numbers in words and as a table
(CSV download); the figures refresh on demand and, if chosen, every few seconds.
"""

from __future__ import annotations

import streamlit as st

from pages import common
from workbook import WorkbookError, classview

user = common.require_user("ta", "instructor")
wb = common.get_workbook()

OPEN_IN_REVIEW = "review:open_student"  # read by pages/review.py: open this student
GO_KEY = "class:go_review"
REFRESH_CHOICES = {"Off": None, "every 10 s": 10, "every 30 s": 30, "every 60 s": 60}

st.title("Class")
st.caption(
    "Where the class is, what the checks are telling students, and who needs help first. "
    "Only the students you teach are counted."
)

with st.container(border=True):
    refresh, window, runs, minutes, projection = st.columns([2, 2, 2, 2, 2])
    every = refresh.selectbox("Refresh", list(REFRESH_CHOICES), index=2, key="class:refresh")
    refresh.button("Refresh now", key="class:refresh_now")
    recent = window.number_input(
        "Recent window (minutes)", 1, 240, 15, key="class:recent", help="for the causes"
    )
    stuck_runs = runs.number_input("Stuck after K failing runs", 2, 50, 3, key="class:stuck_runs")
    stuck_minutes = minutes.number_input(
        "…or N minutes without a pass", 1, 600, 20, key="class:stuck_minutes"
    )
    projected = projection.toggle(
        "Projection mode",
        key="class:projection",
        help="For the lecture screen: pseudonyms, no code or messages, counts under 5 hidden.",
    )

options = classview.ClassViewOptions(
    recent_minutes=float(recent),
    stuck_runs=int(stuck_runs),
    stuck_minutes=float(stuck_minutes),
    projection=projected,
)


def _open_student(rows: list[dict], table_key: str) -> None:
    selection = st.session_state[table_key].selection
    picked = selection.get("rows", []) if selection else []
    if picked and picked[0] < len(rows):
        st.session_state[OPEN_IN_REVIEW] = rows[picked[0]]["user_id"]
        st.session_state[GO_KEY] = True


def _numbers(chart: classview.Chart) -> None:
    with st.expander(f"{chart.title}: the numbers"):
        st.dataframe(chart.table, hide_index=True, key=f"class:table:{chart.key}")
        st.download_button(
            "Download CSV",
            chart.table.to_csv(index=False),
            file_name=f"class-{chart.key}.csv",
            mime="text/csv",
            key=f"class:csv:{chart.key}",
        )


def _chart(chart: classview.Chart) -> None:
    st.subheader(chart.title)
    if chart.chart is not None:
        st.altair_chart(chart.chart, alt=chart.caption, key=f"class:chart:{chart.key}")
    st.caption(chart.caption)
    _numbers(chart)


def _stuck(view: classview.ClassView) -> None:
    st.header("Who is stuck, now")
    rows = view.stuck
    rule = (
        f"{options.stuck_runs} or more runs of a step in a row not passing, or no pass "
        f"{options.stuck_minutes:g} minutes after the first run; longest stuck first."
    )
    if not rows:
        st.success(f"Nobody is stuck ({rule})")
        return
    st.caption(
        f"{len(rows)} stuck: {rule}"
        + ("" if projected else " Select a row to open the student in TA review.")
    )
    table = classview.stuck_table(rows)
    table_key = "class:stuck:table"
    st.dataframe(
        table,
        hide_index=True,
        key=table_key,
        on_select="ignore" if projected else (lambda: _open_student(rows, table_key)),
        selection_mode="single-row",
    )
    if st.session_state.pop(GO_KEY, False):
        st.switch_page("pages/review.py")
    if projected:
        return
    names = {i: f"{r['name']} · {r['step']}" for i, r in enumerate(rows)}
    pick, go = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick.selectbox(
        "Open a stuck student", list(names), format_func=names.get, key="class:stuck:pick"
    )
    if go.button("Open in TA review", key="class:stuck:open"):
        st.session_state[OPEN_IN_REVIEW] = rows[chosen]["user_id"]
        st.switch_page("pages/review.py")
    for row in rows[:10]:
        with st.expander(f"{row['name']}, {row['step']}: last two code versions"):
            st.markdown(f"**Last message** ({row['last_cause']}):")
            st.text(row["last_message"] or "(no check message)")
            if row["diff"]:
                st.code(row["diff"], language="diff")
            else:
                st.caption("Only one version of the code so far.")


def _clusters_code(view: classview.ClassView) -> None:
    if projected:
        return
    for row in view.clusters[:15]:
        if row["representative"]:
            with st.expander(f"{row['step']}, cluster {row['cluster']}: one representative"):
                st.code(row["representative"], language="python")


def _figures() -> None:
    try:
        view = classview.class_view(wb.store, user, options)
    except WorkbookError as exc:
        st.error(f"{exc} Sign in with a staff account to see the class.")
        return
    st.caption(
        f"Figures for {view.generated_at:%H:%M:%S} UTC · {view.students or '<5'} students"
        + (" · projection mode" if projected else "")
    )
    charts = classview.page_charts(view)
    st.header("Progress")
    for chart in charts[:2]:
        _chart(chart)
    st.header("Misconceptions, live")
    for chart in charts[2:4]:
        _chart(chart)
    _stuck(view)
    st.header("Time and attempts to pass")
    for chart in charts[4:6]:
        _chart(chart)
    st.header("Solution clusters")
    _chart(charts[6])
    _clusters_code(view)


st.fragment(_figures, run_every=REFRESH_CHOICES[every])()

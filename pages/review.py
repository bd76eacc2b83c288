"""TA review: roster, one student's work with feedback and grade, Moodle CSV exports.

Staff only: the role is checked on the server on every run before anything else is drawn,
so a student who opens this page's URL gets a refusal and no TA data.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from pages import common, review_export, review_student, widgets
from workbook import WorkbookError, review

user = common.require_user("ta", "instructor")
wb = common.get_workbook()
widgets.install_autosave()

VIEW_KEY = "review:view"
STUDENT_KEY = "review:student_id"
VIEWS = ("Roster", "Review one student", "Export for Moodle")

st.title("TA review")


TABLE_GENERATION_KEY = "review:roster:generation"


def _open_student(student_id: int) -> None:
    st.session_state[STUDENT_KEY] = student_id
    st.session_state[VIEW_KEY] = VIEWS[1]
    # A new table key next time: the old row selection would otherwise stay selected, and
    # clicking that row again would not count as a change.
    st.session_state[TABLE_GENERATION_KEY] = st.session_state.get(TABLE_GENERATION_KEY, 0) + 1


def _on_roster_select(table_key: str) -> None:
    selection = st.session_state[table_key].selection
    rows = selection.get("rows", []) if selection else []
    shown = st.session_state.get("review:roster:shown", [])
    if rows and rows[0] < len(shown):
        _open_student(shown[rows[0]])


def _on_open_button() -> None:
    chosen = st.session_state.get("review:roster:open")
    if chosen is not None:
        _open_student(chosen)


def roster_view(records: list[dict]) -> None:
    """The roster table with filters and sorting; a selected row opens the student."""
    search, status, exported, sort, order = st.columns([3, 3, 2, 2, 1])
    text = search.text_input("Search name or email", key="review:filter:text")
    statuses = status.multiselect(
        "Feedback", review.FEEDBACK_STATUSES, key="review:filter:feedback"
    )
    export_choice = exported.selectbox(
        "Exported", ("All", "Exported", "Not exported"), key="review:filter:exported"
    )
    sort_labels = {
        "Name": "name",
        "Steps passed": "steps_passed",
        "Reflections": "reflections",
        "Answers": "answers",
        "Exported at": "exported_at",
        "Last activity": "last_activity",
        "Feedback": "feedback",
    }
    sort_by = sort.selectbox("Sort by", list(sort_labels), key="review:filter:sort")
    descending = order.checkbox("Desc.", key="review:filter:desc")
    shown = review.filter_roster(
        records,
        text=text,
        feedback=statuses,
        exported={"All": None, "Exported": True, "Not exported": False}[export_choice],
        sort_by=sort_labels[sort_by],
        descending=descending,
    )
    st.caption(f"{len(shown)} of {len(records)} students. Select a row to review the student.")
    if not shown:
        st.info("No student matches these filters." if records else "No students yet.")
        return
    st.session_state["review:roster:shown"] = [r["user_id"] for r in shown]
    table = pd.DataFrame(
        {
            "Name": [r["name"] for r in shown],
            "Email": [r["email"] for r in shown],
            "Steps (of 6)": [r["steps"] for r in shown],
            "Reflections (of 2)": [r["reflections"] for r in shown],
            "Answers (of 3)": [r["answers"] for r in shown],
            "Exported": [r["exported_at"] for r in shown],
            "Last activity": [r["last_activity"] for r in shown],
            "Feedback": [r["feedback"] for r in shown],
            "Moodle": [r["moodle"] for r in shown],
        }
    )
    if not any(r["moodle"] for r in shown):
        table = table.drop(columns="Moodle")  # no grades synced to Moodle (no LTI)
    table_key = f"review:roster:table:{st.session_state.get(TABLE_GENERATION_KEY, 0)}"
    st.dataframe(
        table,
        hide_index=True,
        key=table_key,
        on_select=lambda: _on_roster_select(table_key),
        selection_mode="single-row",
        column_config={
            "Exported": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "Last activity": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )
    names = {r["user_id"]: f"{r['name']} ({r['email']})" for r in shown}
    pick, go = st.columns([4, 1], vertical_alignment="bottom")
    pick.selectbox("Open a student", list(names), format_func=names.get, key="review:roster:open")
    go.button("Open", key="review:roster:open_button", on_click=_on_open_button)


def _refresh_class_list() -> None:
    try:
        done = wb.lti.refresh_class_list(user)
    except WorkbookError as exc:
        st.session_state[CLASS_LIST_STATUS] = ("error", str(exc))
        return
    words = f"Class list read from Moodle: {done.students} students in {done.courses} course(s)."
    if done.problems:
        words += " Not read: " + " ".join(done.problems)
    st.session_state[CLASS_LIST_STATUS] = ("error" if done.problems else "ok", words)


def class_list_view(roster: Any) -> None:
    """Students Moodle lists who never opened the workbook, and the button that re-reads it."""
    if not roster.can_refresh and not roster.not_started:
        return
    st.markdown(f"#### Enrolled in Moodle, not started ({len(roster.not_started)})")
    fetched = roster.class_list_at
    st.caption(
        f"Class list read from Moodle at {fetched:%Y-%m-%d %H:%M} UTC."
        if fetched
        else "The class list has not been read from Moodle yet."
    )
    if roster.not_started:
        st.dataframe(
            pd.DataFrame(
                {
                    "Name": [name for name, _ in roster.not_started],
                    "Email": [email for _, email in roster.not_started],
                    "Status": ["not started"] * len(roster.not_started),
                }
            ),
            hide_index=True,
            key="review:class_list:table",
        )
    if roster.can_refresh:
        st.button(
            "Refresh the class list from Moodle",
            key="review:class_list:refresh",
            on_click=_refresh_class_list,
        )
    widgets.show_save_note(CLASS_LIST_STATUS)


CLASS_LIST_STATUS = "review:class_list:status"
# The Class page's "open in TA review" asks for a student here (before the view radio exists).
if (asked := st.session_state.pop("review:open_student", None)) is not None:
    _open_student(asked)

roster = wb.lti.roster(user)
records = roster.records
view = st.radio("View", VIEWS, horizontal=True, key=VIEW_KEY, label_visibility="collapsed")

if view == VIEWS[0]:
    roster_view(records)
    class_list_view(roster)
elif view == VIEWS[1]:
    student_id = st.session_state.get(STUDENT_KEY)
    if student_id is None:
        st.info("Pick a student in the roster first.")
    else:
        with common.friendly_errors():
            review_student.show(wb, user, student_id)
else:
    with common.friendly_errors():
        review_export.show(wb, user, records)

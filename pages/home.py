"""Home: sign in or register; then the student's progress, feedback and the active model."""

from __future__ import annotations

import datetime

import streamlit as st

from pages import common
from workbook import review

wb = common.get_workbook()
user = common.current_user()

st.title("LM Logits Workbook")

if user is None:
    st.markdown(
        "Work the homework **Logits in Causal Language Models** here: two PyTorch tutorials "
        "with a reflection each, the logits notebook with automatic checks, three analysis "
        "questions, and a Moodle-ready export. Everything you type is saved as you work."
    )
    sign_in_tab, register_tab = st.tabs(["Sign in", "Register"])
    with sign_in_tab, st.form("home:sign_in"):
        email = st.text_input("Email", key="home:sign_in:email")
        password = st.text_input("Password", type="password", key="home:sign_in:password")
        if st.form_submit_button("Sign in", type="primary"):
            with common.friendly_errors():
                common.sign_in_with_password(email, password)
                st.rerun()
    with register_tab, st.form("home:register"):
        name = st.text_input("Your name (as in Moodle)", key="home:register:name")
        email = st.text_input("Email", key="home:register:email")
        password = st.text_input(
            "Password (at least 8 characters)", type="password", key="home:register:password"
        )
        if st.form_submit_button("Create account", type="primary"):
            with common.friendly_errors():
                common.sign_in(wb.register(name, email, password))
                st.rerun()
    st.stop()

st.subheader(f"Welcome, {user.name}")
st.caption(f"Active model: **{wb.settings.model_name}**")

due = wb.due_date()
if user.role == "student":
    if due is not None:
        days = (due - datetime.date.today()).days
        when = "today" if days == 0 else (f"in {days} days" if days > 0 else f"{-days} days ago")
        st.info(f"The homework is due on **{due:%A %d %B %Y}** ({when}).")
    progress = wb.progress(user.id)
    steps, reflections, answers = st.columns(3)
    steps.metric("Notebook steps passing", f"{progress.steps_passed} / {progress.steps_total}")
    reflections.metric("Tutorial reflections", f"{progress.reflections} / 2")
    answers.metric("Analysis answers", f"{progress.answers} / {progress.answers_total}")
    st.page_link("pages/tutorials.py", label="Tutorial log", icon="📚")
    st.page_link("pages/notebook.py", label="Logits notebook", icon="🧮")
    st.page_link("pages/analysis.py", label="Analysis questions", icon="✍️")
    st.page_link("pages/submit.py", label="Check and export your submission", icon="📦")

    feedback = wb.released_feedback(user.id)
    if feedback is not None:
        st.divider()
        st.subheader("Feedback from your TA")
        st.markdown(f"**Grade:** {review.grade_label(feedback.grade) or 'not graded'}")
        # Student-facing text from a TA is shown as plain text, never as markup.
        st.text(feedback.comment)
        for item, comment in (feedback.item_comments or {}).items():
            if comment:
                st.markdown(f"**{review.item_label(item)}**")
                st.text(comment)
else:
    st.markdown("You are signed in as course staff.")
    st.page_link("pages/review.py", label="Review students' work", icon="🧑‍🏫")
    if user.role == "instructor":
        st.subheader("Course set-up")

        def _save_due_date() -> None:
            with common.friendly_errors():
                wb.set_due_date(user, st.session_state["home:due_date"])

        st.date_input(
            "Homework due date (shown to students on their Home page)",
            value=due,
            key="home:due_date",
            on_change=_save_due_date,
        )
        st.caption(
            "TA accounts: `python -m db add-user --role ta --email ... --name ...`. "
            "The model: the `WORKBOOK_MODEL` environment variable."
        )
    elif due is not None:
        st.caption(f"Due date: {due:%A %d %B %Y}")

"""The "Review one student" view of the TA review page: their work beside the feedback form.

Everything a student typed is drawn with ``st.text`` or ``st.code`` (never as markdown or
HTML), so markup or script in a reflection shows as the characters the student typed. Their
cells' outputs go through ``widgets.render_outputs``: rich outputs only inside a sandboxed,
no-network frame (``workbook/web/output_view.py``), so nothing in them runs in the TA's browser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from pages import widgets
from workbook import exercise, review
from workbook.lti import GradeNotQueued

NO_GRADE = "— no grade yet —"

# The feedback column stays in view while the TA scrolls through the student's work (about
# 6,000 px): it sticks below the app's header. (It does not scroll on its own: that would
# clip the grade's drop-down list.) Narrow windows stack the columns, and nothing sticks.
_STICKY_FEEDBACK_CSS = """
<style>
@media (min-width: 640px) {
  [data-testid="stColumn"]:has(> div > .st-key-review-feedback-panel),
  [data-testid="stColumn"]:has(.st-key-review-feedback-panel) {
    position: sticky;
    top: 3.75rem;
    align-self: flex-start;
  }
}
</style>
"""

CommentField = Callable[[str], None]


def show(wb: Any, grader: Any, student_id: int) -> None:
    """Draw one student's work and the feedback form.

    Args:
        wb: the app's ``Workbook``.
        grader: the signed-in TA or instructor.
        student_id: the student to review.

    Raises:
        review.ReviewError: no such student.
    """
    data = wb.lti.student_review(grader, student_id)
    student = data.student
    st.subheader("Reviewing")
    st.text(f"{student.name} <{student.email}>")
    exports = data.exports
    st.caption(
        f"Last export: {exports[-1].created_at:%Y-%m-%d %H:%M} UTC ({len(exports)} in all)"
        if exports
        else "Not exported yet."
    )
    draft = _Draft(wb, grader, data)
    st.html(_STICKY_FEEDBACK_CSS)
    work, feedback = st.columns([3, 2], gap="large")
    with feedback, st.container(key="review-feedback-panel"):
        _feedback_form(wb, grader, data, draft)
    # Each item's optional comment sits right under the item it is about.
    with work:
        _tutorial_log(data.tutorial_log, draft.comment_field)
        _checklist(data.checklist)
        _cells(data.cells, draft.comment_field)
        _answers(data.answers, data.answer_history, draft.comment_field)


class _Draft:
    """The feedback being written for one student: its widget keys and how it is saved."""

    def __init__(self, wb: Any, grader: Any, data: review.StudentReview) -> None:
        self.wb, self.grader, self.data = wb, grader, data
        self.student_id = data.student.id
        prefix = f"review:{self.student_id}"
        self.prefix = prefix
        self.grade_key, self.comment_key = f"{prefix}:grade", f"{prefix}:comment"
        self.items = review.feedback_items(data.tutorial_log.path)
        self.item_keys = {item.id: f"{prefix}:item:{item.id}" for item in self.items}
        self.status_key = f"{prefix}:saved_status"
        saved = data.feedback
        self.saved_items = saved.item_comments if saved is not None else {}

    def current(self, comment: str | None = None) -> dict[str, Any]:
        """What the form holds now, as ``review.save_feedback_draft`` takes it."""
        state = st.session_state
        grade = state.get(self.grade_key, NO_GRADE)
        return {
            "grade": None if grade == NO_GRADE else grade,
            "comment": state.get(self.comment_key, "") if comment is None else comment,
            "item_comments": {
                item_id: state.get(key, self.saved_items.get(item_id, ""))
                for item_id, key in self.item_keys.items()
            },
        }

    def save(self, comment: str | None = None) -> None:
        self.wb.lti.save_feedback_draft(self.grader, self.student_id, **self.current(comment))

    def comment_field(self, item_id: str) -> None:
        """The optional comment on one item, drawn where the item is shown."""
        if item_id not in self.item_keys:
            return
        label = next(item.label for item in self.items if item.id == item_id)
        widgets.autosave_text_area(
            f"Your comment on {label} (optional)",
            key=self.item_keys[item_id],
            saved_value=self.saved_items.get(item_id, ""),
            save=lambda _text: self.save(),
            height=80,
        )


# --- the student's work ------------------------------------------------------------------


def _tutorial_log(log: Any, comment_field: CommentField) -> None:
    st.markdown("#### Tutorial log")
    if log.path is None:
        st.caption("No path chosen yet.")
    if log.path == "project":
        project = log.project
        st.caption("Path: mini-project (classifier from scratch) instead of two tutorials.")
        if project is None:
            st.warning("No project logged yet.")
            return
        st.markdown("**What they built**")
        st.text(project.description or "(empty)")
        st.markdown("**Link**")
        st.text(project.link or "(none)")
        if project.notebook_name:
            st.caption("Attached notebook:")
            st.text(project.notebook_name)
        st.markdown("**Reflection**")
        st.text(project.reflection or "(no reflection yet)")
        comment_field("project")
        return
    for slot in ("1", "2"):
        entry = log.entries.get(slot)
        st.markdown(f"**Tutorial {slot}**")
        if entry is None:
            st.caption("Not logged yet.")
            comment_field(f"tutorial{slot}")
            continue
        st.text(f"{entry.title} — {entry.category}\n{entry.url}")
        details = []
        if entry.dates:
            details.append("dates " + ", ".join(entry.dates))
        if entry.minutes:
            details.append(f"{entry.minutes} minutes")
        if not entry.from_catalog:
            details.append("not from the catalog")
        if details:
            st.caption("; ".join(details))
        if entry.notes.strip():
            st.caption("Notes:")
            st.text(entry.notes)
        st.caption("Reflection:")
        st.text(entry.reflection or "(no reflection yet)")
        comment_field(f"tutorial{slot}")


def _checklist(checklist: Any) -> None:
    st.markdown("#### Checklist flags (as on the Submit page)")
    if isinstance(checklist, Exception):
        st.warning(f"The checklist could not be built: {checklist}")
        return
    if not checklist.items:
        st.success("Nothing flagged: the submission looks complete.")
    for item in checklist.items:
        # Messages can quote what the student wrote (titles, check details): plain text.
        mark = "⛔" if item.severity == "blocker" else "⚠"
        st.text(f"{mark} {item.message}")


def _cells(cells: Any, comment_field: CommentField) -> None:
    st.markdown("#### Notebook")
    for step in exercise.steps():
        if step.given:
            continue
        cell = cells.get(step.id)
        mark = "" if cell is None or cell.passed is None else ("✓ " if cell.passed else "✗ ")
        with st.expander(mark + step.title, expanded=False):
            if cell is None:
                st.caption("Not started.")
                continue
            st.code(cell.code, language="python")
            if cell.ran_at is None:
                st.caption("Saved but not run since the last change.")
            else:
                st.caption(f"Last run {cell.ran_at:%Y-%m-%d %H:%M} UTC")
                widgets.render_outputs(cell.outputs)
            if cell.passed is not None:
                widgets.render_check(cell.passed, cell.message or "")
        comment_field(step.id)


def _answers(answers: Any, history: Any, comment_field: CommentField) -> None:
    st.markdown("#### Analysis answers")
    for question in exercise.questions():
        st.markdown(f"**{question.title}**")
        answer = answers.get(question.id)
        st.text(answer.text if answer is not None and answer.text.strip() else "(no answer)")
        revisions = history.get(question.id, [])
        with st.expander(f"Rubric and history ({len(revisions)} versions)"):
            for point in question.rubric:
                st.caption(f"• {point}")
            for revision in reversed(revisions):
                st.caption(f"{revision.created_at:%Y-%m-%d %H:%M:%S} UTC")
                st.text(revision.text or "(empty)")
        comment_field(question.id)


# --- the feedback form -------------------------------------------------------------------


def _feedback_form(wb: Any, grader: Any, data: review.StudentReview, draft: _Draft) -> None:
    student_id = data.student.id
    saved = data.feedback
    prefix = draft.prefix
    grade_key, comment_key, status_key = draft.grade_key, draft.comment_key, draft.status_key

    st.markdown("#### Feedback")
    if grade_key not in st.session_state:
        label = review.grade_label(saved.grade) if saved is not None else None
        st.session_state[grade_key] = label if label in review.GRADE_SCALE else NO_GRADE

    current, save_draft = draft.current, draft.save

    def on_grade_change() -> None:
        try:
            save_draft()
        except review.ReviewError as exc:
            st.session_state[status_key] = ("error", str(exc))
        else:
            st.session_state[status_key] = ("ok", "Draft saved.")

    def release() -> None:
        try:
            wb.lti.release_feedback(grader, student_id, **current())
        except GradeNotQueued as exc:  # released; only Moodle's copy waits for the catch-up
            st.session_state[status_key] = ("warning", str(exc))
        except review.ReviewError as exc:
            st.session_state[status_key] = ("error", str(exc))
        else:
            st.session_state[status_key] = (
                "ok",
                "Released: the student sees this feedback on their Home page.",
            )

    status = data.feedback_status
    if status == "released":
        st.success("Released: the student sees this version.")
    elif status == "draft":
        released_before = _has_released(wb, student_id)
        st.info(
            "Draft, not visible to the student"
            + (" (they still see the earlier released version)." if released_before else ".")
        )
    else:
        st.caption("No feedback yet. Drafts save as you type; students only see released ones.")

    st.selectbox("Grade", (NO_GRADE, *review.GRADE_SCALE), key=grade_key, on_change=on_grade_change)
    widgets.autosave_text_area(
        "Overall comment",
        key=comment_key,
        saved_value=saved.comment if saved is not None else "",
        save=save_draft,
        height=180,
    )
    _snippets(wb, grader, comment_key, save_draft)

    written = sum(1 for text in current()["item_comments"].values() if text.strip())
    st.caption(f"Comments per item (optional): beside each item on the left; {written} written.")

    st.button("Release to student", key=f"{prefix}:release", type="primary", on_click=release)
    widgets.show_save_note(status_key)
    moodle = wb.lti.moodle_status(grader, student_id)
    if moodle:
        st.caption(moodle)


def _has_released(wb: Any, student_id: int) -> bool:
    return wb.released_feedback(student_id) is not None


def _snippets(wb: Any, grader: Any, comment_key: str, save_draft: Any) -> None:
    """Reusable comments: insert one into the overall comment, or save a new one."""
    snippets = wb.store.snippets()
    texts = {snippet.id: snippet.text for snippet in snippets}
    pick_key = f"{comment_key}:snippet"

    def insert() -> None:
        snippet_id = st.session_state.get(pick_key)
        if snippet_id not in texts:
            return
        before = st.session_state.get(comment_key, "")
        joined = (before.rstrip("\n") + "\n\n" if before.strip() else "") + texts[snippet_id]
        st.session_state[comment_key] = joined
        # Noted under the comment like its own autosave: a failed save (too long) says why,
        # and the text stays in the field to shorten, instead of a traceback.
        widgets.note_save(lambda: save_draft(joined), f"{comment_key}:status")

    with st.expander(f"Comment snippets ({len(snippets)})"):
        if texts:
            st.selectbox(
                "Snippet",
                list(texts),
                format_func=lambda sid: _one_line(texts[sid]),
                key=pick_key,
            )
            st.button("Insert into overall comment", key=f"{pick_key}:insert", on_click=insert)
        else:
            st.caption("No snippets yet.")
        new_key = f"{comment_key}:new_snippet"

        def add() -> None:
            text = st.session_state.get(new_key, "")
            if not text.strip():
                st.session_state[f"{new_key}:error"] = "Write the snippet first."
                return
            try:
                review.add_snippet(wb.store, text, grader.id)
            except review.ReviewError as exc:
                st.session_state[f"{new_key}:error"] = str(exc)
            else:
                st.session_state[new_key] = ""
                st.session_state.pop(f"{new_key}:error", None)

        st.text_area("New snippet", key=new_key, height=80)
        st.button("Save snippet", key=f"{new_key}:save", on_click=add)
        if st.session_state.get(f"{new_key}:error"):
            st.error(st.session_state[f"{new_key}:error"])


def _one_line(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"

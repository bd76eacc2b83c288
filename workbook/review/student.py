"""One student's review: their work for the TA to read, and the feedback the TA writes.

``student_review`` gathers a student's work, checklist and latest feedback. Feedback is saved
as a draft (``save_feedback_draft``) until the TA releases it (``release_feedback``); every
save appends a version. TAs share reusable comments (``add_snippet``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbook.errors import WorkbookError
from workbook.review.grading import ReviewError, grade_points

__all__ = [
    "StudentReview",
    "add_snippet",
    "release_feedback",
    "save_feedback_draft",
    "student_review",
]


@dataclass(frozen=True)
class StudentReview:
    """Everything a TA reads about one student.

    Attributes:
        student: the student's account (``db.User``).
        cells: latest cell revision per step id.
        answers: latest answer revision per question id.
        answer_history: every revision per question id, oldest first.
        tutorial_log: the tutorial log (``db.TutorialLog``).
        checklist: the Submit page's ``workbook.submission.checklist.Checklist`` for this student, or
            the ``WorkbookError`` that kept it from being built.
        feedback: the latest saved feedback (draft or released), or ``None``.
        exports: the student's exports, oldest first.
    """

    student: Any
    cells: Mapping[str, Any]
    answers: Mapping[str, Any]
    answer_history: Mapping[str, list[Any]]
    tutorial_log: Any
    checklist: Any
    feedback: Any | None
    exports: list[Any] = field(default_factory=list)

    @property
    def feedback_status(self) -> str:
        """``"none"``, ``"draft"`` or ``"released"``."""
        if self.feedback is None:
            return "none"
        return "released" if self.feedback.released else "draft"


def student_review(
    store: Any,
    student_id: int,
    *,
    model_name: str,
    categories: Iterable[str] | None = None,
) -> StudentReview:
    """Gather one student's work and the latest feedback for the review page.

    Args:
        store: the ``db.Store``.
        student_id: the student's user id.
        model_name: the course's model (the checklist rebuilds the student's notebook).
        categories: the tutorial sections a student may pick, as the Submit page uses.

    Raises:
        ReviewError: no such student.
    """
    from db import NotFoundError
    from workbook.submission import checklist

    try:
        student = store.user(student_id)
    except NotFoundError:
        raise ReviewError("That student does not exist (any more).") from None
    if student.role != "student":
        raise ReviewError(f"{student.name} is not a student; only students' work is reviewed.")
    history = {
        question_id: store.answer_history(student_id, question_id)
        for question_id in store.question_ids
    }
    try:
        feedback = store.feedback_for(student_id)
    except NotFoundError:
        feedback = None
    try:
        flags = checklist.checklist_for(
            store, student_id, model_name=model_name, categories=categories
        )
    except WorkbookError as exc:
        # The rest of the review is still worth showing; say why the flags are missing.
        flags = exc
    return StudentReview(
        student=student,
        cells=store.cells_for(student_id),
        answers=store.answers_for(student_id),
        answer_history=history,
        tutorial_log=store.tutorial_log(student_id),
        checklist=flags,
        feedback=feedback,
        exports=store.exports_for(student_id),
    )


def save_feedback_draft(
    store: Any,
    student_id: int,
    grader_id: int,
    *,
    grade: str | None,
    comment: str,
    item_comments: Mapping[str, str],
) -> Any:
    """Save a draft of a student's feedback (the student does not see drafts).

    Every save appends a version; the student keeps seeing the last *released* version
    until the TA releases again.

    Args:
        grade: a label of ``GRADE_SCALE`` or ``None``.
        comment: the overall comment.
        item_comments: item id (see ``feedback_items``) -> comment; blank ones are dropped.

    Raises:
        ReviewError: unknown grade, text too long, or the accounts do not fit.
    """
    return _save(store, student_id, grader_id, grade, comment, item_comments, released=False)


def release_feedback(
    store: Any,
    student_id: int,
    grader_id: int,
    *,
    grade: str | None,
    comment: str,
    item_comments: Mapping[str, str],
) -> Any:
    """Save the feedback and make it visible to the student on their Home page.

    Raises:
        ReviewError: no grade chosen, unknown grade, text too long, or wrong accounts.
    """
    if not grade:
        raise ReviewError("Choose a grade before releasing the feedback.")
    return _save(store, student_id, grader_id, grade, comment, item_comments, released=True)


def _save(
    store: Any,
    student_id: int,
    grader_id: int,
    grade: str | None,
    comment: str,
    item_comments: Mapping[str, str],
    *,
    released: bool,
) -> Any:
    from db import DbError

    points = grade_points(grade)
    items = {key: text for key, text in item_comments.items() if text.strip()}
    try:
        return store.save_feedback(
            student_id,
            grader_id,
            grade=points,
            comment=comment,
            item_comments=items,
            released=released,
        )
    except DbError as exc:
        raise ReviewError(f"The feedback was not saved: {exc}.") from exc


def add_snippet(store: Any, text: str, author_id: int) -> Any:
    """Save a reusable feedback comment that every TA can insert.

    Raises:
        ReviewError: the text is empty or too long.
    """
    from db import DbError

    if not text.strip():
        raise ReviewError("Write the snippet first.")
    try:
        return store.add_snippet(text, author_id)
    except DbError as exc:
        raise ReviewError(f"The snippet was not saved: {exc}.") from exc

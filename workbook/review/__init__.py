"""review: what a TA does with the class's work.

The roster and its filters, one student's review (work, checklist, feedback items), feedback
drafts and their release, the shared snippets, the grading scale, the responses CSV, and
Moodle's offline grading worksheet (filled from a downloaded one, or fresh).
"""

from workbook.review.review import (
    FEEDBACK_STATUSES,
    GRADE_SCALE,
    MAX_POINTS,
    FeedbackItem,
    GradeEntry,
    ReviewError,
    StudentReview,
    WorksheetResult,
    add_snippet,
    feedback_items,
    fill_worksheet,
    filter_roster,
    fresh_worksheet,
    grade_label,
    grade_points,
    item_label,
    release_feedback,
    responses_csv,
    roster_records,
    save_feedback_draft,
    student_review,
    worksheet_grades,
)

__all__ = [
    "FEEDBACK_STATUSES",
    "GRADE_SCALE",
    "MAX_POINTS",
    "FeedbackItem",
    "GradeEntry",
    "ReviewError",
    "StudentReview",
    "WorksheetResult",
    "add_snippet",
    "feedback_items",
    "fill_worksheet",
    "filter_roster",
    "fresh_worksheet",
    "grade_label",
    "grade_points",
    "item_label",
    "release_feedback",
    "responses_csv",
    "roster_records",
    "save_feedback_draft",
    "student_review",
    "worksheet_grades",
]

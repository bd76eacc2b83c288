"""review: what a TA does with the class's work.

- ``grading``: the course's grading scale, labels to stored points and back, and
  ``ReviewError``;
- ``feedback``: the items a TA comments on separately, and the feedback statuses;
- ``roster``: every student at a glance (records, filters, sorting) and the responses CSV;
- ``student``: one student's review (work, checklist, latest feedback), feedback drafts and
  their release, the shared snippets;
- ``worksheet``: Moodle's offline grading worksheet (filled from a downloaded one, or fresh).
"""

from workbook.review.feedback import FEEDBACK_STATUSES, FeedbackItem, feedback_items, item_label
from workbook.review.grading import GRADE_SCALE, MAX_POINTS, ReviewError, grade_label, grade_points
from workbook.review.roster import filter_roster, responses_csv, roster_records
from workbook.review.student import (
    StudentReview,
    add_snippet,
    release_feedback,
    save_feedback_draft,
    student_review,
)
from workbook.review.worksheet import (
    GradeEntry,
    WorksheetResult,
    fill_worksheet,
    fresh_worksheet,
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

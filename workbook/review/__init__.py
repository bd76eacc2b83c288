"""review: what a TA does with the class's work.

- ``grading``: the course's grading scale, labels to stored points and back, and
  ``ReviewError``;
- ``feedback``: the items a TA comments on separately, and the feedback statuses;
- ``roster``: every student at a glance (records, filters, sorting) and the responses CSV;
- ``student``: one student's review (work, checklist, latest feedback), feedback drafts and
  their release, the shared snippets;
- ``worksheet``: Moodle's offline grading worksheet (filled from a downloaded one, or fresh).
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "feedback": (
            "FEEDBACK_STATUSES",
            "FeedbackItem",
            "feedback_items",
            "item_label",
        ),
        "grading": (
            "GRADE_SCALE",
            "MAX_POINTS",
            "ReviewError",
            "grade_label",
            "grade_points",
        ),
        "roster": (
            "filter_roster",
            "responses_csv",
            "roster_records",
        ),
        "student": (
            "StudentReview",
            "add_snippet",
            "release_feedback",
            "save_feedback_draft",
            "student_review",
        ),
        "worksheet": (
            "GradeEntry",
            "WorksheetResult",
            "feedback_comment_text",
            "fill_worksheet",
            "fresh_worksheet",
            "grade_score",
            "released_entry",
            "worksheet_grades",
        ),
    },
)

"""submission: what a student hands in on Moodle, and what must be right before they do.

- ``snapshot``: a student's work gathered once from the store (``Submission``), the one
  thing every export and the checklist are built from;
- ``notebook``: the notebook (nbformat, validated, reproducible), with typed text shown
  exactly as typed;
- ``online_text``: the Analysis answers and tutorial log as HTML and plain text for Moodle's
  online-text box;
- ``bundle``: the zip a student downloads (notebook, online text, how-to) and the recorded
  export;
- ``checklist``: the pre-submission checklist (warnings and blockers, each linked to the page
  that fixes it);
- ``quality``: the text heuristics behind it (reflection specifics, Q1 tokens, Q3 not
  greedy-only), also shown as hints where a student writes.
"""

from workbook.submission.bundle import NOTEBOOK_NAME, Bundle, build_bundle, export_for
from workbook.submission.checklist import (
    BLOCKER,
    WARNING,
    Checklist,
    ChecklistItem,
    checklist_for,
    run_checklist,
)
from workbook.submission.online_text import moodle_html, moodle_text
from workbook.submission.quality import (
    MIN_REFLECTION_WORDS,
    Hint,
    answer_hints,
    reflection_hints,
    word_count,
)
from workbook.submission.snapshot import ExportError, Submission, gather_submission

__all__ = [
    "BLOCKER",
    "MIN_REFLECTION_WORDS",
    "NOTEBOOK_NAME",
    "WARNING",
    "Bundle",
    "Checklist",
    "ChecklistItem",
    "ExportError",
    "Hint",
    "Submission",
    "answer_hints",
    "build_bundle",
    "checklist_for",
    "export_for",
    "gather_submission",
    "moodle_html",
    "moodle_text",
    "reflection_hints",
    "run_checklist",
    "word_count",
]

"""submission: what a student hands in on Moodle, and what must be right before they do.

- ``export``: the snapshot of a student's work and the Moodle bundle built from it: the
  notebook (nbformat), the online-text HTML and plain text, the how-to, the zip;
- ``checklist``: the pre-submission checklist (warnings and blockers, each linked to the page
  that fixes it);
- ``quality``: the text heuristics behind it (reflection specifics, Q1 tokens, Q3 not
  greedy-only), also shown as hints where a student writes.
"""

from workbook.submission.checklist import (
    BLOCKER,
    WARNING,
    Checklist,
    ChecklistItem,
    checklist_for,
    run_checklist,
)
from workbook.submission.export import (
    NOTEBOOK_NAME,
    Bundle,
    ExportError,
    Submission,
    build_bundle,
    export_for,
    gather_submission,
    moodle_html,
    moodle_text,
)
from workbook.submission.quality import (
    MIN_REFLECTION_WORDS,
    Hint,
    answer_hints,
    reflection_hints,
    word_count,
)

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

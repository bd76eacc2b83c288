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
  that fixes it), built on ``workbook.quality``'s text heuristics.
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "bundle": (
            "Bundle",
            "NOTEBOOK_NAME",
            "build_bundle",
            "export_for",
        ),
        "checklist": (
            "BLOCKER",
            "Checklist",
            "ChecklistItem",
            "WARNING",
            "checklist_for",
            "run_checklist",
        ),
        "online_text": (
            "moodle_html",
            "moodle_text",
        ),
        "snapshot": (
            "ExportError",
            "Submission",
            "gather_submission",
        ),
    },
)

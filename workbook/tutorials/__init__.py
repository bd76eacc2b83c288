"""tutorials: the tutorial log, the two PyTorch-tutorial reflections and the mini-project.

- ``catalog``: the PyTorch tutorial catalog (``data/``; an instructor may point
  ``WORKBOOK_CATALOG`` at their own) and the guidance for each kind of tutorial;
- ``rules``: what makes a log entry and the mini-project complete, and how an edit is
  applied to the stored entry.
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "catalog": (
            "Catalog",
            "CatalogError",
            "Guidance",
            "INTRO_CATEGORY",
            "OTHER_CATEGORY",
            "Tutorial",
            "guidance_for",
            "load_catalog",
        ),
        "rules": (
            "Issue",
            "SLOTS",
            "TutorialLogError",
            "check_log",
            "is_complete",
            "parse_minutes",
            "set_path",
            "update_entry",
            "update_project",
        ),
    },
)

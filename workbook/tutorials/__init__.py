"""tutorials: the tutorial log, the two PyTorch-tutorial reflections and the mini-project.

- ``catalog``: the PyTorch tutorial catalog (``data/``; an instructor may point
  ``WORKBOOK_CATALOG`` at their own) and the guidance for each kind of tutorial;
- ``rules``: what makes a log entry and the mini-project complete, and how an edit is
  applied to the stored entry.
"""

from workbook.tutorials.catalog import (
    INTRO_CATEGORY,
    OTHER_CATEGORY,
    Catalog,
    CatalogError,
    Guidance,
    Tutorial,
    guidance_for,
    load_catalog,
)
from workbook.tutorials.rules import (
    SLOTS,
    Issue,
    TutorialLogError,
    check_log,
    is_complete,
    parse_minutes,
    set_path,
    update_entry,
    update_project,
)

__all__ = [
    "INTRO_CATEGORY",
    "OTHER_CATEGORY",
    "SLOTS",
    "Catalog",
    "CatalogError",
    "Guidance",
    "Issue",
    "Tutorial",
    "TutorialLogError",
    "check_log",
    "guidance_for",
    "is_complete",
    "load_catalog",
    "parse_minutes",
    "set_path",
    "update_entry",
    "update_project",
]

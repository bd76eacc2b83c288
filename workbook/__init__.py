"""workbook: the homework itself — exercise content, checks, kernels, export and review.

Pages talk to one ``Workbook`` (``workbook.service``) built from ``Settings``
(``workbook.config``); the modules below are one concept each (see docs/architecture.md):

- ``exercises`` / ``checks``: the notebook's steps as data and their automatic checks;
- ``kernel`` / ``sandbox``: one Jupyter kernel per student, optionally in bubblewrap;
- ``catalog`` / ``tutorials`` / ``quality``: the tutorial log and text heuristics;
- ``export`` / ``checklist``: the Moodle bundle and the pre-submission checklist;
- ``review``: roster, grading and the Moodle grading worksheet;
- ``explore``: data for the decoding explorer.

Command line: ``python -m workbook export --email ... --out DIR``.
"""

from workbook.config import Settings, SettingsError
from workbook.errors import WorkbookError
from workbook.service import Workbook

__all__ = ["Settings", "SettingsError", "Workbook", "WorkbookError"]

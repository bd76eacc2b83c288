"""workbook: the homework itself, one subpackage per concept (see docs/architecture.md).

Pages talk to one ``Workbook`` (``workbook.service``, the facade) built from ``Settings``
(``workbook.config``), and otherwise only to the public names of the subpackages:

- ``exercise``: the notebook's steps as data and their automatic checks;
- ``kernels``: one Jupyter kernel per student, sandboxed, bounded and fairly scheduled,
  locally or on a Jupyter (Enterprise) Gateway;
- ``submission``: the Moodle bundle and the pre-submission checklist;
- ``review``: roster, feedback, grading and Moodle's grading worksheet;
- ``classview``: the whole class live for staff (progress, causes, who is stuck, clusters);
- ``tutorials``: the tutorial catalog and the tutorial-log rules;
- ``web``: what reaches the browser with care (untrusted outputs, sign-in cookies);
- ``quality``: text heuristics on what students write, for live hints and the checklist
  (one module);
- ``explore``: data for the decoding explorer (one module).

Command line: ``python -m workbook export --email ... --out DIR`` (and ``checklist``,
``class-report``).
"""

from workbook.config import Settings, SettingsError
from workbook.errors import SignInThrottled, WorkbookError
from workbook.service import CellRun, Progress, RunState, User, Workbook

__all__ = [
    "CellRun",
    "Progress",
    "RunState",
    "Settings",
    "SettingsError",
    "SignInThrottled",
    "User",
    "Workbook",
    "WorkbookError",
]

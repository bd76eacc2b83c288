"""db: the SQLite store for everything students and TAs write, with full history.

Open one ``Store(path)`` per process (it gives each thread its own connection)::

    from db import Store
    store = Store("data/workbook.db")
    user = store.create_user("ada@example.org", "Ada", "correct horse battery")
    store.save_answer(user.id, "q1", "Tokens, not words ...")

Command line: ``python -m db init | add-user | list-users | backup PATH | export-csv DIR |
lti add-platform/list-platforms/remove-platform/rotate-key/show-keys``
(database from ``WORKBOOK_DB``, default ``data/workbook.db``).
"""

from db.errors import (
    AuthenticationError,
    ConflictError,
    DbError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    ValidationError,
)
from db.lti import LtiContext, LtiLogin, LtiMembership, LtiPlatform
from db.lti_keys import SigningKey, ToolKeys
from db.models import (
    ROLES,
    TUTORIAL_PATHS,
    AnswerRevision,
    CellRevision,
    ExportRecord,
    Feedback,
    ProjectEntry,
    Revision,
    RosterRow,
    Snippet,
    TutorialEntry,
    TutorialLog,
    User,
)
from db.store import DEFAULT_QUESTION_IDS, DEFAULT_SLOTS, DEFAULT_STEP_IDS, Store
from db.users import SignInPolicy

__all__ = [
    "DEFAULT_QUESTION_IDS",
    "DEFAULT_SLOTS",
    "DEFAULT_STEP_IDS",
    "ROLES",
    "TUTORIAL_PATHS",
    "AnswerRevision",
    "AuthenticationError",
    "CellRevision",
    "ConflictError",
    "DbError",
    "ExportRecord",
    "LtiContext",
    "LtiLogin",
    "LtiMembership",
    "LtiPlatform",
    "Feedback",
    "NotFoundError",
    "PermissionDeniedError",
    "ProjectEntry",
    "Revision",
    "RosterRow",
    "Snippet",
    "SignInPolicy",
    "SigningKey",
    "Store",
    "ThrottledError",
    "ToolKeys",
    "TutorialEntry",
    "TutorialLog",
    "User",
    "ValidationError",
]

"""The frozen records the store returns. Timestamps are timezone-aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Role = Literal["student", "ta", "instructor"]
TutorialPath = Literal["tutorials", "project"]
FeedbackStatus = Literal["none", "draft", "released"]

ROLES: tuple[str, ...] = ("student", "ta", "instructor")
TUTORIAL_PATHS: tuple[str, ...] = ("tutorials", "project")


@dataclass(frozen=True)
class User:
    """An account. ``email`` is stored lower-cased; ``archived`` users are hidden and
    cannot sign in, but their work stays."""

    id: int
    email: str
    name: str
    role: str
    created_at: datetime
    last_seen_at: datetime | None
    archived: bool


@dataclass(frozen=True)
class Revision:
    """One appended version of a piece of student work.

    Attributes:
        id: the revision's row id; larger ids are newer.
        user_id: the student the work belongs to.
        created_at: when this revision was written.
    """

    id: int
    user_id: int
    created_at: datetime


@dataclass(frozen=True)
class AnswerRevision(Revision):
    """A free-text answer to one question (``q1`` ...), exactly as typed."""

    question_id: str
    text: str


@dataclass(frozen=True)
class CellRevision(Revision):
    """The code of one exercise step and, after a run, its results.

    A code-only autosave has ``outputs == []`` and ``passed``/``ran_at`` ``None``.
    ``outputs`` are nbformat output dicts.
    """

    step_id: str
    code: str
    outputs: list[dict[str, Any]]
    execution_count: int | None
    passed: bool | None
    message: str | None
    ran_at: datetime | None
    cause: str | None = None  # the check's cause id (None: passed, unchecked or older)


@dataclass(frozen=True)
class TutorialEntry(Revision):
    """One tutorial the student worked through (slot ``"1"`` or ``"2"``).

    ``dates`` are ISO dates (``YYYY-MM-DD``); ``minutes`` is the time spent, if given.
    """

    slot: str
    category: str
    title: str
    url: str
    from_catalog: bool
    dates: tuple[str, ...]
    minutes: int | None
    notes: str
    reflection: str


@dataclass(frozen=True)
class ProjectEntry(Revision):
    """The classifier-from-scratch mini-project, the alternative to two tutorials.

    ``notebook_bytes`` is the uploaded notebook (``None`` if none was uploaded);
    ``notebook_sha256`` identifies it.
    """

    description: str
    link: str
    notebook_name: str | None
    notebook_bytes: bytes | None
    notebook_sha256: str | None
    reflection: str


@dataclass(frozen=True)
class TutorialLog:
    """A student's whole tutorial log: the chosen path and the latest entries.

    Attributes:
        path: ``"tutorials"``, ``"project"`` or ``None`` when not chosen yet.
        entries: latest entry per slot that has one, e.g. ``{"1": TutorialEntry}``.
        project: latest project entry, or ``None``.
    """

    user_id: int
    path: str | None
    entries: dict[str, TutorialEntry] = field(default_factory=dict)
    project: ProjectEntry | None = None


@dataclass(frozen=True)
class Feedback:
    """One saved version of a grader's feedback on a student's submission.

    ``item_comments`` maps an item (step id, question id, ``"tutorial1"`` ...) to a comment.
    """

    id: int
    student_id: int
    grader_id: int
    grade: float | None
    comment: str
    item_comments: dict[str, str]
    released: bool
    created_at: datetime


@dataclass(frozen=True)
class Snippet:
    """A reusable feedback comment."""

    id: int
    text: str
    author_id: int
    created_at: datetime


@dataclass(frozen=True)
class ExportRecord:
    """One exported submission bundle.

    Attributes:
        file_name: the bundle's (zip's) file name.
        sha256: the SHA-256 of the notebook inside it, the file submitted on Moodle.
    """

    id: int
    user_id: int
    file_name: str
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class RosterRow:
    """One student's progress, as the TA roster shows it.

    Attributes:
        steps_passed: steps whose latest cell revision passed its check.
        reflections: non-empty tutorial reflections among the latest entries (0-2).
        project_reflection: the latest project entry has a non-empty reflection.
        answers_nonempty: questions whose latest answer is not blank.
        feedback_status: ``"none"``, ``"draft"`` (latest feedback not released) or
            ``"released"``.
    """

    user_id: int
    name: str
    email: str
    archived: bool
    tutorial_path: str | None
    steps_passed: int
    steps_total: int
    reflections: int
    project_reflection: bool
    answers_nonempty: int
    questions_total: int
    last_export_at: datetime | None
    last_activity_at: datetime | None
    feedback_status: str

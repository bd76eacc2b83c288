"""Private helpers shared by the ``Store`` modules: timestamps, token hashing, table names."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

# Tables holding a student's work: a user with rows here cannot be deleted.
_WORK_TABLES = (
    "answer_revisions",
    "tutorial_path_revisions",
    "tutorial_revisions",
    "project_revisions",
    "cell_revisions",
    "exports",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _ts(moment: datetime) -> str:
    # Fixed-width ISO text sorts in time order, so SQL can compare timestamps as text.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)

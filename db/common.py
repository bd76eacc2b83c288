"""Private helpers shared by the ``Store`` modules: timestamps, token hashing, table names,
and reading a student's revisions (the latest, the latest of each, the history)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

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


# A student's work is kept as revisions: rows appended to a table, one per save, each with
# the student (``user_id``) and what it is a revision of (``key``: a question, a step, a
# slot). The table and key names are constants of the Store's modules, never input.


def _latest_revision(db: Any, table: str, key: str, user_id: int, value: Any) -> dict | None:
    """The newest revision of one thing (``key`` = ``value``) of a student, or ``None``."""
    return next(
        iter(
            db.query(
                f"SELECT * FROM {table} WHERE user_id = ? AND {key} = ? ORDER BY id DESC LIMIT 1",
                [user_id, value],
            )
        ),
        None,
    )


def _latest_revisions(db: Any, table: str, key: str, user_id: int) -> Iterable[dict]:
    """The newest revision of each thing of a student: one row per value of ``key``."""
    return db.query(
        f"SELECT t.* FROM {table} t JOIN (SELECT max(id) AS id FROM {table}"
        f" WHERE user_id = ? GROUP BY {key}) latest ON t.id = latest.id",
        [user_id],
    )


def _revision_history(db: Any, table: str, key: str, user_id: int, value: Any) -> list[dict]:
    """Every revision of one thing of a student, oldest first."""
    return list(
        db.query(
            f"SELECT * FROM {table} WHERE user_id = ? AND {key} = ? ORDER BY id",
            [user_id, value],
        )
    )

"""``Store``: everything students and TAs write, in one SQLite file, with full history.

Promises:

* Every write of student work (answers, tutorial log, project, cells) appends a revision;
  the current value is the latest revision and every earlier one stays readable
  (``answer_history``, ``tutorial_history``, ``project_history``, ``cell_history``).
* No method deletes student work. ``delete_user`` is refused while the user has any;
  ``archive_user`` hides an account instead.
* Text is stored exactly as typed. Limits raise ``ValidationError`` naming the field.
* One SQLite connection per thread (Streamlit serves sessions on many threads), WAL journal,
  foreign keys on, a busy timeout; writes take the write lock up front
  (``BEGIN IMMEDIATE``) so concurrent writers queue instead of failing.

All SQL of the project lives in ``db/``; parameters are always bound.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db import validation as check
from db.class_stats import ClassStatsMixin
from db.common import _now, _ts
from db.errors import DbError
from db.grading import GradingMixin
from db.lti import LtiMixin
from db.lti_keys import ToolKeys
from db.lti_services import LtiServicesMixin
from db.migrations import migrations
from db.tutorial_log import TutorialLogMixin
from db.users import UsersMixin
from db.work import WorkMixin

DEFAULT_QUESTION_IDS: tuple[str, ...] = ("q1", "q2", "q3")
DEFAULT_STEP_IDS: tuple[str, ...] = (
    "setup",
    "step1",
    "step2",
    "step3",
    "step4",
    "step5",
    "step6",
)
DEFAULT_SLOTS: tuple[str, ...] = ("1", "2")


class Store(
    UsersMixin,
    WorkMixin,
    TutorialLogMixin,
    GradingMixin,
    LtiMixin,
    LtiServicesMixin,
    ClassStatsMixin,
):
    """The workbook's storage: users, student work with history, feedback, exports.

    Args:
        path: the SQLite file (created with its folder if missing), or ``":memory:"`` for a
            private in-memory database shared by this store's threads (tests).
        question_ids: the question ids answers may be saved for.
        step_ids: the exercise step ids cells may be saved for.
        slots: the tutorial-log slots.
        busy_timeout_s: how long a statement waits for another writer's lock.
        min_password_length: shortest password ``create_user``/``set_password`` accept.

    Opening applies pending migrations. Close with ``close()`` (or use as a context
    manager); each thread lazily gets its own connection.

    Raises:
        DbError: the file cannot be opened as a database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        question_ids: Sequence[str] = DEFAULT_QUESTION_IDS,
        step_ids: Sequence[str] = DEFAULT_STEP_IDS,
        slots: Sequence[str] = DEFAULT_SLOTS,
        busy_timeout_s: float = 30.0,
        min_password_length: int = 8,
    ) -> None:
        self.question_ids = tuple(question_ids)
        self.step_ids = tuple(step_ids)
        self.slots = tuple(slots)
        self.busy_timeout_s = busy_timeout_s
        self.min_password_length = min_password_length
        self._memory_name: str | None = None
        if str(path) == ":memory:":
            # A named shared-cache memory database: every thread's connection sees the
            # same data, which lives as long as the keeper connection below.
            self._memory_name = f"workbook-{uuid.uuid4().hex}"
            self.path: Path | None = None
        else:
            self.path = Path(path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # (thread, connection) for every open per-thread connection, so connections of
        # finished threads can be closed: Streamlit starts a new thread for each rerun.
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._keeper = self._connect() if self._memory_name is not None else None
        self._tool_keys = ToolKeys(self.lti_key_path)
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            self.close()
            raise DbError(f"{path} is not a usable SQLite database: {error}") from error

    def _open(self) -> None:
        """Switch to WAL and apply pending migrations."""
        db = self._db()
        if self._memory_name is None:
            with db.ensure_autocommit_on():
                mode = db.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DbError(f"could not switch {self.path} to WAL journal (got {mode})")
        with self._write() as db:
            # Inside the write lock, so two processes opening a new file at once cannot
            # both try to apply the same migration.
            migrations.apply(db)

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        if self._memory_name is not None:
            conn = sqlite3.connect(
                f"file:{self._memory_name}?mode=memory&cache=shared",
                uri=True,
                timeout=self.busy_timeout_s,
                check_same_thread=False,
            )
        else:
            # check_same_thread=False only so close() may close it from another thread;
            # each connection is used by the one thread that created it.
            conn = sqlite3.connect(
                str(self.path), timeout=self.busy_timeout_s, check_same_thread=False
            )
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        # FULL: a committed revision survives power loss, not only a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _db(self) -> Database:
        """This thread's connection (a new one after ``fork``)."""
        if self._closed:
            raise DbError("the store is closed")
        db: Database | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._connect()
            db = Database(conn, execute_plugins=False)
            self._local.db = db
            self._local.pid = os.getpid()
            with self._lock:
                finished = [(t, c) for t, c in self._connections if not t.is_alive()]
                self._connections = [(t, c) for t, c in self._connections if t.is_alive()]
                self._connections.append((threading.current_thread(), conn))
            for _, old in finished:
                # Its thread has ended, so nothing can be using it any more.
                old.close()
        return db

    @property
    def lti_key_path(self) -> Path | None:
        """The tool's LTI key file: beside the database (``workbook.db`` ->
        ``workbook-lti-keys.json``); ``None`` (kept in memory) for an in-memory store."""
        return None if self.path is None else self.path.with_name(f"{self.path.stem}-lti-keys.json")

    def lti_tool_keys(self) -> ToolKeys:
        """The tool's LTI signing keys (``db/lti_keys.py``), made on first use."""
        return self._tool_keys

    def open_connections(self) -> int:
        """How many per-thread connections are open (for monitoring and tests)."""
        with self._lock:
            return len(self._connections)

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """A write transaction holding SQLite's write lock from the start.

        ``BEGIN IMMEDIATE`` waits (busy timeout) for other writers instead of failing
        later when a read lock cannot be upgraded.
        """
        db = self._db()
        if db.conn.in_transaction:
            raise DbError("nested write transaction")
        try:
            db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise DbError(f"the database is busy or unavailable, try again ({error})") from error
        try:
            yield db
            db.conn.execute("COMMIT")
        except BaseException as error:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError):
                raise DbError(f"could not save, nothing was changed ({error})") from error
            raise

    @contextmanager
    def _read(self) -> Iterator[Database]:
        """A read transaction: several queries see one consistent snapshot."""
        db = self._db()
        if db.conn.in_transaction:
            yield db
            return
        db.conn.execute("BEGIN")
        try:
            yield db
        finally:
            if db.conn.in_transaction:
                db.conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (all threads)."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._closed = True
        for _, conn in connections:
            conn.close()
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path) if self.path else ':memory:'!r})"

    @staticmethod
    def _one(db: Database, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        return next(iter(db.query(sql, params)), None)

    # ------------------------------------------------------------------ settings

    def set_setting(self, key: str, value: Any) -> None:
        """Store a course setting (e.g. ``"due_date"``, ``"model"``); JSON-serialisable.

        Raises:
            ValidationError: key empty/over 200 characters, or value not serialisable.
        """
        key = check.name("key", key)
        encoded = check.json_value("value", value)
        with self._write() as db:
            db.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                [key, encoded, _ts(_now())],
            )

    def setting(self, key: str, default: Any = None) -> Any:
        """A course setting's value, or ``default`` when unset."""
        row = self._one(self._db(), "SELECT value FROM settings WHERE key = ?", [key])
        return default if row is None else json.loads(row["value"])

    # ------------------------------------------------------------------ backup and export

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """Copy the whole database to ``path`` with SQLite's online backup API.

        Safe while the app runs: the copy is one consistent snapshot, and writers are not
        blocked (WAL). The copy is written beside ``path`` and renamed into place, so a
        half-written backup never has the final name.

        Returns:
            The backup's path.

        Raises:
            DbError: ``path`` is the store's own file.
        """
        target = Path(path)
        if self.path is not None and target.resolve() == self.path.resolve():
            raise DbError("the backup path must differ from the database itself")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        source = self._db().conn
        dest = sqlite3.connect(str(partial))
        try:
            source.backup(dest)
            # A standalone copy: rollback journal, so it is one self-contained file.
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
        os.replace(partial, target)
        return target

    def export_csv(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write every table as ``<table>.csv`` (UTF-8, header row) into ``directory``.

        Password hashes are left out. BLOBs (uploads) are written as base64 text.

        Returns:
            The files written.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        with self._read() as db:
            for table in sorted(db.table_names()):
                columns = [c.name for c in db[table].columns if c.name != "password_hash"]
                target = folder / f"{table}.csv"
                with target.open("w", encoding="utf-8", newline="") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(columns)
                    quoted = ", ".join(f'"{c}"' for c in columns)
                    # Identifiers come from the database's own schema, not from input.
                    for row in db.conn.execute(f'SELECT {quoted} FROM "{table}" ORDER BY rowid'):
                        writer.writerow(
                            base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v
                            for v in row
                        )
                written.append(target)
        return written

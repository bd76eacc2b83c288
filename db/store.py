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
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db import passwords
from db import validation as check
from db.errors import (
    AuthenticationError,
    ConflictError,
    DbError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from db.migrations import migrations
from db.models import (
    ROLES,
    TUTORIAL_PATHS,
    AnswerRevision,
    CellRevision,
    ExportRecord,
    Feedback,
    ProjectEntry,
    RosterRow,
    Snippet,
    TutorialEntry,
    TutorialLog,
    User,
)

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


class Store:
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

    # ------------------------------------------------------------------ users

    def create_user(self, email: str, name: str, password: str, role: str = "student") -> User:
        """Create an account.

        Args:
            email: unique, case-insensitive; stored lower-cased.
            name: display name, 1-200 characters.
            password: at least ``min_password_length`` characters; stored as a scrypt hash.
            role: ``"student"``, ``"ta"`` or ``"instructor"``.

        Raises:
            ValidationError: bad email, name, password or role.
            ConflictError: an account with this email exists.
        """
        email = check.email(email)
        name = check.name("name", name)
        role = check.choice("role", role, ROLES)
        self._check_password(password)
        password_hash = passwords.hash_password(password)
        try:
            with self._write() as db:
                cursor = db.execute(
                    "INSERT INTO users (email, name, role, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [email, name, role, password_hash, _ts(_now())],
                )
                user_id = cursor.lastrowid
        except sqlite3.IntegrityError:
            raise ConflictError(f"an account with email {email} already exists") from None
        return self.user(user_id)

    def _check_password(self, password: object) -> None:
        if not isinstance(password, str):
            raise ValidationError("password", "password must be text")
        if len(password) < self.min_password_length:
            raise ValidationError(
                "password",
                f"password must be at least {self.min_password_length} characters",
                limit=self.min_password_length,
            )
        check.text("password", password, check.MAX_PASSWORD)

    def set_password(self, user_id: int, password: str) -> None:
        """Replace a user's password.

        Raises:
            NotFoundError: no such user.
            ValidationError: the password is too short or too long.
        """
        self._check_password(password)
        password_hash = passwords.hash_password(password)
        with self._write() as db:
            cursor = db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id]
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"no user with id {user_id}")

    def authenticate(self, email: str, password: str) -> User:
        """Return the user whose email and password match; record the attempt.

        Also updates ``last_seen_at``. Use ``failed_logins_since`` to slow down repeated
        failures.

        Raises:
            AuthenticationError: unknown email, wrong password or archived account (the
                message does not say which).
        """
        cleaned = email.strip().lower() if isinstance(email, str) else ""
        password = password if isinstance(password, str) else ""
        row = self._one(
            self._db(), "SELECT id, password_hash, archived FROM users WHERE email = ?", [cleaned]
        )
        if row is None:
            passwords.burn_time(password)
            ok = False
        else:
            ok = passwords.verify_password(password, row["password_hash"]) and not row["archived"]
        now = _ts(_now())
        with self._write() as db:
            db.execute(
                "INSERT INTO login_attempts (email, succeeded, at) VALUES (?, ?, ?)",
                [cleaned[: check.MAX_EMAIL], int(ok), now],
            )
            if ok:
                db.execute("UPDATE users SET last_seen_at = ? WHERE id = ?", [now, row["id"]])
        if not ok:
            raise AuthenticationError("wrong email or password")
        return self.user(row["id"])

    def failed_logins_since(self, email: str, seconds: float) -> int:
        """How many failed sign-ins for ``email`` happened in the last ``seconds``."""
        cleaned = email.strip().lower() if isinstance(email, str) else ""
        since = _ts(_now() - timedelta(seconds=seconds))
        row = self._one(
            self._db(),
            "SELECT count(*) AS n FROM login_attempts WHERE email = ? AND succeeded = 0"
            " AND at >= ?",
            [cleaned, since],
        )
        return int(row["n"]) if row else 0

    @staticmethod
    def _user(row: dict[str, Any]) -> User:
        return User(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            role=row["role"],
            created_at=_dt(row["created_at"]),
            last_seen_at=_dt(row["last_seen_at"]),
            archived=bool(row["archived"]),
        )

    _USER_COLUMNS = "id, email, name, role, created_at, last_seen_at, archived"

    def user(self, user_id: int) -> User:
        """The user with this id (archived included).

        Raises:
            NotFoundError: no such user.
        """
        row = self._one(
            self._db(), f"SELECT {self._USER_COLUMNS} FROM users WHERE id = ?", [user_id]
        )
        if row is None:
            raise NotFoundError(f"no user with id {user_id}")
        return self._user(row)

    def user_by_email(self, email: str) -> User:
        """The user with this email, compared case-insensitively.

        Raises:
            NotFoundError: no such user.
        """
        cleaned = email.strip().lower() if isinstance(email, str) else ""
        row = self._one(
            self._db(), f"SELECT {self._USER_COLUMNS} FROM users WHERE email = ?", [cleaned]
        )
        if row is None:
            raise NotFoundError(f"no user with email {cleaned!r}")
        return self._user(row)

    def list_users(self, role: str | None = None, include_archived: bool = False) -> list[User]:
        """Users ordered by name, optionally of one role.

        Raises:
            ValidationError: unknown role.
        """
        sql = f"SELECT {self._USER_COLUMNS} FROM users WHERE 1 = 1"
        params: list[Any] = []
        if role is not None:
            check.choice("role", role, ROLES)
            sql += " AND role = ?"
            params.append(role)
        if not include_archived:
            sql += " AND archived = 0"
        sql += " ORDER BY name COLLATE NOCASE, id"
        return [self._user(row) for row in self._db().query(sql, params)]

    def archive_user(self, user_id: int, *, archived: bool = True, by: int | None = None) -> User:
        """Hide a user from lists and sign-in (``archived=False`` restores them).

        Args:
            user_id: the account to archive.
            archived: ``False`` un-archives.
            by: the acting user; when given, must be an instructor (the CLI passes none).

        Raises:
            NotFoundError: no such user.
            PermissionDeniedError: ``by`` is not an instructor.
        """
        if by is not None and self.user(by).role != "instructor":
            raise PermissionDeniedError("only an instructor can archive accounts")
        with self._write() as db:
            cursor = db.execute(
                "UPDATE users SET archived = ? WHERE id = ?", [int(archived), user_id]
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"no user with id {user_id}")
        return self.user(user_id)

    def delete_user(self, user_id: int) -> None:
        """Delete an account that has no work, feedback or snippets attached.

        Raises:
            NotFoundError: no such user.
            ConflictError: the user has work (archive them instead).
        """
        with self._write() as db:
            if self._one(db, "SELECT id FROM users WHERE id = ?", [user_id]) is None:
                raise NotFoundError(f"no user with id {user_id}")
            for table in _WORK_TABLES:
                # Table names come from the constant above, never from input.
                if self._one(
                    db, f"SELECT 1 AS x FROM {table} WHERE user_id = ? LIMIT 1", [user_id]
                ):
                    raise ConflictError(
                        "this user has saved work and cannot be deleted; archive them instead"
                    )
            try:
                # Remembered sign-ins are not work: they go with the account.
                db.execute("DELETE FROM sign_in_sessions WHERE user_id = ?", [user_id])
                db.execute("DELETE FROM users WHERE id = ?", [user_id])
            except sqlite3.IntegrityError:
                # Feedback or snippets still reference the user.
                raise ConflictError(
                    "this user is referenced by feedback or snippets; archive them instead"
                ) from None

    def touch_user(self, user_id: int) -> None:
        """Set ``last_seen_at`` to now.

        Raises:
            NotFoundError: no such user.
        """
        with self._write() as db:
            cursor = db.execute(
                "UPDATE users SET last_seen_at = ? WHERE id = ?", [_ts(_now()), user_id]
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"no user with id {user_id}")

    # ------------------------------------------------------------------ sign-in sessions

    def start_session(self, user_id: int) -> str:
        """Remember a sign-in; returns a new random token for the browser to keep.

        Only the token's SHA-256 is stored, so the database alone cannot sign anyone in.

        Raises:
            NotFoundError: no such user.
        """
        token = secrets.token_urlsafe(32)
        now = _ts(_now())
        with self._write() as db:
            self._require_user(db, user_id)
            db.execute(
                "INSERT INTO sign_in_sessions (token_hash, user_id, created_at, last_used_at)"
                " VALUES (?, ?, ?, ?)",
                [_token_hash(token), user_id, now, now],
            )
        return token

    def session_user(self, token: str, *, idle_seconds: float) -> User:
        """The user a remembered sign-in belongs to, refreshing its last use.

        Raises:
            NotFoundError: unknown token, a session idle longer than ``idle_seconds`` (it is
                ended), or an archived user.
        """
        if not isinstance(token, str) or not token:
            raise NotFoundError("no such sign-in session")
        key = _token_hash(token)
        now = _now()
        with self._write() as db:
            row = self._one(
                db, "SELECT user_id, last_used_at FROM sign_in_sessions WHERE token_hash = ?", [key]
            )
            expired = row is not None and _dt(row["last_used_at"]) < now - timedelta(
                seconds=idle_seconds
            )
            if expired:
                db.execute("DELETE FROM sign_in_sessions WHERE token_hash = ?", [key])
            elif row is not None:
                db.execute(
                    "UPDATE sign_in_sessions SET last_used_at = ? WHERE token_hash = ?",
                    [_ts(now), key],
                )
        # Raised after the transaction, so that an expired session's removal is committed.
        if row is None:
            raise NotFoundError("no such sign-in session")
        if expired:
            raise NotFoundError("the sign-in session expired")
        user = self.user(row["user_id"])
        if user.archived:
            raise NotFoundError("the account is archived")
        return user

    def end_session(self, token: str) -> None:
        """Forget a remembered sign-in (sign out). Unknown tokens are ignored."""
        if isinstance(token, str) and token:
            with self._write() as db:
                db.execute(
                    "DELETE FROM sign_in_sessions WHERE token_hash = ?", [_token_hash(token)]
                )

    def _require_user(self, db: Database, user_id: int, field: str = "user_id") -> dict[str, Any]:
        if isinstance(user_id, bool) or not isinstance(user_id, int):
            raise ValidationError(field, f"{field} must be a user id (a whole number)")
        row = self._one(db, "SELECT id, role, archived FROM users WHERE id = ?", [user_id])
        if row is None:
            raise NotFoundError(f"no user with id {user_id}")
        return row

    # ------------------------------------------------------------------ answers

    @staticmethod
    def _answer(row: dict[str, Any]) -> AnswerRevision:
        return AnswerRevision(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            question_id=row["question_id"],
            text=row["text"],
        )

    def save_answer(self, user_id: int, question_id: str, text: str) -> AnswerRevision:
        """Append ``text`` as the newest revision of the answer to ``question_id``.

        Saving the same text as the latest revision returns that revision unchanged
        (autosave calls this often).

        Raises:
            ValidationError: unknown question id, or text over 20,000 characters.
            NotFoundError: no such user.
        """
        check.choice("question_id", question_id, self.question_ids)
        check.text("text", text)
        with self._write() as db:
            self._require_user(db, user_id)
            latest = self._one(
                db,
                "SELECT * FROM answer_revisions WHERE user_id = ? AND question_id = ?"
                " ORDER BY id DESC LIMIT 1",
                [user_id, question_id],
            )
            if latest is not None and latest["text"] == text:
                return self._answer(latest)
            cursor = db.execute(
                "INSERT INTO answer_revisions (user_id, question_id, text, created_at)"
                " VALUES (?, ?, ?, ?)",
                [user_id, question_id, text, _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM answer_revisions WHERE id = ?", [cursor.lastrowid])
        return self._answer(row)

    def answer(self, user_id: int, question_id: str) -> AnswerRevision:
        """The latest answer to ``question_id``.

        Raises:
            ValidationError: unknown question id.
            NotFoundError: nothing saved yet.
        """
        check.choice("question_id", question_id, self.question_ids)
        row = self._one(
            self._db(),
            "SELECT * FROM answer_revisions WHERE user_id = ? AND question_id = ?"
            " ORDER BY id DESC LIMIT 1",
            [user_id, question_id],
        )
        if row is None:
            raise NotFoundError(f"no answer to {question_id} saved yet")
        return self._answer(row)

    def answers_for(self, user_id: int) -> dict[str, AnswerRevision]:
        """Latest answer per question id that has one, in ``question_ids`` order."""
        rows = self._db().query(
            "SELECT a.* FROM answer_revisions a JOIN ("
            " SELECT max(id) AS id FROM answer_revisions WHERE user_id = ? GROUP BY question_id"
            ") latest ON a.id = latest.id",
            [user_id],
        )
        found = {row["question_id"]: self._answer(row) for row in rows}
        return {qid: found[qid] for qid in self.question_ids if qid in found}

    def answer_history(self, user_id: int, question_id: str) -> list[AnswerRevision]:
        """Every revision of an answer, oldest first.

        Raises:
            ValidationError: unknown question id.
        """
        check.choice("question_id", question_id, self.question_ids)
        rows = self._db().query(
            "SELECT * FROM answer_revisions WHERE user_id = ? AND question_id = ? ORDER BY id",
            [user_id, question_id],
        )
        return [self._answer(row) for row in rows]

    # ------------------------------------------------------------------ tutorial log

    def set_tutorial_path(self, user_id: int, path: str) -> None:
        """Record which path the student chose: ``"tutorials"`` or ``"project"``.

        Entries of the other path are kept.

        Raises:
            ValidationError: unknown path.
            NotFoundError: no such user.
        """
        check.choice("path", path, TUTORIAL_PATHS)
        with self._write() as db:
            self._require_user(db, user_id)
            latest = self._one(
                db,
                "SELECT path FROM tutorial_path_revisions WHERE user_id = ?"
                " ORDER BY id DESC LIMIT 1",
                [user_id],
            )
            if latest is None or latest["path"] != path:
                db.execute(
                    "INSERT INTO tutorial_path_revisions (user_id, path, created_at)"
                    " VALUES (?, ?, ?)",
                    [user_id, path, _ts(_now())],
                )

    @staticmethod
    def _tutorial(row: dict[str, Any]) -> TutorialEntry:
        return TutorialEntry(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            slot=row["slot"],
            category=row["category"],
            title=row["title"],
            url=row["url"],
            from_catalog=bool(row["from_catalog"]),
            dates=tuple(json.loads(row["dates"])),
            minutes=row["minutes"],
            notes=row["notes"],
            reflection=row["reflection"],
        )

    def log_tutorial(
        self,
        user_id: int,
        slot: str,
        *,
        category: str = "",
        title: str = "",
        url: str = "",
        from_catalog: bool = False,
        dates: Sequence[str | date] = (),
        minutes: int | None = None,
        notes: str = "",
        reflection: str = "",
    ) -> TutorialEntry:
        """Append a revision of one tutorial-log entry (the whole entry, every field).

        Identical to the latest revision of the slot: nothing is appended.

        Args:
            slot: ``"1"`` or ``"2"`` (the store's ``slots``).
            category, title: at most 200 characters each.
            url: empty or an http(s) URL.
            from_catalog: the tutorial was picked from the catalog.
            dates: the day(s) worked, ``date`` objects or ``YYYY-MM-DD`` text.
            minutes: time spent, 0-100,000, or ``None``.
            notes, reflection: up to 20,000 characters each, stored exactly as typed.

        Raises:
            ValidationError: a field breaks its limit, or the slot is unknown.
            NotFoundError: no such user.
        """
        slot = check.choice("slot", slot, self.slots)
        values = {
            "category": check.text("category", category, check.MAX_NAME),
            "title": check.text("title", title, check.MAX_NAME),
            "url": check.url("url", url),
            "from_catalog": int(bool(from_catalog)),
            "dates": json.dumps(list(check.dates("dates", dates))),
            "minutes": check.optional_int("minutes", minutes, 0, check.MAX_MINUTES),
            "notes": check.text("notes", notes),
            "reflection": check.text("reflection", reflection),
        }
        with self._write() as db:
            self._require_user(db, user_id)
            latest = self._one(
                db,
                "SELECT * FROM tutorial_revisions WHERE user_id = ? AND slot = ?"
                " ORDER BY id DESC LIMIT 1",
                [user_id, slot],
            )
            if latest is not None and all(latest[k] == v for k, v in values.items()):
                return self._tutorial(latest)
            cursor = db.execute(
                "INSERT INTO tutorial_revisions (user_id, slot, category, title, url,"
                " from_catalog, dates, minutes, notes, reflection, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [user_id, slot, *values.values(), _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM tutorial_revisions WHERE id = ?", [cursor.lastrowid])
        return self._tutorial(row)

    def tutorial_history(self, user_id: int, slot: str) -> list[TutorialEntry]:
        """Every revision of one tutorial-log slot, oldest first.

        Raises:
            ValidationError: unknown slot.
        """
        check.choice("slot", slot, self.slots)
        rows = self._db().query(
            "SELECT * FROM tutorial_revisions WHERE user_id = ? AND slot = ? ORDER BY id",
            [user_id, slot],
        )
        return [self._tutorial(row) for row in rows]

    _PROJECT_SELECT = (
        "SELECT p.*, u.content AS notebook_bytes, u.sha256 AS notebook_sha256"
        " FROM project_revisions p LEFT JOIN uploads u ON u.id = p.upload_id"
    )

    @staticmethod
    def _project(row: dict[str, Any]) -> ProjectEntry:
        return ProjectEntry(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            description=row["description"],
            link=row["link"],
            notebook_name=row["notebook_name"],
            notebook_bytes=row["notebook_bytes"],
            notebook_sha256=row["notebook_sha256"],
            reflection=row["reflection"],
        )

    def log_project(
        self,
        user_id: int,
        *,
        description: str = "",
        link: str = "",
        notebook_name: str | None = None,
        notebook_bytes: bytes | None = None,
        reflection: str = "",
    ) -> ProjectEntry:
        """Append a revision of the mini-project entry.

        ``notebook_bytes=None`` keeps the latest revision's notebook (so autosaving the
        text does not drop an upload); ``b""`` removes it from the new revision (older
        revisions keep it). Uploads are stored once per content hash.

        Args:
            description, reflection: up to 20,000 characters each.
            link: empty or an http(s) URL.
            notebook_name: file name of the upload, at most 200 characters.
            notebook_bytes: the uploaded notebook, at most 20 MiB.

        Raises:
            ValidationError: a field breaks its limit.
            NotFoundError: no such user.
        """
        description = check.text("description", description)
        link = check.url("link", link)
        reflection = check.text("reflection", reflection)
        if notebook_name is not None:
            notebook_name = check.text("notebook_name", notebook_name, check.MAX_NAME) or None
        if notebook_bytes is not None:
            if not isinstance(notebook_bytes, (bytes, bytearray, memoryview)):
                raise ValidationError("notebook_bytes", "notebook_bytes must be bytes")
            notebook_bytes = bytes(notebook_bytes)
            if len(notebook_bytes) > check.MAX_UPLOAD_BYTES:
                raise ValidationError(
                    "notebook_bytes",
                    f"the notebook is larger than {check.MAX_UPLOAD_BYTES // (1024 * 1024)} MiB",
                    limit=check.MAX_UPLOAD_BYTES,
                )
        with self._write() as db:
            self._require_user(db, user_id)
            latest = self._one(
                db,
                "SELECT * FROM project_revisions WHERE user_id = ? ORDER BY id DESC LIMIT 1",
                [user_id],
            )
            if notebook_bytes is None:
                upload_id = latest["upload_id"] if latest else None
                if notebook_name is None and latest is not None:
                    notebook_name = latest["notebook_name"]
            elif notebook_bytes == b"":
                upload_id, notebook_name = None, None
            else:
                upload_id = self._upload(db, notebook_bytes)
            values = {
                "description": description,
                "link": link,
                "notebook_name": notebook_name,
                "upload_id": upload_id,
                "reflection": reflection,
            }
            if latest is None or any(latest[k] != v for k, v in values.items()):
                cursor = db.execute(
                    "INSERT INTO project_revisions (user_id, description, link, notebook_name,"
                    " upload_id, reflection, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [user_id, *values.values(), _ts(_now())],
                )
                revision_id = cursor.lastrowid
            else:
                revision_id = latest["id"]
            row = self._one(db, self._PROJECT_SELECT + " WHERE p.id = ?", [revision_id])
        return self._project(row)

    def _upload(self, db: Database, content: bytes) -> int:
        digest = hashlib.sha256(content).hexdigest()
        row = self._one(db, "SELECT id FROM uploads WHERE sha256 = ?", [digest])
        if row is not None:
            return row["id"]
        cursor = db.execute(
            "INSERT INTO uploads (sha256, content, created_at) VALUES (?, ?, ?)",
            [digest, content, _ts(_now())],
        )
        return cursor.lastrowid

    def project_history(self, user_id: int) -> list[ProjectEntry]:
        """Every revision of the mini-project entry, oldest first."""
        rows = self._db().query(
            self._PROJECT_SELECT + " WHERE p.user_id = ? ORDER BY p.id", [user_id]
        )
        return [self._project(row) for row in rows]

    def tutorial_log(self, user_id: int) -> TutorialLog:
        """The chosen path, the latest entry per slot and the latest project entry."""
        with self._read() as db:
            path_row = self._one(
                db,
                "SELECT path FROM tutorial_path_revisions WHERE user_id = ?"
                " ORDER BY id DESC LIMIT 1",
                [user_id],
            )
            rows = db.query(
                "SELECT t.* FROM tutorial_revisions t JOIN ("
                " SELECT max(id) AS id FROM tutorial_revisions WHERE user_id = ? GROUP BY slot"
                ") latest ON t.id = latest.id",
                [user_id],
            )
            found = {row["slot"]: self._tutorial(row) for row in rows}
            project_row = self._one(
                db,
                self._PROJECT_SELECT + " WHERE p.user_id = ? ORDER BY p.id DESC LIMIT 1",
                [user_id],
            )
        return TutorialLog(
            user_id=user_id,
            path=path_row["path"] if path_row else None,
            entries={slot: found[slot] for slot in self.slots if slot in found},
            project=self._project(project_row) if project_row else None,
        )

    # ------------------------------------------------------------------ cells

    @staticmethod
    def _cell(row: dict[str, Any]) -> CellRevision:
        return CellRevision(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            step_id=row["step_id"],
            code=row["code"],
            outputs=json.loads(row["outputs"]),
            execution_count=row["execution_count"],
            passed=None if row["passed"] is None else bool(row["passed"]),
            message=row["message"],
            ran_at=_dt(row["ran_at"]),
        )

    def save_cell(
        self,
        user_id: int,
        step_id: str,
        *,
        code: str,
        outputs: list[dict[str, Any]] | None = None,
        execution_count: int | None = None,
        passed: bool | None = None,
        message: str | None = None,
    ) -> CellRevision:
        """Append a revision of one exercise step's cell.

        A code-only autosave (no outputs, execution count, result or message) whose code
        equals the latest revision's returns that revision (keeping its run results).
        Anything else is a run: it is appended with ``ran_at`` set, every time.

        Args:
            code: the cell's source, at most 200,000 characters.
            outputs: nbformat output dicts (JSON-serialisable, at most 20 MiB encoded).
            execution_count: the kernel's execution count.
            passed: the check result, ``None`` if not checked.
            message: the check's message, at most 20,000 characters.

        Raises:
            ValidationError: unknown step id or a field over its limit.
            NotFoundError: no such user.
        """
        check.choice("step_id", step_id, self.step_ids)
        check.text("code", code, check.MAX_CODE)
        outputs_json = check.outputs(outputs)
        execution_count = check.optional_int("execution_count", execution_count, 0, 2**31 - 1)
        if passed is not None and not isinstance(passed, bool):
            raise ValidationError("passed", "passed must be True, False or None")
        if message is not None:
            check.text("message", message)
        is_run = not (
            outputs is None and execution_count is None and passed is None and message is None
        )
        now = _ts(_now())
        with self._write() as db:
            self._require_user(db, user_id)
            if not is_run:
                latest = self._one(
                    db,
                    "SELECT * FROM cell_revisions WHERE user_id = ? AND step_id = ?"
                    " ORDER BY id DESC LIMIT 1",
                    [user_id, step_id],
                )
                if latest is not None and latest["code"] == code:
                    return self._cell(latest)
            cursor = db.execute(
                "INSERT INTO cell_revisions (user_id, step_id, code, outputs, execution_count,"
                " passed, message, ran_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    user_id,
                    step_id,
                    code,
                    outputs_json,
                    execution_count,
                    None if passed is None else int(passed),
                    message,
                    now if is_run else None,
                    now,
                ],
            )
            row = self._one(db, "SELECT * FROM cell_revisions WHERE id = ?", [cursor.lastrowid])
        return self._cell(row)

    def cells_for(self, user_id: int) -> dict[str, CellRevision]:
        """Latest cell revision per step that has one, in ``step_ids`` order."""
        rows = self._db().query(
            "SELECT c.* FROM cell_revisions c JOIN ("
            " SELECT max(id) AS id FROM cell_revisions WHERE user_id = ? GROUP BY step_id"
            ") latest ON c.id = latest.id",
            [user_id],
        )
        found = {row["step_id"]: self._cell(row) for row in rows}
        return {sid: found[sid] for sid in self.step_ids if sid in found}

    def cell_history(self, user_id: int, step_id: str) -> list[CellRevision]:
        """Every revision of one step's cell, oldest first.

        Raises:
            ValidationError: unknown step id.
        """
        check.choice("step_id", step_id, self.step_ids)
        rows = self._db().query(
            "SELECT * FROM cell_revisions WHERE user_id = ? AND step_id = ? ORDER BY id",
            [user_id, step_id],
        )
        return [self._cell(row) for row in rows]

    # ------------------------------------------------------------------ feedback

    @staticmethod
    def _feedback(row: dict[str, Any]) -> Feedback:
        return Feedback(
            id=row["id"],
            student_id=row["student_id"],
            grader_id=row["grader_id"],
            grade=row["grade"],
            comment=row["comment"],
            item_comments=json.loads(row["item_comments"]),
            released=bool(row["released"]),
            created_at=_dt(row["created_at"]),
        )

    def save_feedback(
        self,
        student_id: int,
        grader_id: int,
        *,
        grade: float | str | None = None,
        comment: str = "",
        item_comments: dict[str, str] | None = None,
        released: bool = False,
    ) -> Feedback:
        """Append a version of a student's feedback (drafts and releases are both kept).

        Args:
            student_id: the student (role ``student``).
            grader_id: a TA or instructor.
            grade: a non-negative number (or numeric text), or ``None``.
            comment: overall comment, up to 20,000 characters.
            item_comments: item (step id, question id, ``"tutorial1"`` ...) -> comment.
            released: the student may see this version.

        Raises:
            ValidationError: bad grade, comment too long, wrong roles.
            NotFoundError: no such student or grader.
        """
        grade_value = check.grade(grade)
        check.text("comment", comment)
        items = dict(item_comments or {})
        for key, value in items.items():
            check.text("item_comments key", key, check.MAX_NAME, allow_empty=False)
            check.text(f"item_comments[{key!r}]", value)
        with self._write() as db:
            student = self._require_user(db, student_id, "student_id")
            grader = self._require_user(db, grader_id, "grader_id")
            if student["role"] != "student":
                raise ValidationError("student_id", "feedback can only be given to a student")
            if grader["role"] not in ("ta", "instructor"):
                raise ValidationError("grader_id", "only a TA or instructor can give feedback")
            cursor = db.execute(
                "INSERT INTO feedback (student_id, grader_id, grade, comment, item_comments,"
                " released, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    student_id,
                    grader_id,
                    grade_value,
                    comment,
                    json.dumps(items, ensure_ascii=False),
                    int(bool(released)),
                    _ts(_now()),
                ],
            )
            row = self._one(db, "SELECT * FROM feedback WHERE id = ?", [cursor.lastrowid])
        return self._feedback(row)

    def feedback_for(self, student_id: int) -> Feedback:
        """The latest feedback version, draft or released (for graders).

        Raises:
            NotFoundError: none saved yet.
        """
        row = self._one(
            self._db(),
            "SELECT * FROM feedback WHERE student_id = ? ORDER BY id DESC LIMIT 1",
            [student_id],
        )
        if row is None:
            raise NotFoundError("no feedback saved for this student yet")
        return self._feedback(row)

    def released_feedback_for(self, student_id: int) -> Feedback:
        """The latest released feedback (what the student sees).

        Raises:
            NotFoundError: nothing released yet.
        """
        row = self._one(
            self._db(),
            "SELECT * FROM feedback WHERE student_id = ? AND released = 1 ORDER BY id DESC LIMIT 1",
            [student_id],
        )
        if row is None:
            raise NotFoundError("no feedback has been released to this student yet")
        return self._feedback(row)

    def feedback_history(self, student_id: int) -> list[Feedback]:
        """Every saved feedback version for a student, oldest first."""
        rows = self._db().query(
            "SELECT * FROM feedback WHERE student_id = ? ORDER BY id", [student_id]
        )
        return [self._feedback(row) for row in rows]

    def add_snippet(self, text: str, author_id: int) -> Snippet:
        """Save a reusable feedback comment.

        Raises:
            ValidationError: empty or over 20,000 characters.
            NotFoundError: no such author.
        """
        check.text("text", text, allow_empty=False)
        with self._write() as db:
            self._require_user(db, author_id, "author_id")
            cursor = db.execute(
                "INSERT INTO snippets (text, author_id, created_at) VALUES (?, ?, ?)",
                [text, author_id, _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM snippets WHERE id = ?", [cursor.lastrowid])
        return Snippet(row["id"], row["text"], row["author_id"], _dt(row["created_at"]))

    def snippets(self) -> list[Snippet]:
        """Every saved snippet, oldest first."""
        rows = self._db().query("SELECT * FROM snippets ORDER BY id")
        return [Snippet(r["id"], r["text"], r["author_id"], _dt(r["created_at"])) for r in rows]

    # ------------------------------------------------------------------ exports

    def record_export(self, user_id: int, file_name: str, sha256: str) -> ExportRecord:
        """Record that a submission bundle was exported.

        Raises:
            ValidationError: bad file name or sha256.
            NotFoundError: no such user.
        """
        file_name = check.name("file_name", file_name)
        digest = check.sha256(sha256)
        with self._write() as db:
            self._require_user(db, user_id)
            cursor = db.execute(
                "INSERT INTO exports (user_id, file_name, sha256, created_at) VALUES (?, ?, ?, ?)",
                [user_id, file_name, digest, _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM exports WHERE id = ?", [cursor.lastrowid])
        return self._export(row)

    @staticmethod
    def _export(row: dict[str, Any]) -> ExportRecord:
        return ExportRecord(
            row["id"], row["user_id"], row["file_name"], row["sha256"], _dt(row["created_at"])
        )

    def exports_for(self, user_id: int) -> list[ExportRecord]:
        """Every export of a student, oldest first."""
        rows = self._db().query("SELECT * FROM exports WHERE user_id = ? ORDER BY id", [user_id])
        return [self._export(row) for row in rows]

    # ------------------------------------------------------------------ roster

    def roster(self, include_archived: bool = False) -> list[RosterRow]:
        """One progress row per student, ordered by name."""
        with self._read() as db:
            students = list(
                db.query(
                    "SELECT id, name, email, archived, last_seen_at FROM users"
                    " WHERE role = 'student'"
                    + ("" if include_archived else " AND archived = 0")
                    + " ORDER BY name COLLATE NOCASE, id"
                )
            )
            passed: dict[int, int] = {}
            for row in db.query(
                "SELECT c.user_id, c.step_id, c.passed FROM cell_revisions c JOIN ("
                " SELECT max(id) AS id FROM cell_revisions GROUP BY user_id, step_id"
                ") latest ON c.id = latest.id"
            ):
                if row["passed"] and row["step_id"] in self.step_ids:
                    passed[row["user_id"]] = passed.get(row["user_id"], 0) + 1
            answered: dict[int, int] = {}
            for row in db.query(
                "SELECT a.user_id, a.question_id, a.text FROM answer_revisions a JOIN ("
                " SELECT max(id) AS id FROM answer_revisions GROUP BY user_id, question_id"
                ") latest ON a.id = latest.id"
            ):
                if row["text"].strip() and row["question_id"] in self.question_ids:
                    answered[row["user_id"]] = answered.get(row["user_id"], 0) + 1
            reflections: dict[int, int] = {}
            for row in db.query(
                "SELECT t.user_id, t.slot, t.reflection FROM tutorial_revisions t JOIN ("
                " SELECT max(id) AS id FROM tutorial_revisions GROUP BY user_id, slot"
                ") latest ON t.id = latest.id"
            ):
                if row["reflection"].strip() and row["slot"] in self.slots:
                    reflections[row["user_id"]] = reflections.get(row["user_id"], 0) + 1
            project = {
                row["user_id"]: bool(row["reflection"].strip())
                for row in db.query(
                    "SELECT p.user_id, p.reflection FROM project_revisions p JOIN ("
                    " SELECT max(id) AS id FROM project_revisions GROUP BY user_id"
                    ") latest ON p.id = latest.id"
                )
            }
            paths = {
                row["user_id"]: row["path"]
                for row in db.query(
                    "SELECT t.user_id, t.path FROM tutorial_path_revisions t JOIN ("
                    " SELECT max(id) AS id FROM tutorial_path_revisions GROUP BY user_id"
                    ") latest ON t.id = latest.id"
                )
            }
            exported = {
                row["user_id"]: row["at"]
                for row in db.query(
                    "SELECT user_id, max(created_at) AS at FROM exports GROUP BY user_id"
                )
            }
            activity: dict[int, str] = {}
            for table in (
                "answer_revisions",
                "tutorial_revisions",
                "project_revisions",
                "cell_revisions",
                "tutorial_path_revisions",
            ):
                # Table names come from this fixed tuple, never from input.
                for row in db.query(
                    f"SELECT user_id, max(created_at) AS at FROM {table} GROUP BY user_id"
                ):
                    if row["at"] > activity.get(row["user_id"], ""):
                        activity[row["user_id"]] = row["at"]
            feedback = {
                row["student_id"]: "released" if row["released"] else "draft"
                for row in db.query(
                    "SELECT f.student_id, f.released FROM feedback f JOIN ("
                    " SELECT max(id) AS id FROM feedback GROUP BY student_id"
                    ") latest ON f.id = latest.id"
                )
            }
        out = []
        for s in students:
            uid = s["id"]
            last = max(filter(None, [activity.get(uid), s["last_seen_at"]]), default=None)
            out.append(
                RosterRow(
                    user_id=uid,
                    name=s["name"],
                    email=s["email"],
                    archived=bool(s["archived"]),
                    tutorial_path=paths.get(uid),
                    steps_passed=passed.get(uid, 0),
                    steps_total=len(self.step_ids),
                    reflections=reflections.get(uid, 0),
                    project_reflection=project.get(uid, False),
                    answers_nonempty=answered.get(uid, 0),
                    questions_total=len(self.question_ids),
                    last_export_at=_dt(exported.get(uid)),
                    last_activity_at=_dt(last),
                    feedback_status=feedback.get(uid, "none"),
                )
            )
        return out

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

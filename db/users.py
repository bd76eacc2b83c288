"""Accounts: creation, passwords, authentication, login attempts, sign-in sessions,
archive and delete. Mixed into ``Store``.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from db import passwords
from db import validation as check
from db.common import _WORK_TABLES, _dt, _now, _token_hash, _ts
from db.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from db.models import ROLES, User


class UsersMixin:
    """Users and sign-in sessions of the ``Store``.

    Part of ``Store`` (``db/store.py``), which provides ``_db``, ``_read``, ``_write``
    and ``_one``.
    """

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

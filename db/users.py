"""Accounts: creation, passwords, authentication, login attempts, sign-in sessions,
archive and delete. Mixed into ``Store``.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    ThrottledError,
    ValidationError,
)
from db.models import ROLES, User


@dataclass(frozen=True)
class SignInPolicy:
    """How hard repeated failed sign-ins are slowed down (see README, "Sign-in throttling").

    Two rules, both counted over the last ``window_s`` seconds and both only ever delays,
    never a lock that a correct password cannot get through once the delay has passed:

    * per (email, client): ``free_per_client`` failures without any delay; after that each
      further attempt must come ``first_delay_s`` after that client's previous one, then
      twice as long each time (2, 4, 8, ... seconds by default, at most
      ``max_client_delay_s``). A success from the client starts it afresh.
    * per email, over every client that is not a trusted browser of the account: after
      ``free_per_account`` failures, at most one attempt per ``account_interval_s``. A
      trusted browser (one that signed in to the account within ``trusted_browser_days``)
      is exempt, so an attacker's failures never hold the owner back there.
    """

    window_s: float = 900.0  # failures older than this are forgotten
    free_per_client: int = 5  # failures one client gets before any delay
    first_delay_s: float = 2.0  # the per-client delay after the free failures, then doubled
    max_client_delay_s: float = 60.0  # the per-client delay stops doubling here
    free_per_account: int = 20  # untrusted failures per email before the account-wide pace
    account_interval_s: float = 30.0  # then one untrusted attempt per this many seconds
    trusted_browser_days: int = 90  # a browser stays trusted this long after a success

    def client_delay_s(self, failures: int) -> float:
        """Seconds one client must leave after its previous attempt, given its failures."""
        if failures < self.free_per_client:
            return 0.0
        doubled = self.first_delay_s * 2.0 ** (failures - self.free_per_client)
        return min(doubled, self.max_client_delay_s)

    def account_delay_s(self, failures: int) -> float:
        """Seconds between untrusted attempts on one email, given their failures."""
        return self.account_interval_s if failures >= self.free_per_account else 0.0


def _remaining(delay_s: float, last: str | None, now: datetime) -> float:
    """How much of ``delay_s`` after the attempt at ``last`` is still to run at ``now``."""
    if delay_s <= 0 or last is None:
        return 0.0
    return delay_s - (now - _dt(last)).total_seconds()


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
            password: at least ``min_password_length`` characters; stored as an Argon2id hash.
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

    def authenticate(
        self,
        email: str,
        password: str,
        *,
        client: str = "",
        browser: str | None = None,
        policy: SignInPolicy | None = None,
    ) -> User:
        """Return the user whose email and password match, throttling repeated failures.

        The attempt is reserved first, in one write transaction that counts every earlier
        attempt still in the window (finished or still being checked) and either records
        this one as pending or refuses it. Parallel attempts therefore queue on SQLite's
        write lock and each one sees the others: no more than the policy allows ever reach
        the password check. The reserved row is then marked failed or succeeded.

        Args:
            email: the account's email (compared case-insensitively).
            password: the password to check.
            client: where the attempt comes from (e.g. the browser's IP address); the
                per-client allowance is counted per (email, client).
            browser: the sign-in browser's own token (kept in an HttpOnly cookie), if any.
                A browser that signed in to this account before is *trusted*: it is counted
                on its own and is never held back by other clients' failures. On success
                the token becomes (or stays) trusted for this account.
            policy: the throttle's numbers; ``SignInPolicy()`` when omitted.

        Raises:
            ThrottledError: too many recent failures; the password was not checked.
            AuthenticationError: unknown email, wrong password or archived account (the
                message does not say which).
        """
        policy = policy or SignInPolicy()
        cleaned = email.strip().lower()[: check.MAX_EMAIL] if isinstance(email, str) else ""
        password = password if isinstance(password, str) else ""
        browser_hash = _token_hash(browser) if isinstance(browser, str) and browser else None
        attempt_id = self._reserve_attempt(cleaned, str(client)[:200], browser_hash, policy)
        row = None
        ok = False
        try:
            row = self._one(
                self._db(),
                "SELECT id, password_hash, archived FROM users WHERE email = ?",
                [cleaned],
            )
            if row is None:
                passwords.burn_time(password)
            else:
                ok = passwords.verify_password(password, row["password_hash"]) and not bool(
                    row["archived"]
                )
        finally:
            # Also on an unexpected error: a pending row would count as a failure forever.
            self._finish_attempt(attempt_id, ok, row["id"] if ok else None, browser_hash)
        if not ok:
            raise AuthenticationError("wrong email or password")
        if passwords.needs_rehash(row["password_hash"]):
            self._upgrade_hash(row["id"], row["password_hash"], password)
        return self.user(row["id"])

    def _upgrade_hash(self, user_id: int, old_hash: str, password: str) -> None:
        """Replace a weaker hash (old scheme or lower cost) now that we know the password."""
        new_hash = passwords.hash_password(password)
        with self._write() as db:
            # Only if the row still holds the hash we verified: a password changed in the
            # meantime (set_password) must not be overwritten by the old one.
            db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                [new_hash, user_id, old_hash],
            )

    def _reserve_attempt(
        self, email: str, client: str, browser_hash: str | None, policy: SignInPolicy
    ) -> int:
        """Decide, atomically, whether this attempt may check a password; record it if so."""
        now = _now()
        since = _ts(now - timedelta(seconds=policy.window_s))
        with self._write() as db:
            # Attempts older than the window are never counted again: forget them, so the
            # table holds one window of attempts instead of growing with every sign-in.
            db.execute("DELETE FROM sign_in_attempts WHERE at < ?", [since])
            trusted = browser_hash is not None and (
                self._one(
                    db,
                    "SELECT 1 AS x FROM trusted_browsers t JOIN users u ON u.id = t.user_id"
                    " WHERE u.email = ? AND t.token_hash = ? AND t.last_success_at >= ?",
                    [
                        email,
                        browser_hash,
                        _ts(now - timedelta(days=policy.trusted_browser_days)),
                    ],
                )
                is not None
            )
            key = f"browser:{browser_hash}" if trusted else f"client:{client}"
            # This client's failures since its last success (a success starts it afresh).
            mine = self._one(
                db,
                "SELECT count(*) AS n, max(at) AS last FROM sign_in_attempts"
                " WHERE email = ? AND client = ? AND outcome != 'succeeded' AND at >= ?"
                " AND at > coalesce((SELECT max(at) FROM sign_in_attempts WHERE email = ?"
                " AND client = ? AND outcome = 'succeeded'), '')",
                [email, key, since, email, key],
            )
            wait = _remaining(policy.client_delay_s(mine["n"]), mine["last"], now)
            if not trusted:
                # Every untrusted client's failures together: an attacker spread over many
                # addresses is slowed down as one. The owner's own successes do not reset
                # this count (they would hand the attacker a fresh allowance).
                everyone = self._one(
                    db,
                    "SELECT count(*) AS n, max(at) AS last FROM sign_in_attempts"
                    " WHERE email = ? AND trusted = 0 AND outcome != 'succeeded' AND at >= ?",
                    [email, since],
                )
                wait = max(
                    wait, _remaining(policy.account_delay_s(everyone["n"]), everyone["last"], now)
                )
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise ThrottledError(
                    f"too many failed sign-ins; try again in {seconds} s", retry_after_s=seconds
                )
            cursor = db.execute(
                "INSERT INTO sign_in_attempts (email, client, trusted, outcome, at)"
                " VALUES (?, ?, ?, 'pending', ?)",
                [email, key, int(trusted), _ts(now)],
            )
            return int(cursor.lastrowid)

    def _finish_attempt(
        self, attempt_id: int, ok: bool, user_id: int | None, browser_hash: str | None
    ) -> None:
        now = _ts(_now())
        with self._write() as db:
            db.execute(
                "UPDATE sign_in_attempts SET outcome = ? WHERE id = ?",
                ["succeeded" if ok else "failed", attempt_id],
            )
            if ok:
                db.execute("UPDATE users SET last_seen_at = ? WHERE id = ?", [now, user_id])
                if browser_hash is not None:
                    self._trust(db, user_id, browser_hash, now)

    def trust_browser(self, user_id: int, browser: str) -> None:
        """Trust a browser's token for this account, as a successful sign-in from it does.

        Used right after registering, where the browser proved nothing but created the
        account itself.

        Raises:
            NotFoundError: no such user.
            ValidationError: ``browser`` is not a non-empty string.
        """
        if not isinstance(browser, str) or not browser:
            raise ValidationError("browser", "a browser token must be non-empty text")
        with self._write() as db:
            self._require_user(db, user_id)
            self._trust(db, user_id, _token_hash(browser), _ts(_now()))

    @staticmethod
    def _trust(db: Database, user_id: int, browser_hash: str, now: str) -> None:
        db.execute(
            "INSERT INTO trusted_browsers (user_id, token_hash, last_success_at)"
            " VALUES (?, ?, ?) ON CONFLICT (user_id, token_hash)"
            " DO UPDATE SET last_success_at = excluded.last_success_at",
            [user_id, browser_hash, now],
        )

    def failed_logins_since(self, email: str, seconds: float) -> int:
        """How many failed sign-ins for ``email`` happened in the last ``seconds``.

        Only attempts within the sign-in policy's window are kept, so a longer ``seconds``
        counts no further back than the window of the latest sign-in attempt.
        """
        cleaned = email.strip().lower() if isinstance(email, str) else ""
        since = _ts(_now() - timedelta(seconds=seconds))
        row = self._one(
            self._db(),
            "SELECT count(*) AS n FROM sign_in_attempts WHERE email = ? AND outcome = 'failed'"
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
                db.execute("DELETE FROM trusted_browsers WHERE user_id = ?", [user_id])
                # So are the LTI links and course memberships a launch recorded.
                for table in ("lti_pending_links", "lti_identities", "lti_memberships"):
                    db.execute(f"DELETE FROM {table} WHERE user_id = ?", [user_id])
                db.execute("DELETE FROM users WHERE id = ?", [user_id])
            except sqlite3.IntegrityError:
                # Feedback or snippets still reference the user.
                raise ConflictError(
                    "this user is referenced by feedback or snippets; archive them instead"
                ) from None

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

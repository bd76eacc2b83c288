"""LTI 1.3 storage: registered platforms, login states, one-use nonces, identities, courses.

Mixed into ``Store``. Only storage lives here; what a launch means (which checks, which role)
is decided in ``workbook/lti/``. The tool's signing keys are a file beside the database, not
a table (``db/lti_keys.py``), so that a backup or CSV export never carries the private key.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from db import validation as check
from db.common import _dt, _now, _token_hash, _ts
from db.errors import ConflictError, NotFoundError, ValidationError
from db.models import User

# A password hash no password can match (``passwords.verify_password`` refuses any hash that
# is not ``scrypt$...``): an account made by a launch signs in through its platform only.
NO_PASSWORD = "!lti-launch-only"
LTI_ROLES: tuple[str, ...] = ("student", "ta")


@dataclass(frozen=True)
class LtiPlatform:
    """One registration of the tool on a platform (one deployment of it)."""

    id: int
    issuer: str
    client_id: str
    deployment_id: str
    name: str
    auth_url: str
    token_url: str
    keyset_url: str
    created_at: datetime


@dataclass(frozen=True)
class LtiLogin:
    """An OIDC login this tool started, as remembered until ``expires_at``.

    Attributes:
        same_browser: whether the browser binding presented now is the one the login gave.
        login_params: the platform's login request, to start it again in a new window.
    """

    issuer: str
    client_id: str
    nonce: str
    login_params: dict[str, str]
    expires_at: datetime
    same_browser: bool


@dataclass(frozen=True)
class LtiContext:
    """A course (or group) of a platform that users launched from."""

    id: int
    issuer: str
    deployment_id: str
    context_id: str
    title: str
    label: str


@dataclass(frozen=True)
class LtiMembership:
    """A user's place in one context, with the service URLs of their latest launch there.

    ``ags_scopes`` is the list of AGS scopes the platform granted; the URLs are ``None``
    when the launch carried no such claim.
    """

    user_id: int
    context_pk: int
    role: str
    ags_lineitem: str | None
    ags_lineitems: str | None
    ags_scopes: tuple[str, ...]
    nrps_url: str | None
    last_launch_at: datetime


def platform_url(field: str, value: object) -> str:
    """An absolute http(s) URL with a host, as a platform's endpoints must be."""
    cleaned = check.url(field, value)
    parts = urlsplit(cleaned)
    if not cleaned or not parts.netloc or parts.fragment:
        raise ValidationError(
            field,
            f"{field} must be a full URL such as https://moodle.example.org/..., got {value!r}",
        )
    return cleaned


class LtiMixin:
    """LTI platforms, logins, nonces, identities, contexts and memberships of the ``Store``.

    Part of ``Store`` (``db/store.py``), which provides ``_db``, ``_read``, ``_write``,
    ``_one``, ``_require_user``, ``user`` and ``user_by_email``.
    """

    # ------------------------------------------------------------------ platforms

    def add_lti_platform(
        self,
        *,
        issuer: str,
        client_id: str,
        deployment_id: str,
        auth_url: str,
        token_url: str,
        keyset_url: str,
        name: str = "",
    ) -> LtiPlatform:
        """Register one deployment of the tool on a platform.

        Raises:
            ValidationError: a URL that is not a full http(s) URL, or an empty id.
            ConflictError: this (issuer, client id, deployment id) is registered already.
        """
        issuer = platform_url("issuer", issuer).rstrip("/") if issuer else ""
        if not issuer:
            raise ValidationError("issuer", "issuer must be the platform's URL")
        values = [
            issuer,
            check.name("client_id", client_id),
            check.name("deployment_id", deployment_id),
            check.name("name", name or urlsplit(issuer).netloc),
            platform_url("auth_url", auth_url),
            platform_url("token_url", token_url),
            platform_url("keyset_url", keyset_url),
            _ts(_now()),
        ]
        try:
            with self._write() as db:
                cursor = db.execute(
                    "INSERT INTO lti_platforms (issuer, client_id, deployment_id, name,"
                    " auth_url, token_url, keyset_url, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
                platform_id = int(cursor.lastrowid)
        except sqlite3.IntegrityError:
            raise ConflictError(
                f"deployment {values[2]!r} of client {values[1]!r} on {issuer} is already"
                " registered (see `python -m db lti list-platforms`)"
            ) from None
        return self._lti_platform_where("id = ?", [platform_id])

    def lti_platforms(self) -> list[LtiPlatform]:
        """Every registered platform deployment, by issuer then id."""
        rows = self._db().query("SELECT * FROM lti_platforms ORDER BY issuer, id")
        return [self._platform(row) for row in rows]

    def lti_platform(
        self, issuer: str, client_id: str | None = None, deployment_id: str | None = None
    ) -> LtiPlatform:
        """The registration matching the issuer and whichever of the ids are given.

        With several matches (an id left out), the earliest registered is returned.

        Raises:
            NotFoundError: nothing registered matches.
        """
        sql, params = "issuer = ?", [str(issuer).rstrip("/")]
        if client_id is not None:
            sql, params = sql + " AND client_id = ?", [*params, client_id]
        if deployment_id is not None:
            sql, params = sql + " AND deployment_id = ?", [*params, deployment_id]
        return self._lti_platform_where(sql, params)

    def remove_lti_platform(self, platform_id: int) -> LtiPlatform:
        """Forget a registration (its users, contexts and their work stay).

        Raises:
            NotFoundError: no such registration.
        """
        platform = self._lti_platform_where("id = ?", [platform_id])
        with self._write() as db:
            db.execute("DELETE FROM lti_platforms WHERE id = ?", [platform_id])
        return platform

    def _lti_platform_where(self, where: str, params: list[Any]) -> LtiPlatform:
        # ``where`` is one of the fixed clauses above; values are always bound.
        row = self._one(
            self._db(), f"SELECT * FROM lti_platforms WHERE {where} ORDER BY id LIMIT 1", params
        )
        if row is None:
            raise NotFoundError("no LTI platform registered for that issuer, client and deployment")
        return self._platform(row)

    @staticmethod
    def _platform(row: dict[str, Any]) -> LtiPlatform:
        return LtiPlatform(**{**row, "created_at": _dt(row["created_at"])})

    # ------------------------------------------------------------------ logins and nonces

    def start_lti_login(
        self,
        *,
        state: str,
        browser: str,
        issuer: str,
        client_id: str,
        nonce: str,
        login_params: dict[str, str],
        ttl_s: float,
    ) -> None:
        """Remember a login this tool started: its state, nonce and the browser it is bound to.

        Only hashes of ``state`` and ``browser`` are kept. Expired logins are dropped here.
        """
        now = _now()
        with self._write() as db:
            db.execute("DELETE FROM lti_states WHERE expires_at < ?", [_ts(now)])
            db.execute(
                "INSERT INTO lti_states (state_hash, browser_hash, issuer, client_id, nonce,"
                " login_params, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    _token_hash(state),
                    _token_hash(browser),
                    issuer,
                    client_id,
                    nonce,
                    json.dumps(login_params),
                    _ts(now + timedelta(seconds=ttl_s)),
                ],
            )

    def lti_login(self, state: str, browser: str | None) -> LtiLogin:
        """The login ``state`` stands for, and whether ``browser`` is the one it is bound to.

        Raises:
            NotFoundError: no such login, or it expired.
        """
        row = self._one(
            self._db(),
            "SELECT * FROM lti_states WHERE state_hash = ? AND expires_at >= ?",
            [_token_hash(str(state)), _ts(_now())],
        )
        if row is None:
            raise NotFoundError("no such LTI login, or it expired")
        return LtiLogin(
            issuer=row["issuer"],
            client_id=row["client_id"],
            nonce=row["nonce"],
            login_params=json.loads(row["login_params"]),
            expires_at=_dt(row["expires_at"]),
            same_browser=bool(browser) and _token_hash(str(browser)) == row["browser_hash"],
        )

    def use_lti_nonce(self, nonce: str, issuer: str, ttl_s: float) -> None:
        """Spend a launch's nonce; it can never be spent again while it is kept.

        Raises:
            ConflictError: the nonce was used before (a replayed launch).
        """
        now = _now()
        try:
            with self._write() as db:
                db.execute("DELETE FROM lti_nonces WHERE expires_at < ?", [_ts(now)])
                db.execute(
                    "INSERT INTO lti_nonces (nonce, issuer, expires_at) VALUES (?, ?, ?)",
                    [str(nonce), issuer, _ts(now + timedelta(seconds=ttl_s))],
                )
        except sqlite3.IntegrityError:
            raise ConflictError("this launch was used already") from None

    # ------------------------------------------------------------------ identities

    def lti_user(self, issuer: str, sub: str) -> User:
        """The account linked to a platform user.

        Raises:
            NotFoundError: no account is linked to (issuer, sub).
        """
        row = self._one(
            self._db(),
            "SELECT user_id FROM lti_identities WHERE issuer = ? AND sub = ?",
            [issuer, sub],
        )
        if row is None:
            raise NotFoundError("no account is linked to this platform user")
        return self.user(row["user_id"])

    def create_lti_user(self, *, issuer: str, sub: str, email: str, name: str, role: str) -> User:
        """A new account for a platform user, linked to (issuer, sub), with no password.

        Raises:
            ValidationError: bad email, name or role.
            ConflictError: the email belongs to another account, or (issuer, sub) is linked.
        """
        email = check.email(email)
        name = check.name("name", name)
        role = check.choice("role", role, LTI_ROLES)
        now = _ts(_now())
        try:
            with self._write() as db:
                cursor = db.execute(
                    "INSERT INTO users (email, name, role, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [email, name, role, NO_PASSWORD, now],
                )
                user_id = int(cursor.lastrowid)
                db.execute(
                    "INSERT INTO lti_identities (issuer, sub, user_id, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    [issuer, sub, user_id, now],
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"an account with email {email} already exists") from None
        return self.user(user_id)

    def update_lti_user(self, user_id: int, *, name: str, email: str | None, role: str) -> User:
        """Follow the platform's latest name, email and role for an account.

        The email is left as it is when another account already has the new one. The role
        only ever rises from student to TA; an instructor stays an instructor.

        Raises:
            NotFoundError: no such user.
        """
        name = check.name("name", name)
        role = check.choice("role", role, LTI_ROLES)
        with self._write() as db:
            current = self._require_user(db, user_id)
            if current["role"] == "student" and role == "ta":
                db.execute("UPDATE users SET role = 'ta' WHERE id = ?", [user_id])
            db.execute(
                "UPDATE users SET name = ?, last_seen_at = ? WHERE id = ?",
                [name, _ts(_now()), user_id],
            )
            if email:
                taken = self._one(
                    db, "SELECT id FROM users WHERE email = ? AND id != ?", [email, user_id]
                )
                if taken is None:
                    db.execute("UPDATE users SET email = ? WHERE id = ?", [email, user_id])
        return self.user(user_id)

    def is_launch_only(self, user_id: int) -> bool:
        """Whether an account was made by a launch and has no password."""
        row = self._one(self._db(), "SELECT password_hash FROM users WHERE id = ?", [user_id])
        return row is not None and row["password_hash"] == NO_PASSWORD

    def request_lti_link(self, issuer: str, sub: str, user_id: int) -> None:
        """Note that (issuer, sub) may be linked to ``user_id`` once its owner signs in."""
        with self._write() as db:
            self._require_user(db, user_id)
            db.execute(
                "INSERT INTO lti_pending_links (issuer, sub, user_id, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (issuer, sub) DO UPDATE SET"
                " user_id = excluded.user_id, created_at = excluded.created_at",
                [issuer, sub, user_id, _ts(_now())],
            )

    def confirm_lti_links(self, user_id: int, max_age_s: float = 30 * 24 * 3600) -> int:
        """Link every pending platform identity of ``user_id``: its owner just proved it.

        Called after a password sign-in. Requests older than ``max_age_s`` are dropped.

        Returns:
            How many identities were linked.
        """
        since = _ts(_now() - timedelta(seconds=max_age_s))
        with self._write() as db:
            db.execute("DELETE FROM lti_pending_links WHERE created_at < ?", [since])
            rows = list(
                db.query("SELECT issuer, sub FROM lti_pending_links WHERE user_id = ?", [user_id])
            )
            for row in rows:
                db.execute(
                    "INSERT OR IGNORE INTO lti_identities (issuer, sub, user_id, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    [row["issuer"], row["sub"], user_id, _ts(_now())],
                )
            db.execute("DELETE FROM lti_pending_links WHERE user_id = ?", [user_id])
        return len(rows)

    # ------------------------------------------------------------------ contexts

    def record_lti_launch(
        self,
        user_id: int,
        *,
        issuer: str,
        deployment_id: str,
        context_id: str,
        title: str,
        label: str,
        role: str,
        ags_lineitem: str | None = None,
        ags_lineitems: str | None = None,
        ags_scopes: list[str] | tuple[str, ...] = (),
        nrps_url: str | None = None,
    ) -> LtiContext:
        """Upsert the launch's context and the user's membership with its service URLs.

        Raises:
            ValidationError: an unknown role, or text over its limit.
        """
        role = check.choice("role", role, LTI_ROLES)
        context_id = check.text("context_id", context_id, check.MAX_NAME, allow_empty=False)
        title = check.text("title", title or "", check.MAX_NAME)
        label = check.text("label", label or "", check.MAX_NAME)
        urls = [
            check.url(n, v or "") or None
            for n, v in (
                ("ags_lineitem", ags_lineitem),
                ("ags_lineitems", ags_lineitems),
                ("nrps_url", nrps_url),
            )
        ]
        scopes = json.dumps([str(s) for s in ags_scopes])
        now = _ts(_now())
        with self._write() as db:
            self._require_user(db, user_id)
            db.execute(
                "INSERT INTO lti_contexts (issuer, deployment_id, context_id, title, label)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (issuer, deployment_id, context_id)"
                " DO UPDATE SET title = excluded.title, label = excluded.label",
                [issuer, deployment_id, context_id, title, label],
            )
            row = self._one(
                db,
                "SELECT * FROM lti_contexts WHERE issuer = ? AND deployment_id = ?"
                " AND context_id = ?",
                [issuer, deployment_id, context_id],
            )
            db.execute(
                "INSERT INTO lti_memberships (user_id, context_pk, role, ags_lineitem,"
                " ags_lineitems, ags_scopes, nrps_url, last_launch_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, context_pk) DO UPDATE SET"
                " role = excluded.role, ags_lineitem = excluded.ags_lineitem,"
                " ags_lineitems = excluded.ags_lineitems, ags_scopes = excluded.ags_scopes,"
                " nrps_url = excluded.nrps_url, last_launch_at = excluded.last_launch_at",
                [user_id, row["id"], role, *urls[:2], scopes, urls[2], now],
            )
        return LtiContext(**row)

    def lti_context(self, context_pk: int) -> LtiContext:
        """One context by its row id.

        Raises:
            NotFoundError: no such context.
        """
        row = self._one(self._db(), "SELECT * FROM lti_contexts WHERE id = ?", [context_pk])
        if row is None:
            raise NotFoundError(f"no LTI context with id {context_pk}")
        return LtiContext(**row)

    def lti_memberships(self, user_id: int) -> list[LtiMembership]:
        """The user's memberships, latest launch first."""
        rows = self._db().query(
            "SELECT * FROM lti_memberships WHERE user_id = ? ORDER BY last_launch_at DESC",
            [user_id],
        )
        return [
            LtiMembership(
                user_id=row["user_id"],
                context_pk=row["context_pk"],
                role=row["role"],
                ags_lineitem=row["ags_lineitem"],
                ags_lineitems=row["ags_lineitems"],
                ags_scopes=tuple(json.loads(row["ags_scopes"] or "[]")),
                nrps_url=row["nrps_url"],
                last_launch_at=_dt(row["last_launch_at"]),
            )
            for row in rows
        ]

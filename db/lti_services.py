"""What the LTI services keep: the score outbox (AGS), the class list (NRPS), TA scoping.

Mixed into ``Store``. The tables of platforms, identities, contexts and memberships belong to
``db/lti.py``; this module only reads them. Scores are queued in the same transaction that
gives them their timestamp, so the timestamps sent for one (student, line item) always
increase, whatever threads queue them; a queued score is never deleted, only marked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from db import validation as check
from db.common import _dt, _now, _ts
from db.errors import NotFoundError, ValidationError

SCORE_KINDS: tuple[str, ...] = ("grade", "submitted")
SCORE_STATES: tuple[str, ...] = ("queued", "sent", "error", "superseded")
# Moodle compares a score's timestamp with the last one in whole seconds, so each new score
# of a (student, line item) is at least a second newer than the one before.
TIMESTAMP_STEP = timedelta(seconds=1)
MAX_ERROR = 1_000  # characters of a platform's error kept for the TA


@dataclass(frozen=True)
class ScoreTarget:
    """Where a student's score goes: one context membership that has an AGS line item.

    Attributes:
        context_pk: the ``lti_contexts`` row.
        lineitem: the line item URL from the student's latest launch in that context.
        sub: the student's LTI user id on that platform (the score's ``userId``).
    """

    context_pk: int
    lineitem: str
    sub: str


@dataclass(frozen=True)
class QueuedScore:
    """One score in the outbox, with where to get a token for it.

    Attributes:
        kind: ``"grade"`` (a released grade) or ``"submitted"`` (an export).
        payload: the score as JSON (its ``timestamp`` is ``timestamp`` below).
        timestamp: the score's timestamp; strictly increasing per (user, line item).
        state: ``"queued"``, ``"sent"``, ``"error"`` (refused; not retried) or
            ``"superseded"`` (a newer score of the same line item replaced it unsent).
        attempts: posts tried so far.
        next_try_at: when a queued score is due.
        token_url: the platform's token URL (``None`` when the platform is gone).
        client_id: the tool's client id on that platform.
    """

    id: int
    user_id: int
    context_pk: int
    lineitem: str
    kind: str
    payload: dict[str, Any]
    timestamp: datetime
    state: str
    attempts: int
    next_try_at: datetime
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime
    token_url: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class ClassContext:
    """A course context whose class list the tool may read (NRPS).

    Attributes:
        context_pk: the ``lti_contexts`` row.
        title: the course's title (or its context id when it has none).
        nrps_url: the context memberships URL from the latest launch that had one.
        token_url: the platform's token URL; ``client_id``: the tool's id there.
    """

    context_pk: int
    title: str
    nrps_url: str
    token_url: str
    client_id: str


@dataclass(frozen=True)
class ClassMember:
    """A member of a context as the platform listed it (NRPS), kept until the next refresh."""

    context_pk: int
    sub: str
    name: str
    email: str
    roles: tuple[str, ...]
    fetched_at: datetime


# A context's platform: the registration with the context's issuer and deployment.
_PLATFORM_JOIN = (
    " LEFT JOIN lti_platforms p ON p.id = ("
    " SELECT min(id) FROM lti_platforms"
    " WHERE issuer = c.issuer AND deployment_id = c.deployment_id)"
)

_SCORE_SELECT = (
    "SELECT s.*, p.token_url, p.client_id FROM lti_scores s"
    " LEFT JOIN lti_contexts c ON c.id = s.context_pk" + _PLATFORM_JOIN
)


class LtiServicesMixin:
    """The score outbox, class lists and staff scoping of the ``Store``.

    Part of ``Store`` (``db/store.py``), which provides ``_db``, ``_read``, ``_write``
    and ``_one``.
    """

    # ------------------------------------------------------------------ scoping

    def visible_student_ids(self, staff_user_id: int) -> set[int] | None:
        """Which students a staff member may see.

        Returns:
            ``None`` for "all students": instructors, and TAs who never launched the tool
            as a TA. Otherwise the ids of the students who share at least one LTI context
            with the TA (an empty set for a user who is not staff).

        Raises:
            NotFoundError: no such user.
        """
        with self._read() as db:
            user = self._one(db, "SELECT role FROM users WHERE id = ?", [staff_user_id])
            if user is None:
                raise NotFoundError(f"no user with id {staff_user_id}")
            if user["role"] == "instructor":
                return None
            if user["role"] != "ta":
                return set()
            contexts = [
                row["context_pk"]
                for row in db.query(
                    "SELECT context_pk FROM lti_memberships WHERE user_id = ? AND role = 'ta'",
                    [staff_user_id],
                )
            ]
            if not contexts:
                return None
            marks = ", ".join("?" for _ in contexts)
            return {
                row["user_id"]
                for row in db.query(
                    "SELECT DISTINCT m.user_id FROM lti_memberships m"
                    " JOIN users u ON u.id = m.user_id"
                    f" WHERE m.role = 'student' AND u.role = 'student' AND m.context_pk IN ({marks})",
                    contexts,
                )
            }

    # ------------------------------------------------------------------ the score outbox

    def lti_score_targets(self, student_id: int) -> list[ScoreTarget]:
        """The line items a student's score goes to: one per context launched with AGS."""
        rows = self._db().query(
            "SELECT m.context_pk, m.ags_lineitem, i.sub FROM lti_memberships m"
            " JOIN lti_contexts c ON c.id = m.context_pk"
            " JOIN lti_identities i ON i.user_id = m.user_id AND i.issuer = c.issuer"
            " WHERE m.user_id = ? AND m.role = 'student'"
            " AND m.ags_lineitem IS NOT NULL AND m.ags_lineitem != ''"
            " ORDER BY m.context_pk",
            [student_id],
        )
        return [ScoreTarget(r["context_pk"], r["ags_lineitem"], r["sub"]) for r in rows]

    def queue_lti_score(
        self,
        user_id: int,
        context_pk: int,
        lineitem: str,
        payload: Mapping[str, Any],
        *,
        kind: str = "grade",
        now: datetime | None = None,
    ) -> QueuedScore:
        """Put a score in the outbox with a timestamp newer than any before it.

        The timestamp is ``now``, or a second after the newest score of the same (user,
        line item) when that is later. Older scores of that pair still waiting are marked
        superseded: the platform would refuse them after this one anyway.

        Args:
            payload: the score without ``timestamp`` (added here).
            kind: ``"grade"`` or ``"submitted"``.
            now: the current time (tests pass their own clock).

        Raises:
            ValidationError: unknown kind, or a line item that is not a URL.
        """
        if kind not in SCORE_KINDS:
            raise ValidationError("kind", f"kind must be one of {', '.join(SCORE_KINDS)}")
        check.text("lineitem", lineitem, check.MAX_URL, allow_empty=False)
        queued_at = now or _now()
        moment = _millis(queued_at)  # AGS timestamps carry milliseconds
        with self._write() as db:
            self._require_user(db, user_id)
            stamp = self._next_timestamp(db, user_id, lineitem, moment)
            body = {**payload, "timestamp": _iso(stamp)}
            db.execute(
                "UPDATE lti_scores SET state = 'superseded'"
                " WHERE user_id = ? AND lineitem = ? AND state = 'queued'",
                [user_id, lineitem],
            )
            cursor = db.execute(
                "INSERT INTO lti_scores (user_id, context_pk, lineitem, kind, payload, timestamp,"
                " state, attempts, next_try_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)",
                [
                    user_id,
                    context_pk,
                    lineitem,
                    kind,
                    json.dumps(body, ensure_ascii=False),
                    _ts(stamp),
                    _ts(moment),
                    # To the microsecond, as the release it follows: cut to milliseconds it
                    # could look older than that release (lti_unqueued_releases).
                    _ts(queued_at),
                ],
            )
            row = self._score_row(db, cursor.lastrowid)
        return row

    def lti_unqueued_releases(self, released_before: datetime | None = None) -> list[int]:
        """Students whose latest released grade has no grade score queued after it, though
        they have a line item (a release the app stopped before queueing, or one made
        before the student first launched with a line item).

        Args:
            released_before: only releases made before this moment (``None``: all).
        """
        rows = self._db().query(
            "SELECT f.student_id FROM feedback f JOIN ("
            " SELECT max(id) AS id FROM feedback WHERE released = 1 GROUP BY student_id"
            ") latest ON latest.id = f.id"
            " WHERE f.grade IS NOT NULL AND EXISTS (SELECT 1 FROM lti_memberships m"
            " WHERE m.user_id = f.student_id AND m.role = 'student'"
            " AND m.ags_lineitem IS NOT NULL AND m.ags_lineitem != '')"
            " AND f.created_at > coalesce((SELECT max(s.created_at) FROM lti_scores s"
            " WHERE s.user_id = f.student_id AND s.kind = 'grade'), '')"
            " AND f.created_at < ? ORDER BY f.student_id",
            [_ts(released_before) if released_before else "9999"],
        )
        return [row["student_id"] for row in rows]

    def restamp_lti_score(self, score_id: int, *, now: datetime | None = None) -> QueuedScore:
        """Give a score a new timestamp, newer than every score of its (user, line item).

        For a score the platform refused as not newer (HTTP 409): sending the same grade
        again with a fresh timestamp is what the TA meant.
        """
        moment = _millis(now or _now())
        with self._write() as db:
            score = self._score_row(db, score_id)
            stamp = self._next_timestamp(db, score.user_id, score.lineitem, moment)
            body = {**score.payload, "timestamp": _iso(stamp)}
            db.execute(
                "UPDATE lti_scores SET payload = ?, timestamp = ? WHERE id = ?",
                [json.dumps(body, ensure_ascii=False), _ts(stamp), score_id],
            )
            return self._score_row(db, score_id)

    def due_lti_scores(self, now: datetime | None = None, limit: int = 50) -> list[QueuedScore]:
        """Queued scores whose next try is due, oldest first."""
        with self._read() as db:
            ids = [
                row["id"]
                for row in db.query(
                    "SELECT id FROM lti_scores WHERE state = 'queued' AND next_try_at <= ?"
                    " ORDER BY id LIMIT ?",
                    [_ts(now or _now()), int(limit)],
                )
            ]
            return [self._score_row(db, score_id) for score_id in ids]

    def next_lti_score_due(self) -> datetime | None:
        """When the earliest queued score is due, or ``None`` when nothing waits."""
        row = self._one(
            self._db(), "SELECT min(next_try_at) AS at FROM lti_scores WHERE state = 'queued'", []
        )
        return _dt(row["at"]) if row else None

    def lti_score_sent(self, score_id: int, *, now: datetime | None = None) -> None:
        """Mark a score as received by the platform."""
        self._mark_score(
            score_id, "state = 'sent', sent_at = ?, last_error = NULL", [_ts(now or _now())]
        )

    def lti_score_retry(self, score_id: int, error: str, next_try_at: datetime) -> None:
        """Count a failed post and keep the score queued until ``next_try_at``."""
        self._mark_score(
            score_id,
            "attempts = attempts + 1, last_error = ?, next_try_at = ?",
            [error[:MAX_ERROR], _ts(next_try_at)],
        )

    def lti_score_refused(self, score_id: int, error: str) -> None:
        """Record that the platform refused a score for good (not retried)."""
        self._mark_score(
            score_id,
            "state = 'error', attempts = attempts + 1, last_error = ?",
            [error[:MAX_ERROR]],
        )

    def lti_score_status(
        self,
        user_ids: Iterable[int] | None = None,
        context_pks: Iterable[int] | None = None,
    ) -> dict[int, QueuedScore]:
        """Where each student's grade stands in Moodle: one score per student, by user id.

        Each course's latest score that was not superseded is its state; of a student's
        courses, the one that most needs a look is shown (refused, then failing, then
        waiting, then sent; the latest of equals).

        Args:
            user_ids: these students only (``None``: all).
            context_pks: these courses only (``None``: all), e.g. a TA's own: a course's
                gradebook is not shown to the TA of another.
        """
        where, params = "", []
        if context_pks is not None:
            pks = sorted(set(context_pks))
            where = f" AND context_pk IN ({', '.join('?' for _ in pks)})"
            params = pks
        rows = [
            self._score(row)
            for row in self._db().query(
                _SCORE_SELECT + " JOIN (SELECT max(id) AS id FROM lti_scores"
                f" WHERE state != 'superseded'{where} GROUP BY user_id, context_pk) latest"
                " ON latest.id = s.id ORDER BY s.id",
                params,
            )
        ]
        wanted = None if user_ids is None else set(user_ids)
        shown: dict[int, QueuedScore] = {}
        for row in rows:  # oldest first: among equals the later one wins
            if wanted is not None and row.user_id not in wanted:
                continue
            if row.user_id not in shown or _concern(row) <= _concern(shown[row.user_id]):
                shown[row.user_id] = row
        return shown

    def lti_scores_for(self, user_id: int) -> list[QueuedScore]:
        """Every score queued for a student, oldest first (for tests and the operator)."""
        with self._read() as db:
            ids = [
                r["id"]
                for r in db.query(
                    "SELECT id FROM lti_scores WHERE user_id = ? ORDER BY id", [user_id]
                )
            ]
            return [self._score_row(db, score_id) for score_id in ids]

    def _next_timestamp(self, db: Any, user_id: int, lineitem: str, moment: datetime) -> datetime:
        last = self._one(
            db,
            "SELECT max(timestamp) AS at FROM lti_scores WHERE user_id = ? AND lineitem = ?",
            [user_id, lineitem],
        )
        previous = _dt(last["at"]) if last else None
        if previous is not None and moment < previous + TIMESTAMP_STEP:
            return previous + TIMESTAMP_STEP
        return moment

    def _mark_score(self, score_id: int, assignments: str, params: Sequence[Any]) -> None:
        with self._write() as db:
            # The assignments are fixed text from this module, never input.
            cursor = db.execute(
                f"UPDATE lti_scores SET {assignments} WHERE id = ?", [*params, score_id]
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"no queued score with id {score_id}")

    def _score_row(self, db: Any, score_id: int | None) -> QueuedScore:
        row = self._one(db, _SCORE_SELECT + " WHERE s.id = ?", [score_id])
        if row is None:
            raise NotFoundError(f"no queued score with id {score_id}")
        return self._score(row)

    @staticmethod
    def _score(row: dict[str, Any]) -> QueuedScore:
        return QueuedScore(
            id=row["id"],
            user_id=row["user_id"],
            context_pk=row["context_pk"],
            lineitem=row["lineitem"],
            kind=row["kind"],
            payload=json.loads(row["payload"]),
            timestamp=_dt(row["timestamp"]),
            state=row["state"],
            attempts=row["attempts"],
            next_try_at=_dt(row["next_try_at"]),
            last_error=row["last_error"],
            sent_at=_dt(row["sent_at"]),
            created_at=_dt(row["created_at"]),
            token_url=row["token_url"],
            client_id=row["client_id"],
        )

    # ------------------------------------------------------------------ the class list

    def lti_staff_contexts(self, staff_user_id: int) -> list[int]:
        """The contexts a staff member works in: a TA's own, or all for everyone else."""
        visible = self.visible_student_ids(staff_user_id)
        with self._read() as db:
            if visible is None:
                return [r["id"] for r in db.query("SELECT id FROM lti_contexts ORDER BY id")]
            return [
                r["context_pk"]
                for r in db.query(
                    "SELECT context_pk FROM lti_memberships WHERE user_id = ? AND role = 'ta'"
                    " ORDER BY context_pk",
                    [staff_user_id],
                )
            ]

    def lti_class_contexts(self, staff_user_id: int) -> list[ClassContext]:
        """The contexts whose class list a staff member may refresh (with an NRPS URL).

        A TA's own contexts; every context for an instructor or a TA without any.
        """
        contexts = self.lti_staff_contexts(staff_user_id)
        with self._read() as db:
            out = []
            for pk in contexts:
                row = self._one(
                    db,
                    "SELECT c.id, coalesce(nullif(c.title, ''), c.context_id) AS title,"
                    " p.token_url, p.client_id, ("
                    " SELECT nrps_url FROM lti_memberships WHERE context_pk = c.id"
                    " AND nrps_url IS NOT NULL AND nrps_url != ''"
                    " ORDER BY last_launch_at DESC LIMIT 1) AS nrps_url"
                    " FROM lti_contexts c" + _PLATFORM_JOIN + " WHERE c.id = ?",
                    [pk],
                )
                if row and row["nrps_url"] and row["token_url"]:
                    out.append(
                        ClassContext(
                            row["id"],
                            row["title"],
                            row["nrps_url"],
                            row["token_url"],
                            row["client_id"],
                        )
                    )
        return out

    def replace_lti_roster(
        self,
        context_pk: int,
        members: Iterable[tuple[str, str, str, Sequence[str]]],
        *,
        now: datetime | None = None,
    ) -> int:
        """Replace a context's cached class list with what the platform listed.

        Args:
            members: (sub, name, email, roles) per member.

        Returns:
            How many members were stored.
        """
        stamp = _ts(now or _now())
        rows = [
            # The platform's data is shown, not trusted: cut to the usual limits.
            [
                context_pk,
                str(sub)[: check.MAX_NAME],
                (name or "")[: check.MAX_NAME],
                (email or "")[: check.MAX_EMAIL],
                json.dumps([str(role) for role in roles]),
                stamp,
            ]
            for sub, name, email, roles in members
        ]
        with self._write() as db:
            db.execute("DELETE FROM lti_roster WHERE context_pk = ?", [context_pk])
            for row in rows:
                db.execute(
                    "INSERT OR REPLACE INTO lti_roster"
                    " (context_pk, sub, name, email, roles, fetched_at) VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
        return len(rows)

    def lti_not_started(self, context_pks: Iterable[int]) -> list[ClassMember]:
        """Listed members of these contexts who never opened the workbook, by name.

        A member has opened it when their (issuer, sub) has an identity here, or when an
        account has their email.
        """
        pks = sorted(set(context_pks))
        if not pks:
            return []
        marks = ", ".join("?" for _ in pks)
        rows = self._db().query(
            "SELECT r.* FROM lti_roster r JOIN lti_contexts c ON c.id = r.context_pk"
            f" WHERE r.context_pk IN ({marks}) AND NOT EXISTS ("
            " SELECT 1 FROM lti_identities i WHERE i.issuer = c.issuer AND i.sub = r.sub)"
            # Nor one who signed up with a password under the same email.
            " AND NOT EXISTS (SELECT 1 FROM users u WHERE r.email != '' AND u.email = r.email)"
            " ORDER BY r.name COLLATE NOCASE, r.sub",
            pks,
        )
        return [
            ClassMember(
                r["context_pk"],
                r["sub"],
                r["name"],
                r["email"],
                tuple(json.loads(r["roles"])),
                _dt(r["fetched_at"]),
            )
            for r in rows
        ]

    def lti_roster_fetched_at(self, context_pks: Iterable[int]) -> datetime | None:
        """When the oldest of these contexts' class lists was fetched (``None``: never)."""
        pks = sorted(set(context_pks))
        if not pks:
            return None
        marks = ", ".join("?" for _ in pks)
        row = self._one(
            self._db(),
            f"SELECT min(fetched_at) AS at FROM lti_roster WHERE context_pk IN ({marks})",
            pks,
        )
        return _dt(row["at"]) if row else None


def _concern(score: QueuedScore) -> int:
    """How much a score needs a look: 0 refused, 1 failing, 2 waiting, 3 sent."""
    if score.state == "error":
        return 0
    if score.state == "queued":
        return 1 if score.attempts else 2
    return 3


def _millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _iso(moment: datetime) -> str:
    """ISO 8601 with milliseconds and the UTC offset, as AGS scores carry it."""
    return _dt(_ts(moment)).isoformat(timespec="milliseconds")

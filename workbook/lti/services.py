"""What the TA pages do when the workbook is an LTI tool: scoped to sections, synced to Moodle.

``LtiServices`` is reached from the facade as ``Workbook.lti``. Every TA path goes through it
so that a TA who launched from Moodle sees, reviews, grades and exports only the students of
their own contexts (``Store.visible_student_ids``, checked here on the server); instructors,
and TAs who never launched as TAs, see every student as before. Releasing feedback queues
the grade for Moodle's gradebook (AGS) and a student's export queues "submitted"; the outbox
thread posts them (``workbook.lti.outbox``). The class list (NRPS) is refreshed on demand.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from workbook.lti.ags import (
    NRPS_SCOPE,
    AccessTokens,
    LtiServiceError,
    score_payload,
)
from workbook.lti.outbox import CATCH_UP_S, Outbox

if TYPE_CHECKING:
    from db import SigningKey

__all__ = ["ClassListRefresh", "GradeNotQueued", "LtiServices", "StaffRoster", "score_words"]

log = logging.getLogger(__name__)

# The refusal a TA gets for a student outside their sections: the same words as for a student
# who does not exist, so a TA cannot learn who is enrolled in another section.
NOT_YOURS = "That student does not exist (any more)."
# The outbox's periodic catch-up only queues releases at least this old (see _catch_up).
SETTLED_S = 60.0


class GradeNotQueued(LtiServiceError):
    """Feedback was released, but its grade could not be queued for Moodle just now.

    The release stands (the student sees it); the outbox's periodic catch-up queues every
    released grade that has no score yet, so the grade still reaches Moodle.

    Attributes:
        feedback: the released feedback, as ``review.release_feedback`` returned it.
    """

    def __init__(self, message: str, *, feedback: Any) -> None:
        super().__init__(message)
        self.feedback = feedback


@dataclass(frozen=True)
class StaffRoster:
    """What the TA roster shows.

    Attributes:
        records: one record per visible student (``review.roster_records``), each with a
            ``"moodle"`` text: where the student's grade stands in Moodle ("" when none).
        not_started: (name, email) of students Moodle lists in the TA's courses who never
            opened the workbook.
        class_list_at: when the oldest of those class lists was fetched (``None``: never).
        can_refresh: some course of the TA's shares its class list (NRPS).
    """

    records: list[dict[str, Any]]
    not_started: list[tuple[str, str]] = field(default_factory=list)
    class_list_at: datetime | None = None
    can_refresh: bool = False


@dataclass(frozen=True)
class ClassListRefresh:
    """What one refresh of the class lists did.

    Attributes:
        courses: courses whose list was read.
        students: active students listed in them.
        problems: one sentence per course that could not be read.
    """

    courses: int
    students: int
    problems: list[str]


class LtiServices:
    """The TA paths, scoped to sections, and the LTI services behind them.

    Args:
        workbook: the app's ``Workbook`` (for its store and settings).
        signer: the tool's current signing key; by default the tool's own keys.
        autostart: start the outbox's thread when a score is queued (tests deliver by
            hand with ``outbox.deliver_due``).
    """

    def __init__(
        self,
        workbook: Any,
        signer: Callable[[], SigningKey] | None = None,
        *,
        autostart: bool = True,
    ) -> None:
        self._wb = workbook
        self._signer = signer
        self._autostart = autostart
        self._lock = threading.Lock()
        self._outbox: Outbox | None = None
        self._tokens: AccessTokens | None = None
        self._started = False
        self.settled_s = SETTLED_S

    @property
    def store(self) -> Any:
        """The app's ``db.Store``."""
        return self._wb.store

    @property
    def outbox(self) -> Outbox:
        """The score outbox (built on first use; its thread starts with ``start``)."""
        return self._parts()[0]

    def _parts(self) -> tuple[Outbox, AccessTokens]:
        with self._lock:
            if self._outbox is None or self._tokens is None:
                self._tokens = AccessTokens(self._signer or self._tool_key)
                self._outbox = Outbox(self.store, self._tokens, catch_up=self._catch_up)
            return self._outbox, self._tokens

    def start(self) -> None:
        """Start posting queued scores in the background (again after a restart); once.

        The thread starts first, so that scores left queued by an earlier run are posted
        even if the catch-up fails. Then a grade released just before the app stopped,
        before its score was queued, is queued now (``queue_missed_grades``). Later calls
        do nothing: two catch-ups at once would queue such a grade twice.
        """
        with self._lock:
            if self._started:
                return
            self._started = True
        outbox = self.outbox
        outbox.start()
        self.queue_missed_grades()
        outbox.wake()

    def _catch_up(self) -> None:
        # The outbox's periodic round: a release the student launched with a line item
        # after (or a linked password account). Releases of the last minute are left to the
        # page that is queueing them now; found here too, they would be sent twice.
        self.queue_missed_grades(settled_s=self.settled_s)

    def queue_missed_grades(self, *, settled_s: float = 0.0) -> int:
        """Queue the released grades that have a line item but no score queued since.

        A student whose grade cannot be queued is logged and skipped: the others still go.

        Args:
            settled_s: only releases at least this many seconds old.

        Returns:
            How many students' grades were queued.
        """
        from db import DbError
        from workbook.errors import WorkbookError

        queued = 0
        before = datetime.now(UTC) - timedelta(seconds=settled_s)
        for student_id in self.store.lti_unqueued_releases(before):
            try:
                self._queue_grade(student_id)
            except (DbError, WorkbookError) as exc:
                log.error("the released grade of student %s was not queued: %s", student_id, exc)
            else:
                queued += 1
        return queued

    def _tool_key(self) -> SigningKey:
        from workbook.lti.keys import tool_keys

        return tool_keys(self.store).current()

    # --- scoping ------------------------------------------------------------------------
    def visible(self, staff: Any) -> set[int] | None:
        """The students ``staff`` may see (``None``: all). See ``Store.visible_student_ids``."""
        return self.store.visible_student_ids(staff.id)

    def _check(self, staff: Any, student_id: int) -> None:
        from workbook.review import ReviewError

        if staff.role not in ("ta", "instructor"):
            raise ReviewError("Only course staff review students' work.")
        visible = self.visible(staff)
        if visible is not None and student_id not in visible:
            raise ReviewError(NOT_YOURS)

    # --- the TA paths -------------------------------------------------------------------
    def roster(self, staff: Any) -> StaffRoster:
        """The roster of the students ``staff`` may see, with Moodle's side of each."""
        from workbook.review import roster_records

        visible = self.visible(staff)
        rows = [r for r in self.store.roster() if visible is None or r.user_id in visible]
        records = roster_records(rows)
        contexts = self.store.lti_staff_contexts(staff.id)
        # Only the gradebooks of staff's own courses: another course's is not theirs to see.
        status = self.store.lti_score_status([r["user_id"] for r in records], contexts)
        for record in records:
            score = status.get(record["user_id"])
            record["moodle"] = score_words(score) if score is not None else ""
        seen: set[str] = set()
        not_started = []
        for member in self.store.lti_not_started(contexts):
            key = member.email.lower() or member.sub
            if key not in seen:
                seen.add(key)
                not_started.append((member.name, member.email))
        return StaffRoster(
            records=records,
            not_started=not_started,
            class_list_at=self.store.lti_roster_fetched_at(contexts),
            can_refresh=bool(self.store.lti_class_contexts(staff.id)),
        )

    def student_review(self, staff: Any, student_id: int) -> Any:
        """One student's review (``review.student_review``), refused outside the sections.

        Raises:
            ReviewError: no such student, or not one of ``staff``'s students.
        """
        from workbook.review import student_review

        self._check(staff, student_id)
        return student_review(self.store, student_id, model_name=self._wb.settings.model_name)

    def save_feedback_draft(self, staff: Any, student_id: int, **form: Any) -> Any:
        """Save a feedback draft (``review.save_feedback_draft``) for one of staff's students."""
        from workbook.review import save_feedback_draft

        self._check(staff, student_id)
        return save_feedback_draft(self.store, student_id, staff.id, **form)

    def release_feedback(self, staff: Any, student_id: int, **form: Any) -> Any:
        """Release feedback (``review.release_feedback``) and queue the grade for Moodle.

        The grade goes to every line item the student launched with; posting happens in the
        background, so this returns as soon as the release is saved.

        Raises:
            ReviewError: as ``review.release_feedback``, or not one of staff's students.
            GradeNotQueued: released, but the grade was not queued for Moodle now (the
                periodic catch-up queues it).
        """
        from db import DbError
        from workbook.errors import WorkbookError
        from workbook.review import release_feedback

        self._check(staff, student_id)
        feedback = release_feedback(self.store, student_id, staff.id, **form)
        try:
            self._queue_grade(student_id)
        except (DbError, WorkbookError) as exc:
            # The release is saved: telling the TA it failed would make them release again
            # for nothing. The outbox's catch-up finds released grades without a score.
            log.error("the released grade of student %s was not queued: %s", student_id, exc)
            # A catch-up round every CATCH_UP_S takes releases at least settled_s old.
            minutes = math.ceil((CATCH_UP_S + self.settled_s) / 60)
            raise GradeNotQueued(
                "Released: the student sees this feedback. The grade could not be queued for "
                f"Moodle just now; the workbook sends it by itself within about {minutes} "
                "minutes (nothing to do here).",
                feedback=feedback,
            ) from exc
        return feedback

    def worksheet_grades(self, staff: Any) -> dict[str, Any]:
        """``review.worksheet_grades`` for the students ``staff`` may see."""
        from workbook.review import worksheet_grades

        return worksheet_grades(self.store, self.visible(staff))

    def responses_csv(self, staff: Any) -> bytes:
        """``review.responses_csv`` for the students ``staff`` may see."""
        from workbook.review import responses_csv

        return responses_csv(self.store, self.visible(staff))

    def moodle_status(self, staff: Any, student_id: int) -> str:
        """Where one student's grade stands in Moodle, in words ("" when nothing was sent)."""
        self._check(staff, student_id)
        contexts = self.store.lti_staff_contexts(staff.id)
        score = self.store.lti_score_status([student_id], contexts).get(student_id)
        return score_words(score) if score is not None else ""

    # --- scores -------------------------------------------------------------------------
    def _queue_grade(self, student_id: int) -> int:
        from workbook.review import (
            ReviewError,
            feedback_comment_text,
            feedback_items,
            grade_score,
            released_entry,
        )

        targets = self.store.lti_score_targets(student_id)
        found = released_entry(self.store, student_id) if targets else None
        if found is None:
            return 0
        entry, feedback = found
        try:
            given, possible = grade_score(entry.label)
        except ReviewError:  # a number written by something else: not ours to convert
            log.warning(
                "grade %r of student %s is not on the scale; not sent", entry.label, student_id
            )
            return 0
        items = feedback_items(self.store.tutorial_log(student_id).path)
        comment = feedback_comment_text(feedback.comment, feedback.item_comments, items)
        for target in targets:
            payload = score_payload(
                user_id=target.sub,
                activity="Completed",
                grading="FullyGraded",
                score_given=given,
                score_maximum=possible,
                comment=comment,
            )
            self._queue(student_id, target, payload, kind="grade")
        return len(targets)

    def record_export(self, student_id: int, file_name: str, sha256: str) -> Any:
        """Record a student's export, and tell Moodle the homework was handed in.

        A student whose feedback was released is not sent "submitted": that would take the
        grade out of Moodle's gradebook until the TA released again.

        Raises:
            db.DbError: the export could not be recorded.
        """
        record = self.store.record_export(student_id, file_name, sha256)
        targets = self.store.lti_score_targets(student_id)
        if targets and self._wb.released_feedback(student_id) is None:
            for target in targets:
                payload = score_payload(
                    user_id=target.sub, activity="Submitted", grading="PendingManual"
                )
                self._queue(student_id, target, payload, kind="submitted")
        return record

    def _queue(
        self, student_id: int, target: Any, payload: Mapping[str, Any], *, kind: str
    ) -> None:
        outbox = self.outbox
        self.store.queue_lti_score(
            student_id, target.context_pk, target.lineitem, payload, kind=kind, now=outbox.clock()
        )
        if self._autostart:
            outbox.start()
        outbox.wake()

    # --- the class list -----------------------------------------------------------------
    def refresh_class_list(self, staff: Any) -> ClassListRefresh:
        """Read the class list of each of staff's courses from Moodle (NRPS), now.

        Raises:
            LtiServiceError: no course of staff's shares its class list.
        """
        from workbook.lti.nrps import fetch_members

        contexts = self.store.lti_class_contexts(staff.id)
        if not contexts:
            raise LtiServiceError(
                "No course has shared its class list with the workbook yet. Launch the "
                "workbook once from the Moodle course, with the tool's roster sharing "
                "(Names and Role Provisioning) turned on."
            )
        tokens = self._parts()[1]
        students = 0
        problems = []
        for context in contexts:
            try:
                token = tokens.token(context.token_url, context.client_id, NRPS_SCOPE)
                members = [m for m in fetch_members(context.nrps_url, token) if m.is_active_student]
            except LtiServiceError as exc:
                if getattr(exc, "status", None) == 401:  # a token the platform dropped
                    tokens.forget(context.token_url, context.client_id, NRPS_SCOPE)
                problems.append(f"{context.title}: {exc}")
                continue
            self.store.replace_lti_roster(
                context.context_pk, [(m.sub, m.name, m.email, m.roles) for m in members]
            )
            students += len(members)
        return ClassListRefresh(len(contexts) - len(problems), students, problems)


def score_words(score: Any) -> str:
    """Where a queued score stands, as the TA reads it on the roster."""
    what = "Grade" if score.kind == "grade" else "Hand-in"
    if score.state == "sent":
        return f"{what} sent to Moodle at {score.sent_at:%Y-%m-%d %H:%M} UTC"
    if score.state == "error":
        return f"{what} not accepted by Moodle: {score.last_error}"
    if score.attempts == 0:
        return f"{what} waiting to be sent to Moodle"
    return (
        f"{what} not in Moodle yet ({score.attempts} failed tries; next at "
        f"{score.next_try_at:%H:%M} UTC): {score.last_error}"
    )

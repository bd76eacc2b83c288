"""The score outbox: grades wait in SQLite until the platform has them.

A TA's release only writes a row (``Store.queue_lti_score``) and wakes the outbox's thread;
the page never waits for Moodle. The thread posts every due score. What becomes of a post:

- 2xx: sent (the roster shows when);
- no answer, 5xx, 401, 408, 429, a token that could not be had: stays queued, tried again
  after an exponential back-off (``BASE_DELAY_S`` doubling up to ``MAX_DELAY_S``), for ever:
  a grade is never dropped because Moodle was down;
- 409 (the platform holds a score at least as new): the score is stamped anew, newer than
  any sent, and posted once more at once; a second 409 is an error for the TA;
- any other 4xx (400 for a user who cannot be graded, 403, 404 ...), a redirect, or a line
  item address that is not a URL: an error the TA sees; not retried, since the same request
  would be refused again. Releasing again queues anew;
- a fault of the workbook's own while sending one score: logged, kept queued with the reason
  and tried again after the back-off; the other scores of the round still go.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from workbook.lti.ags import (
    SCORE_SCOPE,
    AccessTokens,
    PlatformRefused,
    PlatformUnavailable,
    post_score,
)

__all__ = ["BASE_DELAY_S", "MAX_DELAY_S", "Outbox", "backoff_s"]

log = logging.getLogger(__name__)

BASE_DELAY_S = 30.0
MAX_DELAY_S = 3600.0
# How often the thread looks for due scores when nothing wakes it earlier.
POLL_S = 30.0
# How often the thread runs its catch-up (released grades with no score queued).
CATCH_UP_S = 300.0


def backoff_s(attempts: int, *, base: float = BASE_DELAY_S, cap: float = MAX_DELAY_S) -> float:
    """Seconds to wait after the ``attempts``-th failed post: base, 2 x base, ... up to cap."""
    # The exponent is bounded: a score retried for weeks must not overflow a float.
    return min(cap, base * 2.0 ** min(max(0, attempts - 1), 60))


class Outbox:
    """Posts queued scores from a background thread, and after each failure later.

    Args:
        store: the ``db.Store`` holding the outbox.
        tokens: access tokens for the platforms.
        clock: the current time (tests pass their own).
        base_delay_s / max_delay_s: the back-off after a failure (see ``backoff_s``).
        poll_s: the thread's longest sleep.
        catch_up: queues what should be queued but is not (``LtiServices``: a grade
            released before the student had a line item); the thread calls it every
            ``catch_up_s`` seconds, the first time ``catch_up_s`` after it starts.
    """

    def __init__(
        self,
        store: Any,
        tokens: AccessTokens,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        base_delay_s: float = BASE_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        poll_s: float = POLL_S,
        catch_up: Callable[[], object] | None = None,
        catch_up_s: float = CATCH_UP_S,
    ) -> None:
        self.store = store
        self.catch_up = catch_up
        self.catch_up_s = catch_up_s
        self._caught_up_at = 0.0
        self.tokens = tokens
        self.clock = clock
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # One delivery round at a time: the thread's and a test's never overlap.
        self._round = threading.Lock()

    # --- the thread ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the background thread (once; it ends with the process, or ``stop``)."""
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="lti-outbox", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for due scores now (a score was just queued)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current round (tests)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self._caught_up_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.catch_up and time.monotonic() - self._caught_up_at >= self.catch_up_s:
                    self._caught_up_at = time.monotonic()
                    self.catch_up()
                self.deliver_due()
                sleep = self._sleep_s()
            except Exception:  # noqa: BLE001 - the thread must outlive any one bad round
                log.exception("the LTI score outbox failed a round; it tries again")
                sleep = self.poll_s
            self._wake.wait(sleep)
            self._wake.clear()

    def _sleep_s(self) -> float:
        due = self.store.next_lti_score_due()
        if due is None:
            return self.poll_s
        return min(self.poll_s, max(0.05, (due - self.clock()).total_seconds()))

    # --- one round ----------------------------------------------------------------------
    def deliver_due(self) -> int:
        """Post every score that is due now.

        Returns:
            How many were received by their platform in this round.
        """
        sent = 0
        with self._round:
            for score in self.store.due_lti_scores(self.clock()):
                sent += self._deliver(score)
        return sent

    def _deliver(self, score: Any) -> int:
        try:
            return self._deliver_one(score)
        except Exception as exc:  # noqa: BLE001 - one score's fault must not hold up the rest
            # Logged with its traceback for the operator, and kept queued with the reason
            # the TA reads, instead of ending the round for every score after this one.
            log.exception("score %s could not be sent", score.id)
            delay = backoff_s(score.attempts + 1, base=self.base_delay_s, cap=self.max_delay_s)
            self.store.lti_score_retry(
                score.id,
                f"The workbook failed while sending it ({type(exc).__name__}: {exc}); "
                "the server's log has the details.",
                self.clock() + timedelta(seconds=delay),
            )
            return 0

    def _deliver_one(self, score: Any) -> int:
        if not score.token_url:
            self.store.lti_score_refused(
                score.id,
                "The Moodle site of this course is no longer registered with the workbook; "
                "ask the instructor to register it again, then release the grade again.",
            )
            return 0
        try:
            self._post(score)
        except PlatformRefused as exc:
            log.warning("score %s refused by %s: %s", score.id, score.lineitem, exc)
            self.store.lti_score_refused(score.id, str(exc))
            return 0
        except PlatformUnavailable as exc:
            delay = backoff_s(score.attempts + 1, base=self.base_delay_s, cap=self.max_delay_s)
            log.info("score %s not delivered (%s); next try in %.0f s", score.id, exc, delay)
            self.store.lti_score_retry(score.id, str(exc), self.clock() + timedelta(seconds=delay))
            return 0
        self.store.lti_score_sent(score.id, now=self.clock())
        return 1

    def _post(self, score: Any) -> None:
        """Post one score; after a 409 it is stamped anew, after a 401 a new token is got,
        each once, within this round."""
        restamped = refreshed = False
        while True:
            token = self._token(score)
            try:
                post_score(score.lineitem, token, score.payload)
                return
            except PlatformRefused as exc:
                if exc.status != 409:
                    raise
                if restamped:
                    raise PlatformRefused(
                        "Moodle already holds a newer grade for this student (HTTP 409, "
                        "twice); release the grade again if it should replace that one.",
                        status=409,
                    ) from exc
                restamped = True
                # Stamped anew, strictly newer than anything sent for this line item.
                score = self.store.restamp_lti_score(score.id, now=self.clock())
            except PlatformUnavailable as exc:
                if exc.status != 401:
                    raise
                # The token expired early or was revoked: a new one, once.
                self.tokens.forget(score.token_url, score.client_id, SCORE_SCOPE)
                if refreshed:
                    raise
                refreshed = True

    def _token(self, score: Any) -> str:
        try:
            return self.tokens.token(score.token_url, score.client_id, SCORE_SCOPE)
        except PlatformRefused as exc:
            # Usually a registration the admin can still fix (key set URL, services): keep
            # the grade queued and show why it waits.
            raise PlatformUnavailable(str(exc), status=exc.status) from exc

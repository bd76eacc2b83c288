"""Admission to the machine's cores: students' cells and checks run a few at a time, in order.

Every cell a student runs, and the check after it, is heavy CPU work (a forward pass of the
model). When more of it arrives than the machine has cores, running it all at once makes
every student wait longer (the runs spin against each other and against the app), so a
:class:`RunQueue` lets at most ``slots`` runs go at once and keeps the others waiting in the
order they arrived. A waiting student sees their place in line (``position``).

Starting a kernel is such work too (Python, ipykernel, torch's imports): :class:`StartSlots`
lets at most one start per core go at once, a student's before any spare's.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["RunQueue", "RunState", "StartSlots", "Ticket"]


@dataclass
class Ticket:
    """One request for a slot.

    Attributes:
        user_id: whose run it is.
        number: arrival order, unique per queue.
        since: ``time.time()`` when it entered its present state (queued, then running).
        running: whether it holds a slot.
    """

    user_id: str
    number: int
    since: float
    running: bool = False


@dataclass(frozen=True)
class RunState:
    """Where a student's run stands, for the page's running indicator (``Workbook.run_state``).

    Attributes:
        state: ``"idle"``, ``"queued"`` (waiting for a free slot), ``"waiting_for_kernel"``
            (every kernel that memory allows is taken) or ``"running"``.
        position: 0 when running, k >= 1 when k-th in line (either line), None when idle.
        since: ``time.time()`` when it entered this state, None when idle.
    """

    state: Literal["idle", "queued", "waiting_for_kernel", "running"]
    position: int | None
    since: float | None


class RunQueue:
    """At most ``slots`` runs at once; the rest wait first come, first served.

    Args:
        slots: how many runs may go at once (at least 1).

    Thread-safe; one queue is shared by every session of the app.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a run queue needs at least one slot, got {slots}")
        self.slots = slots
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._numbers = itertools.count(1)

    @contextmanager
    def slot(self, user_id: str | int) -> Iterator[Ticket]:
        """Wait for a free slot (in arrival order), hold it for the ``with`` block.

        Yields:
            The ticket, whose ``since`` is when the run was let in.
        """
        ticket = Ticket(str(user_id), next(self._numbers), time.time())
        with self._cond:
            self._waiting.append(ticket)
            # Only the head of the line may take a slot, so a late arrival never
            # overtakes someone who has waited longer.
            while not (self._waiting[0] is ticket and len(self._running) < self.slots):
                self._cond.wait()
            self._waiting.popleft()
            ticket.running = True
            ticket.since = time.time()
            self._running.append(ticket)
            # The next in line may also fit (several slots freed at once).
            self._cond.notify_all()
        try:
            yield ticket
        finally:
            with self._cond:
                self._running.remove(ticket)
                self._cond.notify_all()

    def standing(self, user_id: str | int) -> tuple[Ticket | None, int | None]:
        """Where the student stands, read at one moment: a copy of their ticket, and its place.

        Returns:
            The ticket (the running one first; a copy, so it does not change afterwards)
            and 0 when it runs, k >= 1 when k-th in line; ``(None, None)`` when not queued.
        """
        user_id = str(user_id)
        with self._cond:
            for ticket in self._running:
                if ticket.user_id == user_id:
                    return replace(ticket), 0
            for place, ticket in enumerate(self._waiting, start=1):
                if ticket.user_id == user_id:
                    return replace(ticket), place
            return None, None

    def position(self, user_id: str | int) -> int | None:
        """0 when the student's run is running, k >= 1 when k-th in line, None otherwise."""
        return self.standing(user_id)[1]

    def ticket(self, user_id: str | int) -> Ticket | None:
        """The student's ticket (the running one first), or None when not queued."""
        user_id = str(user_id)
        with self._cond:
            for ticket in itertools.chain(self._running, self._waiting):
                if ticket.user_id == user_id:
                    return ticket
            return None

    def running(self) -> int:
        """How many runs hold a slot right now."""
        with self._cond:
            return len(self._running)

    def waiting(self) -> int:
        """How many runs wait for a slot right now."""
        with self._cond:
            return len(self._waiting)


class StartSlots:
    """At most ``slots`` kernel starts at once; a student's start goes before a spare's.

    A spare only takes a free slot while no student's start waits for one, so when a class
    arrives the spares never hold up the students they are meant to speed up.

    Args:
        slots: starts at once (at least 1; the app passes one per core).
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"kernel starts need at least one slot, got {slots}")
        self.slots = slots
        self._cond = threading.Condition()
        self._free = slots
        self._students_waiting = 0

    @contextmanager
    def _held(self, student: bool) -> Iterator[None]:
        with self._cond:
            self._students_waiting += student
            try:
                while not self._free or (not student and self._students_waiting):
                    self._cond.wait()
            finally:
                self._students_waiting -= student
            self._free -= 1
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()

    def student(self) -> AbstractContextManager[None]:
        """Hold a slot for a student's kernel start (waits for a free one)."""
        return self._held(True)

    def spare(self) -> AbstractContextManager[None]:
        """Hold a slot for a spare's start: only once no student's start is waiting."""
        return self._held(False)

    def in_use(self) -> int:
        """Starts going on now."""
        with self._cond:
            return self.slots - self._free

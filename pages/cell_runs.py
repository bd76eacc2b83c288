"""Cell runs in the background, one at a time per student, so the page can show progress.

A run of the real model takes from a second to over a minute. Running it inside a widget
callback would freeze the page with only Streamlit's corner "Running…" as a sign of life.
Instead the page starts a :class:`Job` on a thread and polls it, drawing at the cell how
long it has run and its place in the server's queue. A student has at most one job at a
time, whichever tab started it: a second Run while one is going is refused with a message.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from workbook import CellRun, RunState, Workbook, WorkbookError

_ids = itertools.count(1)


@dataclass
class Job:
    """One Run (one cell) or Run all above (several cells, in order) of one student.

    Attributes:
        id: unique in this process; a session remembers the last job it has shown.
        user_id: the student.
        step_ids: the cells to run, in order.
        started: ``time.time()`` when the job was started.
        current: the cell running now (``None`` before the first and after the last).
        runs: the finished runs so far.
        error: a plain-words message when a run could not happen at all.
    """

    id: int
    user_id: int
    step_ids: list[str]
    started: float = field(default_factory=time.time)
    current: str | None = None
    runs: list[CellRun] = field(default_factory=list)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def alive(self) -> bool:
        return not self.done.is_set()


class Jobs:
    """Every student's latest job (shared by all sessions of the app process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[int, Job] = {}

    def latest(self, user_id: int) -> Job | None:
        """The student's running job, else their last finished one, else ``None``."""
        with self._lock:
            return self._latest.get(user_id)

    def start(
        self,
        wb: Workbook,
        user_id: int,
        step_ids: list[str],
        code: str | None = None,
    ) -> Job | None:
        """Start running ``step_ids`` for the student, unless a job of theirs still runs.

        Args:
            wb: the workbook that runs the cells.
            user_id: the student.
            step_ids: the cells to run in order; a run-all stops at the first failure.
            code: the text to run for the *last* cell (``None``: its saved code).

        Returns:
            The new job, or ``None`` when one is already running for this student.
        """
        with self._lock:
            previous = self._latest.get(user_id)
            if previous is not None and previous.alive:
                return None
            job = Job(id=next(_ids), user_id=user_id, step_ids=list(step_ids))
            self._latest[user_id] = job
        threading.Thread(
            target=_work, args=(wb, job, code), name=f"cell-run-{user_id}", daemon=True
        ).start()
        return job


def _work(wb: Workbook, job: Job, code: str | None) -> None:
    try:
        for index, step_id in enumerate(job.step_ids):
            job.current = step_id
            last = index == len(job.step_ids) - 1
            run = wb.run_step(job.user_id, step_id, code if last else None)
            job.runs.append(run)
            if run.result.status != "ok":
                break  # as Jupyter's "run all" does
    except WorkbookError as exc:
        job.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a thread must not die silently; shown at the cell
        job.error = f"The run failed on the server ({type(exc).__name__}: {exc}). Try again."
    finally:
        job.current = None
        job.done.set()


def describe(
    job: Job,
    state: RunState,
    titles: dict[str, str],
    notes: dict[str, str],
    now: float | None = None,
) -> tuple[str, str]:
    """Which cell a job is at, and the words shown there while it goes on.

    Args:
        job: the running job.
        state: ``Workbook.run_state`` of the job's student.
        titles: step id -> title (for "Run all above" progress).
        notes: step id -> what a long given cell is doing while it runs.
        now: the current ``time.time()`` (tests pass one).

    Returns:
        (step id, Markdown text).
    """
    now = time.time() if now is None else now
    step_id = job.current or job.step_ids[min(len(job.runs), len(job.step_ids) - 1)]
    since = state.since or job.started
    if state.state == "queued":
        place = _place(state)
        text = (
            f"⏳ Waiting for a free slot: **{place} in line** (the server is busy)"
            f" · {now - since:.0f} s"
        )
    elif state.state == "waiting_for_kernel":
        place = _place(state)
        text = (
            f"⏳ Waiting for a kernel: **{place} in line**. Every kernel this server has "
            "memory for is in use; yours starts as soon as one is free"
            f" · {now - since:.0f} s"
        )
    else:
        text = f"⏳ **Running** · {now - since:.0f} s"
        if step_id in notes:
            text += f" · {notes[step_id]}"
    if len(job.step_ids) > 1:
        index = job.step_ids.index(step_id) + 1
        text += f"  \n_Run all above: cell {index} of {len(job.step_ids)} ({titles[step_id]})_"
    return step_id, text


def spoken(job: Job, state: RunState, titles: dict[str, str]) -> tuple[str, str]:
    """What a screen reader is told about a running job, and an id for that message.

    Unlike :func:`describe`'s text, which counts the seconds, this changes only when the
    job moves to another cell or place in line, so each change is read out once.

    Returns:
        (sentence, id): the id is new for each job, cell and state.
    """
    step_id = job.current or job.step_ids[min(len(job.runs), len(job.step_ids) - 1)]
    title = titles.get(step_id, "A cell")
    if state.state == "queued":
        sentence = f"{title} is waiting for a free slot, {_place(state)} in line."
    elif state.state == "waiting_for_kernel":
        sentence = f"{title} is waiting for a kernel, {_place(state)} in line."
    else:
        sentence = f"{title} is running."
    return sentence, f"job{job.id}:{step_id}:{sentence}"


def verdict(job: Job, titles: dict[str, str]) -> str:
    """What a screen reader is told when a job ends: the last cell's check, or why it failed."""
    if job.error:
        return job.error
    if not job.runs:
        return "Nothing ran."
    run = job.runs[-1]
    title = titles.get(run.step_id, "The cell")
    if run.check is not None:
        fallback = "Check passed." if run.check.passed else "Check did not pass."
        return f"{title}: {run.check.message or fallback}"
    if run.result.status != "ok":
        return f"{title}: {run.result.message or 'the run did not finish.'}"
    return f"{title} has finished running."


def _place(state: RunState) -> str:
    """A place in line as words: "2nd", or "next" when the place is not known."""
    return f"{state.position}{_ordinal(state.position)}" if state.position else "next"


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


@st.cache_resource(show_spinner=False)
def jobs() -> Jobs:
    """The app-wide job registry."""
    return Jobs()

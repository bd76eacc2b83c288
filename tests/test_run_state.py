"""Workbook.run_step waits its turn in the run queue; run_state shows where a student stands."""

from __future__ import annotations

import threading
import time

import pytest

from workbook.config import Settings
from workbook.kernels.result import ExecutionResult
from workbook.service import RunState, Workbook


class BlockingKernel:
    """Stands in for a student's kernel: each cell runs until the test lets it finish."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.lock = threading.RLock()
        self.pid = None
        self.started = threading.Event()
        self.finish = threading.Event()

    def inspect(self, code: str, timeout=None):
        return None  # the thread grant: torch "not imported"

    def execute(self, code: str, timeout=None) -> ExecutionResult:
        self.started.set()
        self.finish.wait(10)
        # An error result: run_step then checks nothing (no model needed here).
        return ExecutionResult(outputs=[], execution_count=1, status="error", message="")


class FakePool:
    def __init__(self) -> None:
        self.kernels: dict[str, BlockingKernel] = {}

    def kernel_for(self, user_id: str) -> BlockingKernel:
        return self.kernels.setdefault(user_id, BlockingKernel(user_id))

    def current(self, user_id: str) -> BlockingKernel | None:
        return self.kernels.get(user_id)

    def place_in_line(self, user_id: str) -> None:
        return None  # never full


def _wait(predicate) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:  # a hang, not a speed check
            pytest.fail("condition never became true")
        time.sleep(0.01)


def test_a_second_student_waits_in_line_and_sees_their_place(tmp_path):
    wb = Workbook(Settings(db_path=tmp_path / "wb.db", work_dir=tmp_path / "k", run_slots=1))
    wb._kernels = FakePool()
    ada = wb.register("Ada", "ada@example.org", "a long password")
    bob = wb.register("Bob", "bob@example.org", "a long password")
    assert wb.run_state(ada.id) == RunState(state="idle", position=None, since=None)

    runs = [
        threading.Thread(target=wb.run_step, args=(user.id, "step1", "x = 1"), daemon=True)
        for user in (ada, bob)
    ]
    runs[0].start()
    _wait(lambda: ada.id and str(ada.id) in wb._kernels.kernels)
    _wait(wb._kernels.kernels[str(ada.id)].started.is_set)
    runs[1].start()
    _wait(lambda: wb.run_state(bob.id).state == "queued")

    running, queued = wb.run_state(ada.id), wb.run_state(bob.id)
    assert (running.state, running.position) == ("running", 0)
    assert (queued.state, queued.position) == ("queued", 1)
    assert running.since is not None and queued.since is not None
    # Bob's cell has not started: the only slot is Ada's.
    assert (
        str(bob.id) not in wb._kernels.kernels
        or not wb._kernels.kernels[str(bob.id)].started.is_set()
    )

    wb._kernels.kernels[str(ada.id)].finish.set()
    _wait(lambda: wb.run_state(bob.id).state == "running")
    assert wb.run_state(ada.id).state == "idle"
    wb._kernels.kernels[str(bob.id)].finish.set()
    for run in runs:
        run.join(10)
    assert wb.run_state(bob.id).state == "idle"
    # The code was saved even though the cell failed.
    assert wb.cells(bob.id)["step1"].code == "x = 1"


def test_preload_loads_the_reference_model_and_starts_the_spares_in_the_background(
    tmp_path, monkeypatch
):
    wb = Workbook(Settings(db_path=tmp_path / "wb.db", work_dir=tmp_path / "k"))
    loaded = threading.Event()
    spares_started = threading.Event()
    monkeypatch.setattr(wb, "engine", lambda: loaded.set())
    configured = threading.Event()
    monkeypatch.setattr("workbook.kernels.threads.configure_app", configured.set)

    class Pool(FakePool):
        def keep_spares(self, quiet) -> None:
            assert quiet() is True  # nobody waits in the run queue
            spares_started.set()

    wb._kernels = Pool()
    wb.preload()
    wb.preload()  # only the first call starts anything
    assert configured.wait(10) and loaded.wait(10) and spares_started.wait(10)
    assert [t.name for t in threading.enumerate()].count("workbook-preload") <= 1


class _RunsOnRelease:
    """The run queue's lock; the first time a reader lets go of it, the waiting run is let in
    and finishes, as it may between two reads of the page's poll."""

    def __init__(self, queue) -> None:
        self.inner = threading.Condition()
        self.queue = queue
        self.moved = False

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, *exc):
        done = self.inner.__exit__(*exc)
        if not self.moved and self.queue._waiting:
            self.moved = True
            ticket = self.queue._waiting.popleft()
            ticket.running = True  # admitted, then done: in neither list any more
        return done


def test_run_state_reads_the_queue_at_one_moment(tmp_path):
    from workbook.kernels.run_queue import Ticket

    wb = Workbook(Settings(db_path=tmp_path / "wb.db", work_dir=tmp_path / "k", run_slots=1))
    wb.run_queue._waiting.append(Ticket("7", 1, since=123.0))
    wb.run_queue._cond = _RunsOnRelease(wb.run_queue)
    # What the queue held when it was read: 1st in line, not half of it and half of later.
    assert wb.run_state(7) == RunState(state="queued", position=1, since=123.0)

"""A lab session starts: the pool's cap from memory, the line for kernels, spares that follow
the arrivals, kernels readied at sign-in. Stand-in kernels: no process starts."""

from __future__ import annotations

import math
import threading
import time

import pytest

from workbook.config import Settings
from workbook.kernels import capacity
from workbook.kernels import pool as pool_module
from workbook.kernels.errors import ServerBusy
from workbook.kernels.kernel_line import LineWatch, line_stalled_notice
from workbook.kernels.pool import KernelPool
from workbook.kernels.result import ExecutionResult

AVAILABLE_MB = 5_000.0
RESERVE_MB = 1_000


class StandIn:
    """Just what the pool reads of a kernel; its start can be held by the test."""

    def __init__(self, user_id: str, log: Log) -> None:
        self.user_id = user_id
        self.lock = threading.RLock()
        self.last_used = time.monotonic()
        self.pending_notice = ""
        self.home = None
        self.pid = None
        self.started = False
        self.log = log
        self.inspected: list[str] = []

    def start(self) -> None:
        self.log.enter(self)
        self.started = True

    def inspect(self, code: str, timeout=None):
        self.inspected.append(code)

    def execute(self, code: str, timeout=None) -> ExecutionResult:
        return ExecutionResult(outputs=[], execution_count=1, status="error", message="")

    def is_alive(self) -> bool:
        return self.started

    def cull_notice(self, *, idle: bool) -> str:
        return "shut down after being idle" if idle else "it stopped"

    def shutdown(self) -> None:
        self.started = False


class Log:
    """Counts kernel starts, how many ran at once, and can hold every start until let go."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.inside = 0
        self.most_at_once = 0
        self.go = threading.Event()
        self.go.set()

    def enter(self, kernel: StandIn) -> None:
        with self.lock:
            self.inside += 1
            self.most_at_once = max(self.most_at_once, self.inside)
        self.go.wait(10)
        with self.lock:
            self.inside -= 1
            self.started.append(kernel.user_id)


def _wait(predicate) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:  # a hang, not a speed check
            pytest.fail("condition never became true")
        time.sleep(0.005)


@pytest.fixture
def make_pool(tmp_path, monkeypatch):
    """A pool on given memory (AVAILABLE_MB, RESERVE_MB) whose kernels are stand-ins."""
    monkeypatch.setattr(capacity, "available_mb", lambda: AVAILABLE_MB)
    monkeypatch.setattr(pool_module, "_LINE_RECHECK_S", 0.05)  # the line looks again soon
    made: list[KernelPool] = []

    def make(**overrides) -> tuple[KernelPool, Log]:
        fields = {"work_dir": tmp_path, "spare_kernels": 0, "memory_reserve_mb": RESERVE_MB}
        pool = KernelPool(Settings(**{**fields, **overrides}))
        log = Log()
        pool._new_kernel = lambda user_id: StandIn(user_id, log)
        made.append(pool)
        return pool, log

    yield make
    for pool in made:
        pool.shutdown_all()


def _in_background(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def test_the_cap_follows_the_memory_and_the_measured_kernels(make_pool, monkeypatch):
    pool, _ = make_pool()
    assert pool.capacity() == math.floor((AVAILABLE_MB - RESERVE_MB) / capacity.DEFAULT_KERNEL_MB)
    for user in ("a", "b"):
        pool.kernel_for(user)
    monkeypatch.setattr(capacity, "kernels_pss_mb", lambda pids: [250.0] * len(pids))
    assert pool.measure() == 250.0
    # What is available now, plus what the pool's two kernels hold, is theirs to share.
    held = 2 * 250.0
    assert pool.capacity() == math.floor((AVAILABLE_MB + held - RESERVE_MB) / 250.0)
    # Another program takes 2 GB: the next measurement (every 10 s) brings the cap down.
    monkeypatch.setattr(capacity, "available_mb", lambda: AVAILABLE_MB - 2048)
    pool.measure()
    assert pool.capacity() == math.floor((AVAILABLE_MB - 2048 + held - RESERVE_MB) / 250.0)
    fixed, _ = make_pool(max_kernels=3)
    assert fixed.capacity() == 3  # WORKBOOK_MAX_KERNELS still overrides


def test_nobody_is_refused_or_waits_while_memory_allows(make_pool):
    pool, log = make_pool()
    students = [f"s{i}" for i in range(pool.capacity())]
    got: dict[str, object] = {}
    threads = [
        _in_background(lambda u: got.__setitem__(u, pool.kernel_for(u)), u) for u in students
    ]
    for thread in threads:
        thread.join(10)
    assert sorted(got) == sorted(students) and sorted(pool.running()) == sorted(students)
    assert all(got[u].is_alive() for u in students)
    assert sorted(log.started) == sorted(students)


def test_past_the_cap_students_wait_in_line_first_come_first_served(make_pool):
    pool, _ = make_pool(max_kernels=2, kernel_idle_s=3600, kernel_idle_when_full_s=3600)
    for user in ("ada", "bob"):
        pool.kernel_for(user)
    waiting = []
    for user in ("cy", "di", "ed"):
        waiting.append(_in_background(pool.kernel_for, user))
        _wait(lambda user=user: pool.place_in_line(user) is not None)
    assert [pool.place_in_line(u) for u in ("cy", "di", "ed", "ada")] == [1, 2, 3, None]

    # Ada's kernel is culled (idle): the place goes to the first in line, the others move up.
    pool._kernels["ada"].last_used = -1e9
    assert pool.cull_idle() == ["ada"]
    _wait(lambda: pool.current("cy") is not None)
    assert pool.current("di") is None and pool.current("ed") is None
    assert [pool.place_in_line(u) for u in ("cy", "di", "ed")] == [None, 1, 2]
    pool._kernels["bob"].last_used = -1e9
    pool.cull_idle()
    _wait(lambda: pool.current("di") is not None)
    assert pool.place_in_line("ed") == 1 and pool.current("ed") is None
    pool.shutdown_all()  # frees every place: the last one gets in
    for thread in waiting:
        thread.join(10)
    assert pool.current("ed") is not None


def test_when_full_the_longest_idle_kernel_past_the_minimum_makes_room(make_pool):
    pool, _ = make_pool(max_kernels=2, kernel_idle_s=3600, kernel_idle_when_full_s=600)
    for user in ("ada", "bob"):
        pool.kernel_for(user)
    now = time.monotonic()
    pool._kernels["ada"].last_used = now - 700  # idle past the minimum
    pool._kernels["bob"].last_used = now - 900  # idle longer: culled first
    ada, bob = pool._kernels["ada"], pool._kernels["bob"]
    pool.kernel_for("cy")
    assert sorted(pool.running()) == ["ada", "cy"] and not bob.is_alive()
    # Bob reads why at his next run; ada was left alone.
    assert pool.kernel_for("bob") is not None  # ada is next-longest idle past the minimum
    assert pool.current("bob").pending_notice == "shut down after being idle"
    assert not ada.is_alive() and sorted(pool.running()) == ["bob", "cy"]


def test_when_full_a_kernel_idle_less_than_the_minimum_is_not_culled(make_pool):
    pool, _ = make_pool(max_kernels=1, kernel_idle_s=3600, kernel_idle_when_full_s=600)
    pool.kernel_for("ada")
    pool._kernels["ada"].last_used = time.monotonic() - 60  # idle for a minute: kept
    waiter = _in_background(pool.kernel_for, "bob")
    _wait(lambda: pool.place_in_line("bob") == 1)
    assert pool.current("ada").is_alive() and pool.current("bob") is None
    pool._kernels["ada"].last_used = time.monotonic() - 601  # now past the minimum
    waiter.join(10)  # the line looks again by itself
    assert pool.running() == ["bob"]


def test_a_line_that_does_not_move_is_given_up_with_a_clear_message(make_pool):
    # Small settings: kernels idle 0.2 s make room; a line stalled 2 * 0.2 + 1 s is given up.
    pool, _ = make_pool(
        max_kernels=1, kernel_idle_s=3600, kernel_idle_when_full_s=0.2, cell_timeout_s=1
    )
    ada = pool.kernel_for("ada")
    ada.lock.acquire()  # a cell runs in ada's kernel: it is never culled meanwhile
    try:
        outcome: dict[str, BaseException] = {}

        def wait_in_line(user: str) -> None:
            try:
                pool.kernel_for(user)
            except ServerBusy as exc:
                outcome[user] = exc

        waiters = [_in_background(wait_in_line, user) for user in ("bob", "cy")]
        for waiter in waiters:
            waiter.join(10)
        assert not any(waiter.is_alive() for waiter in waiters)  # nobody waits forever
    finally:
        ada.lock.release()
    assert sorted(outcome) == ["bob", "cy"]  # everyone in the stalled line is told
    words = str(outcome["bob"])
    assert "The server is full" in words and "Your code is saved" in words
    assert "Try **Run** again in a few minutes" in words
    assert pool.place_in_line("bob") is None and pool.running() == ["ada"]
    # Once ada's cell is over and her kernel idle past the minimum, the next student gets in.
    ada.last_used = time.monotonic() - 1
    assert pool.kernel_for("bob") is not None and pool.running() == ["bob"]


def test_a_line_is_given_up_only_after_it_stood_still_for_the_whole_bound():
    settings = Settings(kernel_idle_when_full_s=600, cell_timeout_s=30)
    watch = LineWatch(settings)
    bound = 2 * settings.kernel_idle_when_full_s + settings.cell_timeout_s
    assert watch.bound_s == bound
    watch.moved(now=1000.0)
    assert not watch.stalled(joined=900.0, now=1000.0 + bound)
    assert watch.stalled(joined=900.0, now=1000.0 + bound + 1)
    # The line moved meanwhile: the clock starts again for everyone in it.
    watch.moved(now=1500.0)
    assert not watch.stalled(joined=900.0, now=1000.0 + bound + 1)
    # A student who joined after the line last moved counts from when they joined.
    assert not watch.stalled(joined=2000.0, now=1500.0 + bound + 1)
    assert str(round(bound / 60)) + " minutes" in line_stalled_notice(settings)


def test_a_cap_grown_by_a_new_measurement_lets_the_line_in(make_pool, monkeypatch):
    pool, _ = make_pool(kernel_idle_s=3600, kernel_idle_when_full_s=3600)
    cap = pool.capacity()
    for i in range(cap):
        pool.kernel_for(f"s{i}")
    waiter = _in_background(pool.kernel_for, "late")
    _wait(lambda: pool.place_in_line("late") == 1)
    monkeypatch.setattr(
        capacity, "kernels_pss_mb", lambda pids: [250.0] * len(pids)
    )  # smaller than guessed
    pool.measure()
    waiter.join(10)
    assert pool.current("late") is not None and pool.place_in_line("late") is None


def test_at_most_one_kernel_starts_per_core_at_a_time(make_pool, monkeypatch):
    monkeypatch.setattr(pool_module.threads, "cores", lambda: 2)
    pool, log = make_pool()
    log.go.clear()  # every start is held until the test lets go
    students = [_in_background(pool.kernel_for, f"s{i}") for i in range(6)]
    _wait(lambda: log.inside == 2)
    assert len(pool.running()) == 6  # all six have their place; four wait to start
    log.go.set()
    for thread in students:
        thread.join(10)
    assert len(log.started) == 6 and log.most_at_once == 2


def test_a_student_arriving_gets_a_kernel_started_and_warmed_in_the_background(make_pool):
    pool, log = make_pool()
    log.go.clear()
    pool.warm("ada")  # returns at once although the start is held
    _wait(lambda: log.inside == 1)
    assert pool.current("ada") is not None and not pool.current("ada").is_alive()
    log.go.set()
    _wait(lambda: pool.current("ada").inspected)
    assert "from_pretrained" in pool.current("ada").inspected[0]  # the spare's warm-up
    pool.warm("ada")  # already has one: nothing more starts
    assert log.started == ["ada"]


def test_a_student_arriving_adopts_a_ready_spare_without_a_start(make_pool):
    pool, log = make_pool(spare_kernels=1)
    pool._spares._make = lambda: StandIn("spare", log)
    assert pool._spares.fill_one()
    started = list(log.started)
    pool.warm("ada")
    _wait(lambda: pool.current("ada") is not None)
    assert pool.current("ada").user_id == "ada" and log.started == started


def test_the_spares_grow_with_arrivals_and_shrink_when_the_room_is_quiet(make_pool, monkeypatch):
    pool, log = make_pool(spare_kernels=1, max_kernels=20)
    pool._spares._make = lambda: StandIn("spare", log)
    for user in ("a", "b", "c", "d"):
        pool.warm(user)
    _wait(lambda: len(pool.running()) == 4)
    assert pool._spares.size == 4  # four arrived in the window: four spares wanted
    while pool._spares.fill_one():
        pass
    assert pool.spares_ready() == 4
    ready = pool._spares.kernels()

    later = time.monotonic() + capacity.ARRIVAL_WINDOW_S + 1
    monkeypatch.setattr(capacity.time, "monotonic", lambda: later)
    pool.tend()  # nobody arrived lately: back to the setting
    assert pool._spares.size == 1 and pool.spares_ready() == 1
    assert sum(not spare.is_alive() for spare in ready) == 3


def test_spares_wait_while_a_student_waits_for_a_kernel(make_pool):
    pool, log = make_pool(spare_kernels=2, max_kernels=1, kernel_idle_when_full_s=3600)
    pool._spares._make = lambda: StandIn("spare", log)
    pool.kernel_for("ada")
    _in_background(pool.kernel_for, "bob")
    _wait(lambda: pool.place_in_line("bob") == 1)
    assert not pool._spares.fill_one()


def test_the_page_shows_a_run_waiting_for_a_kernel_and_its_place(tmp_path, make_pool):
    from workbook.kernels.run_queue import RunState
    from workbook.service import Workbook

    wb = Workbook(Settings(db_path=tmp_path / "wb.db", work_dir=tmp_path / "k"))
    pool, _ = make_pool(max_kernels=1, kernel_idle_s=3600, kernel_idle_when_full_s=3600)
    wb._kernels = pool
    ada = wb.register("Ada", "ada@example.org", "a long password")
    bob = wb.register("Bob", "bob@example.org", "a long password")
    wb.run_step(ada.id, "step1", "x = 1")
    run = _in_background(wb.run_step, bob.id, "step1", "y = 2")
    _wait(lambda: wb.run_state(bob.id).state == "waiting_for_kernel")
    state = wb.run_state(bob.id)
    assert state.position == 1 and state.since is not None
    assert wb.run_state(ada.id) == RunState(state="idle", position=None, since=None)
    pool._kernels[str(ada.id)].last_used = -1e9
    pool.cull_idle()
    run.join(10)
    assert wb.run_state(bob.id).state == "idle" and pool.running() == [str(bob.id)]
    assert wb.cells(bob.id)["step1"].code == "y = 2"  # saved before it waited


def test_warm_kernel_does_nothing_without_preloading(tmp_path):
    from workbook.service import Workbook

    wb = Workbook(Settings(db_path=tmp_path / "wb.db", work_dir=tmp_path / "k", preload=False))
    wb.warm_kernel(7)
    assert wb._kernels is None  # no pool was built, no kernel started


def test_a_students_kernel_start_goes_before_a_spares():
    from workbook.kernels.run_queue import StartSlots

    slots = StartSlots(1)
    order: list[str] = []
    first = slots.student()
    first.__enter__()

    def take(kind: str) -> None:
        with getattr(slots, kind)():
            order.append(kind)

    spare = _in_background(take, "spare")
    _wait(lambda: slots._cond._waiters)  # the spare waits for the one slot
    student = _in_background(take, "student")
    _wait(lambda: slots._students_waiting == 1)
    first.__exit__(None, None, None)
    for thread in (student, spare):
        thread.join(10)
    assert order == ["student", "spare"] and slots.in_use() == 0


def test_a_student_takes_a_spare_already_warming_up_before_starting_their_own(
    make_pool, monkeypatch
):
    monkeypatch.setattr(pool_module.threads, "cores", lambda: 2)  # one start slot each
    pool, log = make_pool(spare_kernels=1)
    spare_log = Log()
    spare_log.go.clear()  # the spare's start is under way, held
    pool._spares._make = lambda: StandIn("spare", spare_log)
    filling = _in_background(pool._spares.fill_one)
    _wait(lambda: spare_log.inside == 1)
    first = _in_background(pool.kernel_for, "ada")  # the warming spare is promised to her
    _wait(lambda: pool._spares._takers)
    bob = pool.kernel_for("bob")  # no spare left on its way for bob: he starts his own
    assert log.started == ["bob"] and bob.user_id == "bob"
    spare_log.go.set()
    filling.join(10)
    first.join(10)
    ada = pool.current("ada")
    assert ada.is_alive() and ada.user_id == "ada" and ada.log is spare_log  # the spare
    assert log.started == ["bob"]  # ada's own kernel was never started


def test_a_student_does_not_wait_for_a_spare_that_has_no_start_slot_yet(make_pool, monkeypatch):
    monkeypatch.setattr(pool_module.threads, "cores", lambda: 1)
    pool, log = make_pool(spare_kernels=1)
    pool._spares._make = lambda: StandIn("spare", log)
    log.go.clear()
    ada = _in_background(pool.kernel_for, "ada")  # holds the only start slot
    _wait(lambda: log.inside == 1)
    filling = _in_background(pool._spares.fill_one)  # waits for a slot
    _wait(lambda: pool._spares._warming == 1)
    bob = _in_background(pool.kernel_for, "bob")
    # Bob queues for a start slot himself, ahead of the spare, instead of waiting for it.
    _wait(lambda: pool._starting._students_waiting == 1)
    assert not pool._spares._takers
    log.go.set()
    for thread in (ada, bob, filling):
        thread.join(10)
    assert log.started[:2] == ["ada", "bob"] and log.started[2] == "spare"

"""The kernel pool's bookkeeping around culling, with stand-in kernels (no process starts)."""

from __future__ import annotations

import threading

import pytest

from workbook.config import Settings
from workbook.kernels.pool import KernelPool


class StandIn:
    """Just what the pool reads of a kernel; notes whether the pool was locked at its stop."""

    def __init__(self, pool: KernelPool, user_id: str, *, idle: bool) -> None:
        self.pool = pool
        self.user_id = user_id
        self.lock = threading.RLock()
        self.last_used = -1e9 if idle else float("inf")
        self.pending_notice = ""
        self.started = True
        self.pool_locked_at_stop: bool | None = None

    def is_alive(self) -> bool:
        return self.pool_locked_at_stop is None

    def cull_notice(self, *, idle: bool) -> str:
        return "shut down while idle" if idle else ""

    def shutdown(self) -> None:
        self.pool_locked_at_stop = self.pool._lock.locked()


def _free(lock: threading.RLock) -> bool:
    """Whether another thread could take ``lock`` now."""
    got: list[bool] = []

    def take() -> None:
        got.append(lock.acquire(blocking=False))
        if got[0]:
            lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    return got[0]


@pytest.fixture
def pool(tmp_path):
    pool = KernelPool(Settings(work_dir=tmp_path, max_kernels=1, kernel_idle_s=60, spare_kernels=0))
    yield pool
    pool._kernels.clear()
    pool.shutdown_all()


def test_culling_stops_idle_kernels_without_holding_the_pools_lock(pool):
    idle = StandIn(pool, "ada", idle=True)
    pool._kernels["ada"] = idle
    assert pool.cull_idle() == ["ada"]
    assert idle.pool_locked_at_stop is False
    assert _free(idle.lock) and pool.running() == []
    assert pool._notices["ada"] == "shut down while idle"


def test_a_student_who_needs_a_culled_slot_does_not_stop_it_under_the_pools_lock(pool, monkeypatch):
    idle = StandIn(pool, "ada", idle=True)
    pool._kernels["ada"] = idle
    monkeypatch.setattr(pool, "_new_kernel", lambda user_id: StandIn(pool, user_id, idle=False))
    kernel = pool.kernel_for("bob")
    assert idle.pool_locked_at_stop is False and _free(idle.lock)
    assert pool.running() == ["bob"] and pool.current("bob") is kernel


def test_a_kernel_busy_running_a_cell_is_never_culled(pool):
    busy = StandIn(pool, "ada", idle=True)
    pool._kernels["ada"] = busy
    holder = threading.Thread(target=busy.lock.acquire)
    holder.start()
    holder.join()  # another thread holds its lock (as a running cell does), never released
    assert pool.cull_idle() == []
    assert busy.pool_locked_at_stop is None and pool.running() == ["ada"]


def test_a_restart_after_a_cull_does_not_tell_the_student_about_the_cull(pool, monkeypatch):
    pool._kernels["ada"] = StandIn(pool, "ada", idle=True)
    pool.cull_idle()
    monkeypatch.setattr(pool, "_new_kernel", lambda user_id: StandIn(pool, user_id, idle=False))
    kernel = pool.restart("ada")
    assert kernel.pending_notice == ""


def test_the_next_run_after_a_cull_still_says_why_the_variables_are_gone(pool, monkeypatch):
    pool._kernels["ada"] = StandIn(pool, "ada", idle=True)
    pool.cull_idle()
    monkeypatch.setattr(pool, "_new_kernel", lambda user_id: StandIn(pool, user_id, idle=False))
    assert pool.kernel_for("ada").pending_notice == "shut down while idle"

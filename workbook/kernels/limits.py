"""Per-student totals for hosted mode: one ceiling for a whole sandbox, not for one process.

A student's sandbox may hold many processes (forked children, ``subprocess``, DataLoader
workers). Resource limits on one process (``RLIMIT_*``, applied by the kernel launcher) do
not add up across them, so the app bounds each sandbox as a whole with two mechanisms:

- cgroups (:mod:`workbook.kernels.cgroups`; the app runs as root and the host has cgroup v2
  or v1 controllers it may write): the Linux kernel itself enforces a memory ceiling, a
  process ceiling and a CPU quota on every process of the sandbox, including the ones that
  outlive their cell.
- :class:`Watchdog` (always): one thread in the app looks at every sandbox's process tree
  twice a second. Where no memory cgroup is available (unprivileged, or as root on a host
  with no writable controller) it adds up the processes' memory
  (proportional set size, so pages shared with other kernels, like the model weights, are
  not counted twice) and stops the sandbox past the ceiling. It also counts the student's
  home folder every two seconds (the backstop of :mod:`workbook.kernels.home_watch`), and
  stops processes that keep burning CPU after their cell has returned.

When a sandbox is stopped, :meth:`Guard.reason` says which limit did it, so the student's
message can name it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from workbook.kernels import cgroups
from workbook.kernels.home_inotify import watcher as home_watcher
from workbook.kernels.home_watch import HomeWatch

__all__ = ["Guard", "Watchdog", "remove_stale", "watchdog"]

_TICK_S = 0.5
_HOME_EVERY = 4  # ticks between two walks of a home folder
# Once its cell has returned, a process that keeps wanting the CPU (runnable, or using half
# a core) for about two seconds is stopped; a short burst (a write finishing, a DataLoader
# worker shutting down) is fine. "Runnable" matters on a busy server, where a spinning
# process may get far less than half a core and still take it from everyone else.
_IDLE_BURN_LIMIT = 0.8
_IDLE_GRACE_S = 2.0


def remove_stale() -> None:
    """Delete empty sandbox cgroups left behind by an app that was killed."""
    cgroups.remove_stale()


@dataclass
class _Proc:
    pid: int
    ppid: int
    comm: str
    cpu_s: float  # user + system


def _processes() -> dict[int, _Proc]:
    """Every process on the host, read once per tick by psutil.

    One table serves every sandbox's check: asking psutil for each sandbox's children
    would read every process on the host once per sandbox.
    """
    table: dict[int, _Proc] = {}
    for proc in psutil.process_iter(["ppid", "name", "cpu_times"]):
        info = proc.info
        times = info["cpu_times"]
        if info["ppid"] is None or times is None:
            continue  # it ended, or we may not read it
        table[proc.pid] = _Proc(
            pid=proc.pid,
            ppid=info["ppid"],
            comm=info["name"] or "",
            cpu_s=times.user + times.system,
        )
    return table


def _tree(root: int, table: dict[int, _Proc]) -> list[_Proc]:
    """``root`` and every process below it in ``table``."""
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(table[pid])
        todo.extend(children.get(pid, []))
    return out


def _any_thread_runnable(pid: int) -> bool:
    """Whether a thread of ``pid`` is running or waiting for a CPU (state R).

    The process's own state is its main thread's; a kernel's event loop sleeps while a
    thread the student started spins.
    """
    try:
        threads = psutil.Process(pid).threads()
    except psutil.Error:
        return False
    for thread in threads:
        try:
            # A thread id names the thread's own entry, which psutil reads like a process.
            if psutil.Process(thread.id).status() == psutil.STATUS_RUNNING:
                return True
        except psutil.Error:
            continue
    return False


def _pss_bytes(pid: int) -> int:
    """Proportional set size: private pages plus a fair share of the shared ones."""
    try:
        return psutil.Process(pid).memory_full_info().pss
    except psutil.Error:
        return 0


@dataclass
class Guard:
    """What the watchdog knows about one sandbox.

    Attributes:
        root_pid: the sandbox's outermost process (bubblewrap), as the host sees it.
        home: the student's home folder on the host.
        memory_mb: ceiling for the whole sandbox, enforced here only when ``check_memory``.
        home_mb, home_files: quota on the home folder.
        check_memory: ``False`` when a memory cgroup enforces the ceiling already.
        home_watch: what the home holds and the file limit its processes get (see
            :mod:`workbook.kernels.home_watch`; followed by inotify too). Without one, the
            guard makes one that only walks the folder every two seconds and sets no limit.
        kernel_pid: the kernel's own process (told by :meth:`ready`).
        kernel_cpu_s: the CPU seconds the kernel's process has used.
    """

    root_pid: int
    home: Path
    memory_mb: int
    home_mb: int
    home_files: int
    check_memory: bool
    home_watch: HomeWatch | None = None
    kernel_pid: int | None = None
    kernel_cpu_s: float = 0.0
    _busy: int = 1  # starting up counts as busy, until :meth:`ready`
    _idle_since: float = field(default_factory=time.monotonic)
    _reason: str = ""
    _cpu_seen: dict[int, float] = field(default_factory=dict)
    _cpu_seen_at: float = 0.0
    _idle_burn: dict[int, float] = field(default_factory=dict)
    _ticks: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.home_watch is None:
            self.home_watch = HomeWatch(
                self.home, quota_mb=self.home_mb, max_files=self.home_files, lower_limits=False
            )
        self.home_watch.bind(pids=self.pids, stop=lambda: self.stop_all("disk"))
        if self.home_watch.lower_limits:
            home_watcher().watch(self.home_watch)

    def pids(self) -> list[int]:
        """Every process of the sandbox now, its outermost first.

        Read from each process's ``children`` list in /proc: only the sandbox's own
        processes are read, however many the host runs (psutil would read them all).
        """
        out, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                with (
                    contextlib.suppress(OSError, ValueError),
                    open(f"/proc/{pid}/task/{tid}/children") as f,
                ):
                    todo.extend(int(child) for child in f.read().split())
        return out

    def stop_all(self, reason: str) -> None:
        """Kill every process of the sandbox, and remember why."""
        self._reason = reason
        for _ in range(2):  # a second pass for what was forked meanwhile
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def move_home(self, folder: Path) -> None:
        """The home folder was renamed: the quota follows it."""
        self.home = folder
        assert self.home_watch is not None
        self.home_watch.home = folder

    @contextlib.contextmanager
    def running_cell(self) -> Iterator[None]:
        """Mark a cell as running: its processes may use the CPU freely meanwhile."""
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._idle_since = time.monotonic()
                self._idle_burn.clear()

    def ready(self, kernel_pid: int | None) -> None:
        """The kernel has started: from now on, CPU used between cells is watched.

        Args:
            kernel_pid: the kernel's own process in the sandbox (as
                :func:`workbook.kernels.cell_clock.kernel_process` found it), if found.
        """
        with self._lock:
            self.kernel_pid = kernel_pid
            self._busy -= 1
            self._idle_since = time.monotonic()
        if self.home_watch is not None:
            self.home_watch.arm()

    def reason(self) -> str:
        """The limit that made the watchdog stop this sandbox, or ``""``."""
        return self._reason

    def _stop(self, reason: str, procs: list[_Proc]) -> None:
        self._reason = reason
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)

    def check(self, table: dict[int, _Proc], now: float) -> None:
        """Look at the sandbox once; stop it (or its background processes) past a limit."""
        if self._reason:
            return
        procs = _tree(self.root_pid, table)
        if not procs:
            return
        inside = [p for p in procs if p.pid != self.root_pid]
        if self.kernel_pid in table:
            self.kernel_cpu_s = table[self.kernel_pid].cpu_s
        if self.check_memory:
            used_mb = sum(_pss_bytes(p.pid) for p in inside) / 2**20
            if used_mb > self.memory_mb:
                self._stop("memory", procs)
                return
        self._ticks += 1
        if self._ticks % _HOME_EVERY == 1 and self.home_watch is not None:
            # The backstop of the inotify watcher: the whole folder counted again.
            home_watcher().refresh(self.home_watch)
            if self._reason:
                return
        self._check_idle_cpu(inside, now)

    def _check_idle_cpu(self, inside: list[_Proc], now: float) -> None:
        with self._lock:
            idle = self._busy == 0 and now - self._idle_since > _IDLE_GRACE_S
        seen, self._cpu_seen = self._cpu_seen, {p.pid: p.cpu_s for p in inside}
        elapsed, self._cpu_seen_at = now - self._cpu_seen_at, now
        if not idle or elapsed <= 0 or elapsed > 10 * _TICK_S:
            return
        for proc in inside:
            if proc.comm == "bwrap":
                continue
            delta_s = proc.cpu_s - seen.get(proc.pid, proc.cpu_s)
            busy = delta_s / elapsed > 0.5 or _any_thread_runnable(proc.pid)
            # An exponential average: about four busy ticks in a row cross the limit.
            burn = self._idle_burn.get(proc.pid, 0.0) * 0.6 + (0.4 if busy else 0.0)
            self._idle_burn[proc.pid] = burn
            if burn > _IDLE_BURN_LIMIT:
                if proc.pid == self.kernel_pid:
                    # A thread of the kernel itself: only stopping the kernel ends it.
                    self._stop("cpu", inside)
                    return
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signal.SIGKILL)


class Watchdog:
    """One thread that checks every registered sandbox twice a second."""

    def __init__(self) -> None:
        self._guards: dict[int, Guard] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, guard: Guard) -> Guard:
        """Start watching ``guard``'s sandbox (starts the thread on first use)."""
        with self._lock:
            self._guards[id(guard)] = guard
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="workbook-watchdog", daemon=True
                )
                self._thread.start()
        return guard

    def forget(self, guard: Guard) -> None:
        """Stop watching ``guard``'s sandbox (and its home)."""
        with self._lock:
            self._guards.pop(id(guard), None)
        if guard.home_watch is not None:
            home_watcher().forget(guard.home_watch)

    def _loop(self) -> None:
        while True:
            time.sleep(_TICK_S)
            with self._lock:
                guards = list(self._guards.values())
            if not guards:
                continue
            table = _processes()
            now = time.monotonic()
            for guard in guards:
                try:
                    guard.check(table, now)
                except Exception:  # noqa: BLE001 - one odd sandbox must not stop the others
                    continue


_watchdog = Watchdog()


def watchdog() -> Watchdog:
    """The app's one watchdog."""
    return _watchdog

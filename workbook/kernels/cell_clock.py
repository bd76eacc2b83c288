"""How long a cell has really had: wall time minus the time its kernel waited for a CPU.

A cell's time limit is there to stop code that runs away (an endless loop, a huge
computation), not code that is slow because the server is busy. Time a student spends in the
run queue is never inside a cell's clock (the queue admits the run before the kernel is asked
to execute). Once running, the kernel still competes with the app and with kernels starting
up; Linux counts, for every thread, how long it sat runnable waiting for a CPU
(``/proc/<pid>/schedstat``, second field). :class:`CellClock` subtracts that wait, as seen by
the kernel's main thread (where IPython runs the cell), from the wall time.

Sleeping (``time.sleep``, waiting for I/O) still counts as the cell's own time: a cell that
waits forever must still be stopped. Where schedstat cannot be read (another OS, a kernel
without it), the clock is the wall time since the cell was admitted. Gateway kernels do not
use this clock: their limit is plain wall time (:mod:`workbook.kernels.gateway`).
Whatever the clock says, a cell is stopped after :data:`WALL_BACKSTOP_FACTOR` times its limit
in plain wall time: the backstop for a server so overloaded that a cell never gets to finish.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["WALL_BACKSTOP_FACTOR", "CellClock", "kernel_process"]

# A kernel started as a process runs the launcher; one forked from the kernel template
# (workbook.kernels.template) still shows the template's command line.
_LAUNCHER_SCRIPTS = ("kernel_launcher.py", "kernel_template.py")
# However busy the server, a cell is stopped after this many times its limit in wall time.
WALL_BACKSTOP_FACTOR = 10


def kernel_process(pid: int | None) -> int | None:
    """The pid of the Python process running the kernel started as ``pid``.

    Unsandboxed, ``pid`` is that process; in hosted mode it is bubblewrap, and the kernel is
    a descendant (seen from the app under its host pid). A scan of the process table: a
    kernel asks once per start (:class:`workbook.kernels.process.KernelProcess`), and the
    cell clock and the watchdog (:class:`workbook.kernels.limits.Guard`) use that answer.
    """
    if pid is None:
        return None
    try:
        import psutil

        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                # The interpreter running the launcher script, not bubblewrap (whose own
                # command line names the script too).
                command = proc.cmdline()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if len(command) > 1 and command[1].endswith(_LAUNCHER_SCRIPTS):
                return proc.pid
    except Exception:  # noqa: BLE001 - psutil missing or the process is gone: fall back
        return None
    return None


def _wait_ns(schedstat: Path | None) -> int | None:
    if schedstat is None:
        return None
    try:
        # "<ns on CPU> <ns runnable but waiting for a CPU> <times scheduled>"
        return int(schedstat.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


class CellClock:
    """Seconds one cell has had, started when the kernel is asked to run it.

    Args:
        kernel_pid: the pid of the Python process running the kernel, as
            :func:`kernel_process` found it when the kernel started (``None``: wall time only).
    """

    def __init__(self, kernel_pid: int | None) -> None:
        self._schedstat = Path(f"/proc/{kernel_pid}/schedstat") if kernel_pid is not None else None
        self._started = time.monotonic()
        self._wait_at_start = _wait_ns(self._schedstat)
        if self._wait_at_start is None:
            self._schedstat = None

    def wall(self) -> float:
        """Wall-clock seconds since the cell started."""
        return time.monotonic() - self._started

    def waited(self) -> float:
        """Seconds the kernel's main thread spent waiting for a CPU since the cell started."""
        now = _wait_ns(self._schedstat)
        if now is None or self._wait_at_start is None:
            return 0.0
        return max(0, now - self._wait_at_start) / 1e9

    def own(self) -> float:
        """Seconds the cell has had: wall time less the time it waited for a CPU."""
        return max(0.0, self.wall() - self.waited())

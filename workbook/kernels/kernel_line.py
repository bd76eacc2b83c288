"""The line for a kernel when every kernel the cap allows is taken: how long it may stall.

The pool (:class:`workbook.kernels.pool.KernelPool`) keeps the line itself, first come first
served. The first in line gets the place of a kernel culled as idle, of one that stops, or
of a grown cap; when nothing frees up, the longest-idle kernel is shut down for them once it
has been idle ``WORKBOOK_KERNEL_IDLE_WHEN_FULL`` seconds. A kernel running a cell is never
shut down, and a cell runs at most ``WORKBOOK_CELL_TIMEOUT`` seconds (of its own time).

So when nobody in line has got a place for twice ``WORKBOOK_KERNEL_IDLE_WHEN_FULL`` plus
``WORKBOOK_CELL_TIMEOUT``, every kernel has been in real use all that while, and waiting on
would be waiting for students to leave. Everyone in such a line is then told the server is
full (:class:`LineWatch`, :func:`line_stalled_notice`), instead of waiting forever; a line
that moves is never given up, however long it is.
"""

from __future__ import annotations

import contextlib
import time

from workbook.config import Settings
from workbook.kernels.interface import Kernel

__all__ = ["LineWatch", "line_stalled_notice", "stall_bound_s", "stop_culled"]


def stall_bound_s(settings: Settings) -> float:
    """How long a line may stand still before it is given up (see the module's text)."""
    return 2 * settings.kernel_idle_when_full_s + settings.cell_timeout_s


class LineWatch:
    """When a line that does not move is given up (the caller holds the pool's lock).

    Args:
        settings: ``kernel_idle_when_full_s`` and ``cell_timeout_s`` give the bound.
    """

    def __init__(self, settings: Settings) -> None:
        self.bound_s = stall_bound_s(settings)
        self._moved = time.monotonic()

    def moved(self, now: float | None = None) -> None:
        """Someone in line got their place: the line moves."""
        self._moved = time.monotonic() if now is None else now

    def stalled(self, joined: float, now: float | None = None) -> bool:
        """Whether a student in line since ``joined`` has waited on a stalled line too long.

        Only the time since both the student joined and the line last moved counts.
        """
        now = time.monotonic() if now is None else now
        return now - max(joined, self._moved) > self.bound_s


def line_stalled_notice(settings: Settings) -> str:
    """What a student reads when they waited for a kernel and the line did not move."""
    minutes = max(1, round(stall_bound_s(settings) / 60))
    return (
        "The server is full: every kernel it can hold has been in use for the last "
        f"{minutes} minute{'' if minutes == 1 else 's'}, so no place came free for you. "
        "Your code is saved. Try **Run** again in a few minutes, or tell your teacher "
        "that the server is full."
    )


def stop_culled(culled: list[Kernel]) -> None:
    """Stop kernels taken out by the pool's ``_take_culled_locked``, then unlock them."""
    with contextlib.ExitStack() as held:
        for kernel in culled:
            held.callback(kernel.lock.release)
        for kernel in culled:
            kernel.shutdown()  # its lock is ours (reentrant): taking it again is at once

"""What the pool needs of a student's kernel, whatever carries its messages.

:class:`Kernel` is a :class:`typing.Protocol`: a local kernel
(:class:`workbook.kernels.kernel.StudentKernel`) and a gateway kernel
(:class:`workbook.kernels.gateway.GatewayKernel`) both satisfy it, and so does any stand-in a
test builds. :class:`workbook.kernels.pool.KernelPool` and
:class:`workbook.kernels.spares.SparePool` use these names and nothing else of a kernel, so a
third transport needs no change there.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from workbook.kernels.result import ExecutionResult

__all__ = ["Kernel"]


@runtime_checkable
class Kernel(Protocol):
    """One student's kernel, as the pool and the service see it.

    Attributes:
        user_id: whose kernel it is (a spare's own id until a student adopts it).
        lock: held by every public method; the pool holds it to stop a kernel nobody uses.
        last_used: ``time.monotonic()`` of the end of the last run (the idle clock).
        pending_notice: said with the next run's result (why the variables are gone).
        starts: how many times a kernel was started (what it was told before, like its
            torch threads, does not hold for the next one).
    """

    user_id: str
    lock: threading.RLock
    last_used: float
    pending_notice: str
    starts: int

    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Run one cell like a notebook does; a limit or a crash is said in the result."""
        ...

    def inspect(self, code: str, timeout: float | None = None) -> Any:
        """Run a check's snippet silently; the JSON value it bound to ``__workbook_result__``."""
        ...

    def interrupt(self) -> None:
        """Ask the running cell to stop (a KeyboardInterrupt in the kernel)."""
        ...

    def start(self) -> None:
        """Start the kernel (dropping an old one) and wait until it answers."""
        ...

    def restart(self) -> None:
        """A fresh kernel in place of this one; the student asked, so no notice follows."""
        ...

    def is_alive(self) -> bool:
        """Whether the kernel runs now."""
        ...

    @property
    def started(self) -> bool:
        """Whether a kernel was started and not stopped since (alive, or died on its own).

        ``False`` for a kernel object that is still being started for the first time.
        """
        ...

    def shutdown(self) -> None:
        """Stop the kernel and release its connection (its variables are lost).

        It takes :attr:`lock`, which is reentrant: the pool stops a kernel whose lock it
        already holds (culling, restarting) with this too.
        """
        ...

    def stop_reason(self) -> str:
        """Which limit stopped the kernel (``memory``, ``disk``, ``cpu``, ``cpu_budget``),
        ``""`` when none did or it cannot be known (a kernel on another host)."""
        ...

    def cull_notice(self, *, idle: bool) -> str:
        """What the student reads after the pool shut this kernel down (idle, or dead)."""
        ...

    @property
    def pid(self) -> int | None:
        """A local process whose memory counts for this kernel; ``None`` on a gateway."""
        ...

    @property
    def home(self) -> Path | None:
        """The kernel's working folder on this machine; ``None`` on a gateway."""
        ...

    def move_home(self, folder: Path) -> None:
        """The working folder was renamed to ``folder`` (a spare adopted): limits follow."""
        ...

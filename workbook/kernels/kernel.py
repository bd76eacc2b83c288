"""One Jupyter kernel per signed-in student, on this machine: its messages over ZeroMQ.

A :class:`StudentKernel` is a :class:`workbook.kernels.process.KernelProcess` (the process,
started and stopped there) whose cells and checks run through the one run loop,
:class:`workbook.kernels.run_loop.CellRunner`. This module only says how messages travel:
``jupyter_client``'s :class:`~jupyter_client.blocking.client.BlockingKernelClient` over the
process's IPC sockets, an interrupt on the control channel, and a cell clock that deducts the
time the kernel waited for a CPU (:class:`workbook.kernels.cell_clock.CellClock`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from workbook.kernels.cell_clock import CellClock
from workbook.kernels.process import KernelProcess
from workbook.kernels.run_loop import CellRunner

__all__ = ["StudentKernel"]


class StudentKernel(KernelProcess, CellRunner):
    """One student's kernel: cells and checks run over its process's connection.

    Args:
        user_id: the student's id (used in messages and folder names).
        settings: limits and folders.
        cwd: the student's private working folder (created if missing).
        extra_env: environment variables added for the kernel (e.g. ``LM_ENGINE_CACHE``).

    Every public method holds the kernel's lock, so two browser tabs of one student run
    their cells one after the other.
    """

    def interrupt(self) -> None:
        """Ask the running cell to stop (``interrupt_request`` on the control channel)."""
        client = self._client
        if client is not None:
            client.control_channel.send(client.session.msg("interrupt_request", content={}))

    # ----------------------------------------------------------------- run loop hooks
    def _ready_for_run(self) -> None:
        if not self.is_alive() or self._client is None:
            self.start()  # records why the old one stopped in pending_notice

    def _cell_running(self) -> contextlib.AbstractContextManager[None]:
        """Tell the watchdog a cell runs: its processes may use the CPU meanwhile."""
        if self._guard is None:
            return contextlib.nullcontext()
        return self._guard.running_cell()

    def _cell_clock(self) -> CellClock:
        return CellClock(self._kernel_pid)

    def _send_execute(self, content: Mapping[str, Any]) -> str:
        assert self._client is not None
        return self._client.execute(**content)

    def _receive(self, channel: str, timeout: float) -> dict | None:
        assert self._client is not None
        get = self._client.get_iopub_msg if channel == "iopub" else self._client.get_shell_msg
        try:
            return get(timeout=timeout)
        except Exception:  # noqa: BLE001 - queue.Empty: nothing yet, poll again
            return None

    def _died(self) -> bool:
        return not self.is_alive()

    def _replace_kernel(self, *, told: bool) -> None:
        self.start()  # records why the old one stopped in pending_notice
        if told:  # told just now, in this run's message; what the new one found stays
            self.pending_notice = self.start_notice

    def _limit_notice(self) -> str:
        cgroups = self._cgroups
        if cgroups is None or not self.is_alive():
            return ""
        kills = cgroups.oom_kills()  # read once: a kill between two reads would go unsaid
        if kills <= self._oom_seen:
            return ""
        self._oom_seen = kills
        return (
            "A process of this cell was stopped: all your processes together needed more "
            f"than the {self.settings.kernel_memory_mb} MB of memory each student may use."
        )

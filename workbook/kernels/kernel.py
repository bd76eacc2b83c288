"""One Jupyter kernel per signed-in student: run cells like a notebook, capture their outputs.

A :class:`StudentKernel` is a :class:`workbook.kernels.process.KernelProcess` (the process,
started and stopped there) that runs code over its connection: :meth:`StudentKernel.execute`
returns nbformat v4 outputs (collected by :class:`workbook.kernels.collector.Collector`) and a
plain-words message when the cell timed out, failed or killed the kernel;
:meth:`StudentKernel.inspect` runs a check's snippet silently and returns its value.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from workbook.kernels.cell_clock import WALL_BACKSTOP_FACTOR, CellClock
from workbook.kernels.collector import Collector, error_output
from workbook.kernels.errors import KernelError
from workbook.kernels.notices import cell_error_message, over_limit, with_truncation_note
from workbook.kernels.process import KernelProcess
from workbook.kernels.result import (
    INSPECT_EXPRESSION,
    ExecutionResult,
    Status,
    StopReason,
    inspection_value,
)

__all__ = ["StudentKernel"]

_INTERRUPT_GRACE_S = 5.0
_POLL_S = 0.25


class StudentKernel(KernelProcess):
    """One student's kernel: cells and checks run over its process's connection.

    Args:
        user_id: the student's id (used in messages and folder names).
        settings: limits and folders.
        cwd: the student's private working folder (created if missing).
        extra_env: environment variables added for the kernel (e.g. ``LM_ENGINE_CACHE``).

    Every public method holds the kernel's lock, so two browser tabs of one student run
    their cells one after the other.
    """

    # ----------------------------------------------------------------- running code
    def _cell_running(self) -> contextlib.AbstractContextManager[None]:
        """Tell the watchdog a cell runs: its processes may use the CPU meanwhile."""
        if self._guard is None:
            return contextlib.nullcontext()
        return self._guard.running_cell()

    def _interrupt(self) -> None:
        assert self._client is not None
        msg = self._client.session.msg("interrupt_request", content={})
        self._client.control_channel.send(msg)

    def _run(
        self, code: str, timeout: float | None, *, silent: bool, expressions: dict[str, str]
    ) -> tuple[Collector, dict | None, Status, StopReason | None]:
        """Send one execute request; collect outputs until the kernel is idle again.

        The limit counts the time the cell has had (:class:`workbook.kernels.cell_clock.CellClock`:
        wall time less the time the kernel waited for a CPU), so a busy server does not cut
        a cell off; ``WALL_BACKSTOP_FACTOR`` times the limit in plain wall time is the
        backstop for a server so overloaded that a cell never gets to finish.

        Returns the collected outputs, the execute_reply content (``None`` if none came), the
        status: ``ok``/``error`` from the reply, ``timeout`` if it had to be interrupted
        (and did stop), ``died`` if the process ended or ignored the interrupt; and, when it
        was interrupted, which limit it crossed.
        """
        if not self.is_alive() or self._client is None:
            self.start()
        client = self._client
        assert client is not None
        limit = float(self.settings.cell_timeout_s if timeout is None else timeout)
        msg_id = client.execute(
            code,
            silent=silent,
            store_history=not silent,
            user_expressions=expressions,
            allow_stdin=False,
        )
        clock = CellClock(self._kernel_pid)
        collector = Collector(self.settings.cell_max_output_kb * 1024)
        stopped_by: StopReason | None = None
        interrupted_at = 0.0
        idle = False
        while not idle:
            if stopped_by is None:
                if clock.own() > limit:
                    stopped_by = "own"
                elif clock.wall() > limit * WALL_BACKSTOP_FACTOR:
                    stopped_by = "wall"
                if stopped_by is not None:
                    self._interrupt()
                    interrupted_at = time.monotonic()
            elif time.monotonic() - interrupted_at > _INTERRUPT_GRACE_S:
                return collector, None, "died", stopped_by  # ignored the interrupt
            if not self.is_alive():
                return collector, None, "died", stopped_by
            try:
                msg = client.get_iopub_msg(timeout=_POLL_S)
            except Exception:  # noqa: BLE001 - queue.Empty: nothing yet, poll again
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status":
                idle = msg["content"].get("execution_state") == "idle"
            else:
                collector.add(msg)
        reply = None
        reply_deadline = time.monotonic() + 10
        while time.monotonic() < reply_deadline and self.is_alive():
            try:
                shell_msg = client.get_shell_msg(timeout=_POLL_S)
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
            if shell_msg.get("parent_header", {}).get("msg_id") == msg_id:
                reply = shell_msg["content"]
                break
        if stopped_by is not None:
            return collector, reply, "timeout", stopped_by
        if reply is None:
            return collector, None, "died" if not self.is_alive() else "error", None
        return collector, reply, "ok" if reply.get("status") == "ok" else "error", None

    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Run one cell like a notebook does (numbered, in history, outputs captured).

        Args:
            code: the cell's source.
            timeout: seconds before the cell is interrupted (default: the settings' limit).

        Returns:
            The outputs and a status; a cell that ran too long is interrupted (and if it does
            not stop, the kernel is restarted); a crashed kernel is restarted. Neither raises.

        Raises:
            KernelDied: the kernel could not be (re)started at all.
        """
        with self.lock:
            limit = self.settings.cell_timeout_s if timeout is None else timeout
            if not self.is_alive():
                self.start()  # records why the old one stopped in pending_notice
            try:
                with self._cell_running():
                    collector, reply, status, stopped_by = self._run(
                        code, timeout, silent=False, expressions={}
                    )
            finally:
                self.last_used = time.monotonic()
            notice, self.pending_notice = self.pending_notice, ""
            cgroups = self._cgroups
            if cgroups is not None and self.is_alive() and cgroups.oom_kills() > self._oom_seen:
                self._oom_seen = cgroups.oom_kills()
                notice = (
                    f"{notice} A process of this cell was stopped: all your processes "
                    f"together needed more than the {self.settings.kernel_memory_mb} MB of "
                    "memory each student may use."
                ).strip()
            count = collector.execution_count
            if reply is not None and reply.get("execution_count") is not None:
                count = reply["execution_count"]
            message = ""
            if status == "error":
                message = cell_error_message(self.settings, error_output(collector, reply))
            elif status == "timeout":
                message = (
                    f"{over_limit(stopped_by, limit)} and was interrupted. Variables set "
                    "before the interruption are kept."
                )
            elif status == "died":
                if self.is_alive():
                    message = (
                        f"{over_limit(stopped_by, limit)} and did not stop when interrupted, "
                        "so your kernel was restarted. Run the cells above again."
                    )
                    status = "timeout"
                else:
                    message = self._death_notice(while_idle=False)
                self.start()
                self.pending_notice = ""  # told just now, in this run's message
            if collector.truncated:
                message = with_truncation_note(message, self.settings)
            if notice:
                message = f"{notice} {message}".strip()
            return ExecutionResult(
                outputs=json.loads(json.dumps(collector.outputs)),
                execution_count=count,
                status=status,
                message=message,
            )

    def inspect(self, code: str, timeout: float | None = None) -> Any:
        """Run ``code`` silently and return the JSON value it binds to ``__workbook_result__``.

        Nothing is numbered, stored in history or shown to the student.

        Raises:
            KernelError: the snippet failed (the message is the kernel's traceback text),
                did not bind the result, or timed out.
        """
        with self.lock:
            try:
                with self._cell_running():
                    _, reply, status, _ = self._run(
                        code, timeout, silent=True, expressions={"r": INSPECT_EXPRESSION}
                    )
            finally:
                self.last_used = time.monotonic()
            if status in ("timeout", "died"):
                if not self.is_alive() or status == "died":
                    self.start()
                raise KernelError(f"The check did not finish in time ({status}).")
            assert reply is not None
            return inspection_value(reply)

"""The one run loop of every kernel: send a cell, collect its outputs, keep its time limit.

:class:`CellRunner` implements :meth:`~CellRunner.execute` and :meth:`~CellRunner.inspect`
of the :class:`workbook.kernels.interface.Kernel` protocol once, above an abstract message
source, the way jupyter_server's gateway client is jupyter_client's kernel client with other
channels. What it does for every kernel:

- the cell clock (:class:`workbook.kernels.cell_clock.CellClock`) and the time limit: past
  it, the cell is interrupted; a cell that ignores the interrupt for
  :data:`INTERRUPT_GRACE_S` gets a fresh kernel;
- the output cap (:class:`workbook.kernels.collector.Collector`);
- the student's words (:mod:`workbook.kernels.notices`): a limit, a crash, a cut-off output.

A transport (:class:`workbook.kernels.kernel.StudentKernel` over ZeroMQ,
:class:`workbook.kernels.gateway.GatewayKernel` over a WebSocket) supplies the hooks below
(``_ready_for_run``, ``_send_execute``, ``_receive``, ``_died``, ``_replace_kernel``...):
how a kernel is made ready, how messages go out and come in, how it is replaced.
"""

from __future__ import annotations

import contextlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from workbook.config import Settings
from workbook.kernels.cell_clock import WALL_BACKSTOP_FACTOR, CellClock
from workbook.kernels.collector import Collector, error_output
from workbook.kernels.errors import KernelError
from workbook.kernels.notices import (
    cell_error_message,
    death_notice,
    over_limit,
    with_truncation_note,
)
from workbook.kernels.result import (
    INSPECT_EXPRESSION,
    ExecutionResult,
    Status,
    StopReason,
    inspection_value,
)

__all__ = ["INTERRUPT_GRACE_S", "MAX_MESSAGE_BYTES", "POLL_S", "CellRunner", "ChannelClosed"]

# How long a cell may ignore an interrupt before its kernel is replaced.
INTERRUPT_GRACE_S = 5.0
# How often the loop looks at the clock while waiting for a message.
POLL_S = 0.25
# How long the execute_reply may take once the kernel went idle.
_REPLY_WAIT_S = 10.0
# No single message from a kernel may be larger, whatever carries it: past this, the
# connection is dropped instead of buffering, so a student printing gigabytes at once cannot
# grow the app's memory.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ChannelClosed(Exception):
    """The connection ended: no more messages will come on that channel (internal)."""


class CellRunner(ABC):
    """Runs cells and checks over a transport's channels; a kernel class mixes it in first.

    The class using it provides ``settings``, ``lock``, ``last_used``, ``pending_notice``,
    ``is_alive()`` and ``stop_reason()`` (the :class:`workbook.kernels.interface.Kernel`
    protocol) and the hooks below.
    """

    settings: Settings
    lock: Any
    last_used: float
    pending_notice: str
    # Which limit a cell crosses when its clock runs out: "own" when the clock deducts the
    # time the kernel waited for a CPU, "plain" when it is wall time only.
    own_limit: ClassVar[StopReason] = "own"

    # ----------------------------------------------------------------- transport hooks
    @abstractmethod
    def is_alive(self) -> bool: ...

    @abstractmethod
    def stop_reason(self) -> str: ...

    @abstractmethod
    def _ready_for_run(self) -> None:
        """Make sure a kernel runs and is connected (start or reconnect it)."""

    @abstractmethod
    def _send_execute(self, content: Mapping[str, Any]) -> str:
        """Send an ``execute_request`` with ``content``; return its ``msg_id``."""

    @abstractmethod
    def _receive(self, channel: str, timeout: float) -> dict | None:
        """The next message on ``channel`` (``shell`` or ``iopub``), ``None`` after ``timeout``.

        Raises:
            ChannelClosed: the connection ended and nothing more is queued.
        """

    @abstractmethod
    def _died(self) -> bool:
        """Whether the kernel is known to have died (crashed, killed, reported dead)."""

    @abstractmethod
    def _replace_kernel(self, *, told: bool) -> None:
        """A fresh kernel in place of one that died or ignored an interrupt.

        Args:
            told: the student reads why in this run's message (no notice for the next one).
        """

    @abstractmethod
    def interrupt(self) -> None: ...

    def _cell_clock(self) -> CellClock:
        """The clock of one cell (wall time unless the transport can see CPU waits)."""
        return CellClock(None)

    def _cell_running(self) -> contextlib.AbstractContextManager[None]:
        """Held while a cell runs (a local watchdog lets its processes use the CPU)."""
        return contextlib.nullcontext()

    def _interrupt_cell(self) -> None:
        """Interrupt the cell over its limit (a transport may word a failure its own way)."""
        self.interrupt()

    def _connection_cut(self) -> Exception:
        """What to raise when the connection ended while a cell ran."""
        return KernelError("The connection to the kernel ended while this cell ran.")

    def _limit_notice(self) -> str:
        """Words about a limit that stopped part of a cell (e.g. one process killed)."""
        return ""

    def _error_message(self, error: Mapping[str, Any] | None) -> str:
        """The student's message for a cell that failed (``""``: their traceback says it)."""
        return cell_error_message(self.settings, error)

    # ----------------------------------------------------------------- the loop
    def _run(
        self, code: str, timeout: float | None, *, silent: bool, expressions: dict[str, str]
    ) -> tuple[Collector, dict | None, Status, StopReason | None]:
        """Send one execute request; collect outputs until the kernel is idle again.

        The limit counts the time the cell has had (:meth:`_cell_clock`); for a clock that
        deducts CPU waits, ``WALL_BACKSTOP_FACTOR`` times the limit in plain wall time is the
        backstop for a server so overloaded that a cell never gets to finish.

        Returns:
            The collected outputs, the execute_reply content (``None`` if none came), the
            status (``ok``/``error`` from the reply, ``timeout`` if it was interrupted and
            stopped, ``died`` if the kernel died or ignored the interrupt) and, when it was
            interrupted, which limit it crossed.
        """
        self._ready_for_run()
        limit = float(self.settings.cell_timeout_s if timeout is None else timeout)
        with self._cell_running():
            msg_id = self._send_execute(
                {
                    "code": code,
                    "silent": silent,
                    "store_history": not silent,
                    "user_expressions": expressions,
                    "allow_stdin": False,
                    "stop_on_error": True,
                }
            )
            clock = self._cell_clock()
            collector = Collector(self.settings.cell_max_output_kb * 1024)
            stopped_by: StopReason | None = None
            interrupted_at = 0.0
            idle = False
            while not idle:
                if stopped_by is None:
                    if clock.own() > limit:
                        stopped_by = self.own_limit
                    elif clock.wall() > limit * WALL_BACKSTOP_FACTOR:
                        stopped_by = "wall"
                    if stopped_by is not None:
                        self._interrupt_cell()
                        interrupted_at = time.monotonic()
                elif time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
                    return collector, None, "died", stopped_by  # ignored the interrupt
                if self._died():
                    return collector, None, "died", stopped_by
                try:
                    msg = self._receive("iopub", POLL_S)
                except ChannelClosed:
                    raise self._connection_cut() from None
                if msg is None or msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "status":
                    idle = msg["content"].get("execution_state") == "idle"
                else:
                    collector.add(msg)
            reply = self._reply(msg_id)
        if stopped_by is not None:
            return collector, reply, "timeout", stopped_by
        if reply is None:
            return collector, None, "died" if self._died() else "error", None
        return collector, reply, "ok" if reply.get("status") == "ok" else "error", None

    def _reply(self, msg_id: str) -> dict | None:
        """The execute_reply's content for ``msg_id``, or ``None`` if none comes."""
        deadline = time.monotonic() + _REPLY_WAIT_S
        while time.monotonic() < deadline and not self._died():
            try:
                msg = self._receive("shell", POLL_S)
            except ChannelClosed:
                return None
            if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg["content"]
        return None

    # ----------------------------------------------------------------- the protocol
    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Run one cell like a notebook does (numbered, in history, outputs captured).

        Args:
            code: the cell's source.
            timeout: seconds before the cell is interrupted (default: the settings' limit).

        Returns:
            The outputs and a status; a cell that ran too long is interrupted (and if it does
            not stop, the kernel is replaced); a crashed kernel is replaced. Neither raises.

        Raises:
            KernelDied: the kernel could not be (re)started at all (for a gateway kernel,
                :class:`~workbook.kernels.gateway_protocol.GatewayUnavailable` when the
                gateway cannot be reached).
        """
        with self.lock:
            limit = self.settings.cell_timeout_s if timeout is None else timeout
            try:
                collector, reply, status, stopped_by = self._run(
                    code, timeout, silent=False, expressions={}
                )
            finally:
                self.last_used = time.monotonic()
            notice, self.pending_notice = self.pending_notice, ""
            # Read before a replacement kernel resets what the limits saw.
            limit_notice = self._limit_notice()
            count = collector.execution_count
            if reply is not None and reply.get("execution_count") is not None:
                count = reply["execution_count"]
            message = ""
            if status == "error":
                message = self._error_message(error_output(collector, reply))
            elif status == "timeout":
                message = (
                    f"{over_limit(stopped_by, limit)} and was interrupted. Variables set "
                    "before the interruption are kept."
                )
            elif status == "died":
                if not self._died():
                    why = f"{over_limit(stopped_by, limit)} and did not stop when interrupted"
                    message = f"{why}, so your kernel was restarted. Run the cells above again."
                    why += "."
                    status = "timeout"
                else:
                    reason = self.stop_reason()
                    message = death_notice(self.settings, reason, while_idle=False)
                    why = death_notice(self.settings, reason, while_idle=False, restarted=False)
                message = self._replaced(message, why)
            if collector.truncated:
                message = with_truncation_note(message, self.settings)
            parts = (notice, limit_notice, message)
            return ExecutionResult(
                outputs=json.loads(json.dumps(collector.outputs)),
                execution_count=count,
                status=status,
                message=" ".join(part for part in parts if part),
            )

    def _replaced(self, message: str, why: str) -> str:
        """Replace the kernel that died mid-cell; the words the student reads in this result.

        Args:
            message: what the result says (why the kernel stopped, and that it restarted).
            why: why it stopped, alone: said when no fresh kernel can start.

        Returns:
            ``message``, and what the fresh kernel's start found (a folder still over its
            quota), so that neither is lost with the replacement.

        Raises:
            KernelError: as from ``_replace_kernel``, its message led by ``why``.
        """
        try:
            self._replace_kernel(told=True)
        except KernelError as exc:
            self.pending_notice = ""  # told now; the next run starts a kernel afresh
            exc.args = (f"{why} {exc}", *exc.args[1:])
            raise
        fresh, self.pending_notice = self.pending_notice, ""
        return " ".join(part for part in (message, fresh) if part)

    def inspect(self, code: str, timeout: float | None = None) -> Any:
        """Run ``code`` silently and return the JSON value it binds to ``__workbook_result__``.

        Nothing is numbered, stored in history or shown to the student.

        Raises:
            KernelError: the snippet failed (the message is the kernel's traceback text),
                did not bind the result, or timed out.
        """
        with self.lock:
            try:
                _, reply, status, _ = self._run(
                    code, timeout, silent=True, expressions={"r": INSPECT_EXPRESSION}
                )
            finally:
                self.last_used = time.monotonic()
            if status in ("timeout", "died"):
                if status == "died" or self._died():
                    self._replace_kernel(told=False)
                raise KernelError(f"The check did not finish in time ({status}).")
            assert reply is not None
            return inspection_value(reply)

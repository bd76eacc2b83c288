"""Student kernels on a Jupyter Kernel Gateway or Enterprise Gateway (``WORKBOOK_KERNEL_GATEWAY``).

A :class:`GatewayKernel` offers exactly what a local :class:`workbook.kernels.kernel.StudentKernel`
offers (``execute``, ``inspect``, ``start``, ``restart``, ``shutdown``, ``is_alive``, ``lock``,
``last_used``), so Run, Run all above, the checks, timeouts, idle culling and the students'
messages work unchanged. Besides the transport, one thing differs: a cell's time limit is
plain wall time from when the cell is sent (the app cannot see how long a kernel on another
host waited for a CPU, so there is no :class:`~workbook.kernels.cell_clock.CellClock`
deduction and no separate backstop). The transport:

- **REST** (``/api/kernels``) starts, interrupts, restarts and shuts kernels down.
- **WebSocket** (``/api/kernels/{id}/channels``) carries the Jupyter messages, in the
  gateway's JSON framing (one message per text frame, with a ``channel`` field). Messages are
  built by ``jupyter_client``'s :class:`~jupyter_client.session.Session` and iopub messages
  become nbformat outputs through the same :class:`~workbook.kernels.collector.Collector`
  local kernels use.

Why not ``jupyter_server``'s ``GatewayClient``: it is an asyncio client configured as a
process-wide singleton for a Jupyter server, and it would put all of ``jupyter_server`` (and
``nbconvert``) into the app. The protocol we need is five REST calls and one WebSocket, so the
adapter in :mod:`workbook.kernels.gateway_protocol` uses ``jupyter_client`` for the message format, the
``websockets`` sync client (already a dependency of Streamlit) for the socket and ``urllib`` for
REST.

Starting, reconnecting, restarting and stopping the kernel is
:class:`workbook.kernels.gateway_process.GatewayProcess`'s job; this module runs cells.

The kernel's process lives on the gateway host, so what the app can observe differs a little
from local kernels, and is mapped onto the same outcomes:

- a kernel that died shows as an iopub status ``restarting`` (the gateway restarts it) or
  ``dead``: the cell's result is ``died`` and a fresh kernel is started;
- a kernel lost while idle (it crashed, or the gateway restarted) is replaced on the next run,
  and that run's message says the variables are gone;
- a gateway that cannot be reached raises :class:`GatewayUnavailable`, whose message tells the
  student that their code is saved and to try again in a minute.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from workbook.kernels.collector import Collector, error_output
from workbook.kernels.errors import KernelError
from workbook.kernels.gateway_process import POLL_S, GatewayProcess
from workbook.kernels.gateway_protocol import UNREACHABLE, GatewayUnavailable, SocketClosed
from workbook.kernels.notices import (
    CUT_OFF,
    cell_error_message,
    death_notice,
    model_missing_message,
    with_truncation_note,
)
from workbook.kernels.result import INSPECT_EXPRESSION, ExecutionResult, Status, inspection_value

__all__ = ["GatewayKernel", "GatewayUnavailable", "UNREACHABLE"]

# As for local kernels: how long a cell may ignore an interrupt before its kernel is replaced.
_INTERRUPT_GRACE_S = 5.0


class GatewayKernel(GatewayProcess):
    """One student's kernel on a Jupyter Kernel Gateway / Enterprise Gateway.

    Args:
        user_id: the student's id, sent to the gateway as ``KERNEL_USERNAME`` and
            ``KERNEL_WORKBOOK_USER`` (the kernelspec's launcher makes it a private folder).
        settings: the gateway's URL, token and kernel name, and the cell limits.

    Every public method holds the kernel's lock, so two browser tabs of one student run
    their cells one after the other.
    """

    # ----------------------------------------------------------------- running code
    def _interrupt(self) -> None:
        assert self._kernel_id is not None
        self._rest.call("POST", f"/api/kernels/{urllib.parse.quote(self._kernel_id)}/interrupt", {})

    def _run(
        self, code: str, timeout: float | None, *, silent: bool, expressions: dict[str, str]
    ) -> tuple[Collector, dict | None, Status]:
        """Send one execute request; collect outputs until the kernel is idle again.

        Returns the collected outputs, the execute_reply content (``None`` if none came) and
        the status, as for local kernels: ``ok``/``error`` from the reply, ``timeout`` if it
        was interrupted (and stopped), ``died`` if the kernel died or ignored the interrupt.

        Raises:
            GatewayUnavailable: the gateway went away (before or during the run).
        """
        self._ensure_kernel()
        channels = self._channels
        assert channels is not None
        limit = float(self.settings.cell_timeout_s if timeout is None else timeout)
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": expressions,
            "allow_stdin": False,
            "stop_on_error": True,
        }
        try:
            msg_id = channels.send("shell", "execute_request", content)
        except SocketClosed:
            raise GatewayUnavailable(UNREACHABLE) from None
        collector = Collector(self.settings.cell_max_output_kb * 1024)
        deadline = time.monotonic() + limit
        interrupted = False
        idle = False
        while not idle:
            now = time.monotonic()
            if now > deadline:
                if interrupted:
                    return collector, None, "died"  # ignored the interrupt
                interrupted = True
                try:
                    self._interrupt()
                except GatewayUnavailable:
                    raise GatewayUnavailable(CUT_OFF) from None
                deadline = now + _INTERRUPT_GRACE_S
            if channels.died.is_set():
                return collector, None, "died"
            msg = channels.get("iopub", POLL_S)
            if msg is None:
                if channels.closed.is_set() and channels.queues["iopub"].empty():
                    raise GatewayUnavailable(CUT_OFF)
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status":
                idle = msg["content"].get("execution_state") == "idle"
            else:
                collector.add(msg)
        reply = None
        reply_deadline = time.monotonic() + 10
        while time.monotonic() < reply_deadline and not channels.died.is_set():
            shell_msg = channels.get("shell", POLL_S)
            if shell_msg is None:
                if channels.closed.is_set() and channels.queues["shell"].empty():
                    break
                continue
            if shell_msg.get("parent_header", {}).get("msg_id") == msg_id:
                reply = shell_msg["content"]
                break
        if interrupted:
            return collector, reply, "timeout"
        if reply is None:
            return collector, None, "died" if channels.died.is_set() else "error"
        return collector, reply, "ok" if reply.get("status") == "ok" else "error"

    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Run one cell like a notebook does (numbered, in history, outputs captured).

        Args:
            code: the cell's source.
            timeout: seconds before the cell is interrupted (default: the settings' limit).

        Returns:
            The outputs and a status, exactly as a local kernel returns them; a kernel that
            died or ignored an interrupt is replaced by a new one on the gateway.

        Raises:
            GatewayUnavailable: the gateway could not be reached (the message says so).
            KernelDied: no kernel could be started.
        """
        with self.lock:
            limit = self.settings.cell_timeout_s if timeout is None else timeout
            try:
                collector, reply, status = self._run(code, timeout, silent=False, expressions={})
            finally:
                self.last_used = time.monotonic()
            notice, self._notice = self._notice, ""
            count = collector.execution_count
            if reply is not None and reply.get("execution_count") is not None:
                count = reply["execution_count"]
            message = ""
            if status == "error":
                error = error_output(collector, reply)
                message = cell_error_message(self.settings, error)
                if not message and error is not None:
                    message = model_missing_message(error)  # the server's set-up, not theirs
            elif status == "timeout":
                message = (
                    f"This cell ran longer than {limit:g} s and was interrupted. Variables "
                    "set before the interruption are kept."
                )
            elif status == "died":
                if not self._channels or not self._channels.died.is_set():
                    message = (
                        f"This cell ran longer than {limit:g} s and did not stop when "
                        "interrupted, so your kernel was restarted. Run the cells above again."
                    )
                    status = "timeout"
                else:
                    message = death_notice(self.settings, "", while_idle=False)
                self._start_fresh()
            if collector.truncated:
                message = with_truncation_note(message, self.settings)
            return ExecutionResult(
                outputs=json.loads(json.dumps(collector.outputs)),
                execution_count=count,
                status=status,
                message=" ".join(part for part in (notice, message) if part),
            )

    def inspect(self, code: str, timeout: float | None = None) -> Any:
        """Run ``code`` silently and return the JSON value it binds to ``__workbook_result__``.

        Nothing is numbered, stored in history or shown to the student.

        Raises:
            KernelError: the snippet failed (the message is the kernel's traceback text),
                did not bind the result, or timed out; :class:`GatewayUnavailable` when the
                gateway could not be reached.
        """
        with self.lock:
            try:
                _, reply, status = self._run(
                    code, timeout, silent=True, expressions={"r": INSPECT_EXPRESSION}
                )
            finally:
                self.last_used = time.monotonic()
            if status in ("timeout", "died"):
                if status == "died":
                    self._start_fresh()
                raise KernelError(f"The check did not finish in time ({status}).")
            assert reply is not None
            return inspection_value(reply)

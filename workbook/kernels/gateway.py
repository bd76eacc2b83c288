"""Student kernels on a Jupyter Kernel Gateway or Enterprise Gateway (``WORKBOOK_KERNEL_GATEWAY``).

A :class:`GatewayKernel` satisfies the same :class:`workbook.kernels.interface.Kernel`
protocol as a local :class:`workbook.kernels.kernel.StudentKernel`, and runs its cells and
checks through the same run loop (:class:`workbook.kernels.run_loop.CellRunner`), so Run, Run
all above, the checks, timeouts, output caps, idle culling and the students' messages are the
same code. Only the transport differs, and one consequence of it: a cell's time limit is
plain wall time from when the cell is sent (the app cannot see how long a kernel on another
host waited for a CPU, so the clock deducts nothing). The transport:

- **REST** (``/api/kernels``) starts, interrupts, restarts and shuts kernels down.
- **WebSocket** (``/api/kernels/{id}/channels``) carries the Jupyter messages, in the
  gateway's JSON framing (one message per text frame, with a ``channel`` field); a frame
  over :data:`workbook.kernels.run_loop.MAX_MESSAGE_BYTES` closes the socket, as a message
  over that size closes a local kernel's connection. Messages are built by
  ``jupyter_client``'s :class:`~jupyter_client.session.Session`.

Why not ``jupyter_server``'s ``GatewayClient``: it is an asyncio client configured as a
process-wide singleton for a Jupyter server, and it would put all of ``jupyter_server`` (and
``nbconvert``) into the app. The protocol we need is five REST calls and one WebSocket, so the
adapter in :mod:`workbook.kernels.gateway_protocol` uses ``jupyter_client`` for the message format, the
``websockets`` sync client (already a dependency of Streamlit) for the socket and ``urllib`` for
REST.

Starting, reconnecting, restarting and stopping the kernel is
:class:`workbook.kernels.gateway_process.GatewayProcess`'s job; this module carries a run's
messages. What the app can observe of a kernel on another host is mapped onto the local
outcomes:

- a kernel that died shows as an iopub status ``restarting`` (the gateway restarts it) or
  ``dead``: the cell's result is ``died`` and a fresh kernel is started;
- a kernel lost while idle (it crashed, or the gateway restarted) is replaced on the next run,
  and that run's message says the variables are gone;
- a gateway that cannot be reached raises :class:`GatewayUnavailable`, whose message tells the
  student that their code is saved and to try again in a minute.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

from workbook.kernels.gateway_process import GatewayProcess
from workbook.kernels.gateway_protocol import (
    UNREACHABLE,
    GatewayUnavailable,
    SocketClosed,
)
from workbook.kernels.notices import (
    CUT_OFF,
    cell_error_message,
    message_too_big,
    model_missing_message,
)
from workbook.kernels.result import StopReason
from workbook.kernels.run_loop import MAX_MESSAGE_BYTES, CellRunner, ChannelClosed

__all__ = ["UNREACHABLE", "GatewayKernel", "GatewayUnavailable"]


class GatewayKernel(GatewayProcess, CellRunner):
    """One student's kernel on a Jupyter Kernel Gateway / Enterprise Gateway.

    Args:
        user_id: the student's id, sent to the gateway as ``KERNEL_USERNAME`` and
            ``KERNEL_WORKBOOK_USER`` (the kernelspec's launcher makes it a private folder).
        settings: the gateway's URL, token and kernel name, and the cell limits.

    Every public method holds the kernel's lock, so two browser tabs of one student run
    their cells one after the other.
    """

    # The clock is wall time only: the limit is plain, nothing deducted.
    own_limit: ClassVar[StopReason] = "plain"

    def interrupt(self) -> None:
        """Ask the running cell to stop, through the gateway's REST API.

        Raises:
            GatewayUnavailable: the gateway cannot be reached.
        """
        kernel_id = self._kernel_id
        if kernel_id is not None:
            self._rest.call("POST", f"/api/kernels/{urllib.parse.quote(kernel_id)}/interrupt", {})

    # ----------------------------------------------------------------- run loop hooks
    def _ready_for_run(self) -> None:
        self._ensure_kernel()

    def _send_execute(self, content: Mapping[str, Any]) -> str:
        assert self._channels is not None
        try:
            return self._channels.send("shell", "execute_request", dict(content))
        except SocketClosed:
            raise GatewayUnavailable(UNREACHABLE) from None

    def _receive(self, channel: str, timeout: float) -> dict | None:
        channels = self._channels
        assert channels is not None
        msg = channels.get(channel, timeout)
        if msg is None and channels.closed.is_set() and channels.queues[channel].empty():
            raise ChannelClosed
        return msg

    def _died(self) -> bool:
        return self._channels is not None and self._channels.died.is_set()

    def _replace_kernel(self, *, told: bool) -> None:
        self._start_fresh()  # says nothing by itself: the run's own message does

    def _interrupt_cell(self) -> None:
        try:
            self.interrupt()
        except GatewayUnavailable:
            raise GatewayUnavailable(CUT_OFF) from None

    def _connection_cut(self) -> Exception:
        if self._channels is not None and self._channels.too_big:
            return GatewayUnavailable(message_too_big(MAX_MESSAGE_BYTES))
        return GatewayUnavailable(CUT_OFF)

    def _error_message(self, error: Mapping[str, Any] | None) -> str:
        message = cell_error_message(self.settings, error)
        if not message and error is not None:
            message = model_missing_message(dict(error))  # the server's set-up, not theirs
        return message

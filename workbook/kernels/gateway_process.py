"""A gateway kernel's lifetime: its process lives on the gateway host, run over REST.

:class:`GatewayProcess` asks the gateway (``/api/kernels``) for a kernel, connects its
WebSocket (:class:`workbook.kernels.gateway_protocol.Channels`), waits until it answers,
reconnects or replaces it when the socket dropped, restarts and shuts it down. A kernel lost
while idle is replaced, and the next run says so. Running cells over the socket is
:class:`workbook.kernels.gateway.GatewayKernel`'s job.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from pathlib import Path

from jupyter_client.session import Session

from workbook.config import Settings
from workbook.kernels.errors import KernelDied, KernelError, ServerBusy
from workbook.kernels.gateway_protocol import (
    UNREACHABLE,
    Channels,
    GatewayUnavailable,
    Rest,
    SocketClosed,
    SocketRefused,
    reason,
)
from workbook.kernels.notices import LOST_WHILE_IDLE, SERVER_BUSY, idle_cull_notice
from workbook.kernels.run_loop import POLL_S

__all__ = ["GatewayProcess"]

# Starting a kernel on Kubernetes means scheduling a pod (and maybe pulling its image).
_START_TIMEOUT_S = 120.0


class GatewayProcess:
    """One student's kernel on a Jupyter Kernel Gateway / Enterprise Gateway, and its socket.

    Args:
        user_id: the student's id, sent to the gateway as ``KERNEL_USERNAME`` and
            ``KERNEL_WORKBOOK_USER`` (the kernelspec's launcher makes it a private folder).
        settings: the gateway's URL, token and kernel name, and the cell limits.

    Every public method holds the kernel's lock, so a start, a restart and a run of one
    student's kernel never overlap.
    """

    def __init__(self, user_id: str, settings: Settings) -> None:
        self.user_id = user_id
        self.settings = settings
        self.last_used = time.monotonic()
        self.lock = threading.RLock()
        self._rest = Rest(settings.kernel_gateway, settings.kernel_gateway_token)
        self._kernel_id: str | None = None
        self._channels: Channels | None = None
        # Said with the next run's result (the kernel was replaced, or culled by the pool).
        self.pending_notice = ""
        # How many times a kernel was started or restarted on the gateway: what it was told
        # before (its torch threads, see workbook.kernels.threads) does not hold for the next.
        self.starts = 0

    # ----------------------------------------------------------------- life cycle
    def cull_notice(self, *, idle: bool) -> str:
        """What to tell the student whose kernel the pool is shutting down now."""
        return idle_cull_notice(self.settings) if idle else ""

    @property
    def kernel_id(self) -> str | None:
        """The gateway's id of this student's kernel, if one is running."""
        return self._kernel_id

    @property
    def started(self) -> bool:
        """Whether the gateway gave this student a kernel (running, or lost since)."""
        return self._kernel_id is not None

    def stop_reason(self) -> str:
        """Always ``""``: the kernel's limits are enforced on the gateway's host, out of sight."""
        return ""

    @property
    def pid(self) -> None:
        """No local process: the kernel's memory is the gateway host's to count."""
        return None

    @property
    def home(self) -> None:
        """No folder on this machine: the kernel's folder lives on the gateway's host."""
        return None

    def move_home(self, folder: Path) -> None:
        """Nothing to move here (a gateway pool keeps no spares)."""

    def start(self) -> None:
        """Ask the gateway for a new kernel (dropping the old one) and wait until it answers.

        Raises:
            GatewayUnavailable: the gateway cannot be reached.
            ServerBusy: the gateway refused because it runs as many kernels as it may.
            KernelDied: the gateway refused otherwise, or the kernel did not answer.
        """
        with self.lock:
            # A kernel nobody stopped on purpose is gone: say so with the next result.
            if self._kernel_id is not None and not self.is_alive():
                self.pending_notice = LOST_WHILE_IDLE
            self._start_fresh()

    def _start_fresh(self) -> None:
        self._stop()
        body = {
            "name": self.settings.kernel_gateway_kernel,
            # Sending an env also keeps the gateway's own environment out of the kernel (Kernel
            # Gateway then passes only PATH, KERNEL_* and the kernelspec's env).
            "env": {"KERNEL_USERNAME": self.user_id, "KERNEL_WORKBOOK_USER": self.user_id},
        }
        status, answer = self._rest.call("POST", "/api/kernels", body, timeout=_START_TIMEOUT_S)
        # Kernel and Enterprise Gateway answer 403 when they run as many kernels as they may
        # (a wrong token is 401).
        if status == 403:
            raise ServerBusy(SERVER_BUSY)
        if status == 401:
            raise KernelDied(
                "The kernel server refused the app's credentials, so no kernel can start. "
                "Please tell your instructor (WORKBOOK_KERNEL_GATEWAY_TOKEN)."
            )
        if status not in (200, 201) or not isinstance(answer, dict) or "id" not in answer:
            raise KernelDied(
                f"The kernel server could not start a kernel "
                f"({self.settings.kernel_gateway_kernel!r}: {status} {reason(answer)}). "
                "Please tell your instructor."
            )
        self._kernel_id = answer["id"]
        try:
            self._connect()
            self._wait_ready()
        except _KernelGone:
            self._stop()
            raise KernelDied(
                "The new kernel stopped as soon as it started. Please try again."
            ) from None
        except KernelError:
            self._stop()
            raise
        self.starts += 1
        self.last_used = time.monotonic()

    def _connect(self) -> None:
        assert self._kernel_id is not None
        parts = urllib.parse.urlsplit(self._rest.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path}/api/kernels/{urllib.parse.quote(self._kernel_id)}/channels"
        url = urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))
        session = Session(key=b"", username=self.user_id)
        try:
            self._channels = Channels(url, self._rest.headers(), session)
        except SocketRefused as exc:
            if exc.status == 404:
                raise _KernelGone from exc
            raise KernelDied(
                f"The kernel server refused the connection to the kernel ({exc.status}). "
                "Please tell your instructor."
            ) from exc

    def _wait_ready(self) -> None:
        """Send ``kernel_info_request`` until both of the kernel's answers to one arrive.

        The reply comes on the shell channel; the kernel's busy/idle status for the same
        request comes on iopub. Waiting for the second too is the "nudge": after a restart
        the server's iopub subscription to the new kernel may not be live yet (a ZeroMQ late
        subscriber), and whatever the kernel publishes before it is, a cell's output
        included, is silently lost.
        """
        channels = self._channels
        assert channels is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                msg_id = channels.send("shell", "kernel_info_request", {})
            except SocketClosed:
                raise GatewayUnavailable(UNREACHABLE) from None
            answered: set[str] = set()
            ask_again = time.monotonic() + 2.0
            while time.monotonic() < min(ask_again, deadline):
                if channels.closed.is_set():
                    raise GatewayUnavailable(UNREACHABLE)
                for channel in ("shell", "iopub"):
                    msg = channels.get(channel, POLL_S / 2)
                    if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
                        answered.add(channel)
                if answered == {"shell", "iopub"}:
                    channels.died.clear()  # a restart notice from before it was ready
                    return
        raise KernelDied(
            f"The kernel did not answer within {_START_TIMEOUT_S:.0f} s. Please try again."
        )

    def _stop(self) -> None:
        """Close the socket and ask the gateway to shut the kernel down (best effort)."""
        if self._channels is not None:
            self._channels.close()
            self._channels = None
        if self._kernel_id is not None:
            kernel_id, self._kernel_id = self._kernel_id, None
            # A gateway that is down has lost the kernel anyway.
            with contextlib.suppress(GatewayUnavailable):
                self._rest.call(
                    "DELETE", f"/api/kernels/{urllib.parse.quote(kernel_id)}", timeout=10
                )

    def is_alive(self) -> bool:
        """Whether the student has a kernel that the gateway has not reported dead.

        A dropped connection alone does not count as dead: the next run reconnects, or
        finds out that the kernel is gone and starts a new one.
        """
        channels = self._channels
        return self._kernel_id is not None and channels is not None and not channels.died.is_set()

    def restart(self) -> None:
        """Restart the kernel through the gateway (losing its variables).

        Raises:
            GatewayUnavailable: the gateway cannot be reached.
            KernelDied: the new kernel did not start.
        """
        with self.lock:
            self.pending_notice = ""
            if self._kernel_id is None:
                self._start_fresh()
                return
            path = f"/api/kernels/{urllib.parse.quote(self._kernel_id)}/restart"
            status, _ = self._rest.call("POST", path, {}, timeout=_START_TIMEOUT_S)
            if status != 200:  # e.g. 404: the gateway lost it; a new kernel does as well
                self._start_fresh()
                return
            try:
                if self._channels is None or self._channels.closed.is_set():
                    if self._channels is not None:
                        self._channels.close()
                    self._connect()
                self._wait_ready()
                self.starts += 1
            except (_KernelGone, KernelError):
                self._start_fresh()
            self.last_used = time.monotonic()

    def shutdown(self) -> None:
        """Shut the kernel down on the gateway and close the connection."""
        with self.lock:
            self._stop()

    def _ensure_kernel(self) -> None:
        """Make sure a connected kernel is there before a run.

        Raises:
            GatewayUnavailable: the gateway cannot be reached.
        """
        if not self.is_alive():
            self.start()
            return
        assert self._channels is not None and self._kernel_id is not None
        if not self._channels.closed.is_set():
            return
        # The socket dropped. Is the kernel still there (reconnect, variables kept)?
        status, _ = self._rest.call("GET", f"/api/kernels/{urllib.parse.quote(self._kernel_id)}")
        if status == 200:
            self._channels.close()
            try:
                self._connect()
                self._wait_ready()
                return
            except _KernelGone:
                pass
        self.pending_notice = LOST_WHILE_IDLE
        self._start_fresh()


class _KernelGone(Exception):
    """The gateway no longer knows the kernel (internal)."""

"""Student kernels on a Jupyter Kernel Gateway or Enterprise Gateway (``WORKBOOK_KERNEL_GATEWAY``).

A :class:`GatewayKernel` offers exactly what a local :class:`workbook.kernels.kernel.StudentKernel`
offers (``execute``, ``inspect``, ``start``, ``restart``, ``shutdown``, ``is_alive``, ``lock``,
``last_used``), so Run, Run all above, the checks, timeouts, idle culling and the students'
messages work unchanged. Only the transport differs:

- **REST** (``/api/kernels``) starts, interrupts, restarts and shuts kernels down.
- **WebSocket** (``/api/kernels/{id}/channels``) carries the Jupyter messages, in the
  gateway's JSON framing (one message per text frame, with a ``channel`` field). Messages are
  built by ``jupyter_client``'s :class:`~jupyter_client.session.Session` and iopub messages
  become nbformat outputs through the same ``Collector`` local kernels use.

Why not ``jupyter_server``'s ``GatewayClient``: it is an asyncio client configured as a
process-wide singleton for a Jupyter server, and it would put all of ``jupyter_server`` (and
``nbconvert``) into the app. The protocol we need is five REST calls and one WebSocket, so the
adapter in :mod:`workbook.kernels.gateway_protocol` uses ``jupyter_client`` for the message format, the
``websockets`` sync client (already a dependency of Streamlit) for the socket and ``urllib`` for
REST.

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

import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from jupyter_client.session import Session

from workbook.config import Settings
from workbook.kernels.collector import Collector, error_output
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
from workbook.kernels.notices import idle_cull_notice, with_truncation_note
from workbook.kernels.result import (
    INSPECT_EXPRESSION,
    ExecutionResult,
    Status,
    inspection_value,
    strip_ansi,
)

__all__ = ["GatewayKernel", "GatewayUnavailable", "UNREACHABLE"]

# As for local kernels: how long a cell may ignore an interrupt before its kernel is replaced.
_INTERRUPT_GRACE_S = 5.0
_POLL_S = 0.25
# Starting a kernel on Kubernetes means scheduling a pod (and maybe pulling its image).
_START_TIMEOUT_S = 120.0

CUT_OFF = (
    "The connection to the kernel server broke while this cell ran, so its output is lost. "
    "Your code is saved. Try again in a minute; if your variables are gone, use Run all above."
)
LOST_WHILE_IDLE = (
    "Your kernel stopped since your last run (the kernel server restarted or lost it), so this "
    "cell ran in a new kernel and variables from earlier cells are gone. Run the cells above "
    "again (Run all above)."
)
MODEL_MISSING = (
    "The course's model is not available on the kernel server ({why}). Your code is fine: "
    "tell your instructor, who can find the fix in docs/deployment.md."
)


class GatewayKernel:
    """One student's kernel on a Jupyter Kernel Gateway / Enterprise Gateway.

    Args:
        user_id: the student's id, sent to the gateway as ``KERNEL_USERNAME`` and
            ``KERNEL_WORKBOOK_USER`` (the kernelspec's launcher makes it a private folder).
        settings: the gateway's URL, token and kernel name, and the cell limits.

    Every public method holds the kernel's lock, so two browser tabs of one student run
    their cells one after the other.
    """

    def __init__(self, user_id: str, settings: Settings) -> None:
        self.user_id = user_id
        self.settings = settings
        self.last_used = time.monotonic()
        self.lock = threading.RLock()
        self._rest = Rest(settings.kernel_gateway, settings.kernel_gateway_token)
        self._kernel_id: str | None = None
        self._channels: Channels | None = None
        self._notice = ""  # said with the next run's result (the kernel was replaced)

    # ----------------------------------------------------------------- life cycle
    @property
    def pending_notice(self) -> str:
        """Said with the next run's result (KernelPool sets it after culling, like locally)."""
        return self._notice

    @pending_notice.setter
    def pending_notice(self, value: str) -> None:
        self._notice = value

    def cull_notice(self, *, idle: bool) -> str:
        """What to tell the student whose kernel the pool is shutting down now."""
        return idle_cull_notice(self.settings) if idle else ""

    @property
    def kernel_id(self) -> str | None:
        """The gateway's id of this student's kernel, if one is running."""
        return self._kernel_id

    @property
    def _proc(self) -> str | None:
        # KernelPool's culler reads ``_proc is None`` as "not started yet" (a local kernel's
        # process handle); for a gateway kernel that is "no kernel id yet".
        return self._kernel_id

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
                self._notice = LOST_WHILE_IDLE
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
            raise ServerBusy(
                "The server is busy: all student kernels are in use. Please try again in a minute."
            )
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
        """Send ``kernel_info_request`` until the kernel answers one."""
        channels = self._channels
        assert channels is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                msg_id = channels.send("shell", "kernel_info_request", {})
            except SocketClosed:
                raise GatewayUnavailable(UNREACHABLE) from None
            ask_again = time.monotonic() + 2.0
            while time.monotonic() < min(ask_again, deadline):
                if channels.closed.is_set():
                    raise GatewayUnavailable(UNREACHABLE)
                msg = channels.get("shell", _POLL_S)
                if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
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
            self._notice = ""
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
        self._notice = LOST_WHILE_IDLE
        self._start_fresh()

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
            msg = channels.get("iopub", _POLL_S)
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
            shell_msg = channels.get("shell", _POLL_S)
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
                message = self._error_message(error)
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
                    message = (
                        "Your kernel stopped unexpectedly (it may have run out of memory or "
                        "crashed) and has been restarted. Run the cells above again."
                    )
                self._start_fresh()
            if collector.truncated:
                message = with_truncation_note(message, self.settings)
            return ExecutionResult(
                outputs=json.loads(json.dumps(collector.outputs)),
                execution_count=count,
                status=status,
                message=" ".join(part for part in (notice, message) if part),
            )

    def _error_message(self, error: dict | None) -> str:
        """Plain words for errors that are the server's limits or set-up, not the student's."""
        if error is None:
            return ""
        ename = error.get("ename", "")
        if ename == "CellCPUTimeExceeded":
            return (
                f"This cell used more than {self.settings.kernel_cell_cpu_s} s of CPU "
                "time and was stopped. Your variables are kept."
            )
        if ename == "MemoryError":
            return (
                f"This cell needed more memory than the {self.settings.kernel_memory_mb} "
                "MB a kernel may use. Your variables are kept."
            )
        return model_missing_message(error)

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


class _KernelGone(Exception):
    """The gateway no longer knows the kernel (internal)."""


def model_missing_message(error: dict) -> str:
    """The student's message when the setup cell cannot load the model on the kernel host.

    Args:
        error: an nbformat ``error`` output.

    Returns:
        :data:`MODEL_MISSING` filled in when the error comes from a kernel host without
        ``lm_engine`` or without a usable model cache, else ``""``.
    """
    ename = error.get("ename", "")
    evalue = error.get("evalue", "")
    trace = strip_ansi("\n".join(error.get("traceback", [])))
    if ename == "ModuleNotFoundError" and "lm_engine" in evalue:
        return MODEL_MISSING.format(why="its kernels cannot import lm_engine")
    if ename == "ModelNotAvailable":
        return MODEL_MISSING.format(why="no model files there")
    # A read-only or missing cache volume: building the cache there fails with an OSError.
    if ename.endswith("Error") and "lm_engine/loaders.py" in trace and _is_os_error(ename):
        return MODEL_MISSING.format(why="its model cache is missing or cannot be read")
    return ""


def _is_os_error(ename: str) -> bool:
    import builtins

    kind = getattr(builtins, ename, None)
    return isinstance(kind, type) and issubclass(kind, OSError)

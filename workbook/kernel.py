"""One Jupyter kernel per signed-in student: run cells like a notebook, capture their outputs.

A :class:`StudentKernel` owns an IPython kernel process (started through
``kernel_launcher.py``, which applies the resource limits, and, in hosted mode, wrapped in
bubblewrap by :mod:`workbook.sandbox`) and a ``jupyter_client`` connection to it over IPC
sockets in a private folder. :meth:`StudentKernel.execute` returns nbformat v4 outputs and a
plain-words message when the cell timed out, failed or killed the kernel.
:class:`KernelPool` hands out one kernel per student, caps how many run at once and shuts
idle ones down.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from workbook import sandbox
from workbook.config import Settings
from workbook.sandbox import KernelError, SandboxUnavailable

__all__ = [
    "ExecutionResult",
    "KernelDied",
    "KernelError",
    "KernelPool",
    "SandboxUnavailable",
    "ServerBusy",
    "StudentKernel",
]

Status = Literal["ok", "error", "timeout", "died"]

_REPO_ROOT = Path(__file__).resolve().parents[1]
_LAUNCHER = Path(__file__).resolve().with_name("kernel_launcher.py")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_INTERRUPT_GRACE_S = 5.0
_START_TIMEOUT_S = 60.0
_POLL_S = 0.25


class ServerBusy(KernelError):
    """Too many kernels are running; the student should try again in a minute."""


class KernelDied(KernelError):
    """The kernel process is gone (crashed, killed, or could not start)."""


@dataclass(frozen=True)
class ExecutionResult:
    """What running one cell produced.

    Attributes:
        outputs: nbformat v4 output dicts (stream, display_data, execute_result, error).
        execution_count: the cell's number, as Jupyter shows ``[n]``; ``None`` if it never ran.
        status: ``"ok"``, ``"error"`` (an exception, shown in ``outputs``), ``"timeout"``
            (interrupted) or ``"died"`` (the kernel crashed and was restarted).
        message: plain words for the student when something went wrong, ``""`` otherwise.
    """

    outputs: list[dict] = field(default_factory=list)
    execution_count: int | None = None
    status: Status = "ok"
    message: str = ""


def strip_ansi(text: str) -> str:
    """Remove the terminal colour codes IPython puts into tracebacks."""
    return _ANSI.sub("", text)


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn(argv: list[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Start a process from one long-lived thread.

    ``bwrap --die-with-parent`` uses PR_SET_PDEATHSIG, which fires when the *thread* that
    forked exits; Streamlit runs each script in a short-lived thread, so kernels are forked
    from this dedicated thread, which lives as long as the app.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="workbook-kernel-spawner")
    return _spawner.submit(subprocess.Popen, argv, **popen_kwargs).result()


class _Collector:
    """Turns iopub messages of one request into nbformat outputs (like nbclient)."""

    def __init__(self) -> None:
        self.outputs: list[dict] = []
        self.execution_count: int | None = None
        self._clear_pending = False
        self._display_index: dict[str, list[int]] = {}

    def _append(self, output: dict) -> None:
        if self._clear_pending:
            self.outputs.clear()
            self._display_index.clear()
            self._clear_pending = False
        self.outputs.append(output)

    def add(self, msg: dict) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "execute_input":
            self.execution_count = content.get("execution_count")
        elif kind == "stream":
            last = self.outputs[-1] if self.outputs and not self._clear_pending else None
            if last and last["output_type"] == "stream" and last["name"] == content["name"]:
                last["text"] += content["text"]  # merge like Jupyter does
            else:
                self._append(
                    {"output_type": "stream", "name": content["name"], "text": content["text"]}
                )
        elif kind in ("display_data", "execute_result"):
            output: dict[str, Any] = {
                "output_type": kind,
                "data": content.get("data", {}),
                "metadata": content.get("metadata", {}),
            }
            if kind == "execute_result":
                output["execution_count"] = content.get("execution_count")
                self.execution_count = content.get("execution_count")
            self._append(output)
            display_id = content.get("transient", {}).get("display_id")
            if display_id:
                self._display_index.setdefault(display_id, []).append(len(self.outputs) - 1)
        elif kind == "update_display_data":
            display_id = content.get("transient", {}).get("display_id")
            for i in self._display_index.get(display_id, []):
                self.outputs[i]["data"] = content.get("data", {})
                self.outputs[i]["metadata"] = content.get("metadata", {})
        elif kind == "error":
            self._append(
                {
                    "output_type": "error",
                    "ename": content.get("ename", ""),
                    "evalue": content.get("evalue", ""),
                    "traceback": content.get("traceback", []),
                }
            )
        elif kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self.outputs.clear()
                self._display_index.clear()


class StudentKernel:
    """One student's kernel process and the connection to it.

    Args:
        user_id: the student's id (used in messages and folder names).
        settings: limits and folders.
        cwd: the student's private working folder (created if missing).
        extra_env: environment variables added for the kernel (e.g. ``LM_ENGINE_CACHE``).

    Every public method holds the kernel's lock, so two browser tabs of one student run
    their cells one after the other.
    """

    def __init__(
        self,
        user_id: str,
        settings: Settings,
        *,
        cwd: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.user_id = user_id
        self.settings = settings
        self.cwd = Path(cwd).resolve()
        self.extra_env = dict(extra_env or {})
        self.last_used = time.monotonic()
        self.lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._client: BlockingKernelClient | None = None
        self._ipc_dir: Path | None = None
        self._lifeline_w: int | None = None
        self._cap: sandbox.ProcessCap | None = None

    # ----------------------------------------------------------------- life cycle
    def _env(self) -> dict[str, str]:
        if self.settings.sandbox:
            # A clean environment: nothing of the app's (secrets, paths) leaks in.
            env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": os.environ.get("LANG", "C.UTF-8"),
                "HOME": str(sandbox.SANDBOX_HOME),
                "PYTHONPATH": str(sandbox.SANDBOX_CODE),
            }
            cache = self._model_cache()
            if cache is not None:
                env["LM_ENGINE_CACHE"] = str(cache)
        else:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            )
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "PYTHONNOUSERSITE": "1",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                "MPLBACKEND": "agg",
                # Progress bars are noise in a cell's output (and tqdm's notebook mode
                # warns that ipywidgets is missing).
                "TQDM_DISABLE": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _model_cache(self) -> Path | None:
        raw = self.extra_env.get("LM_ENGINE_CACHE") or os.environ.get("LM_ENGINE_CACHE")
        if raw:
            return Path(raw).resolve()
        try:
            from lm_engine.config import default_cache_dir
        except ImportError:
            return None
        return default_cache_dir().resolve()

    def start(self) -> None:
        """Start the kernel process and wait until it answers.

        Raises:
            SandboxUnavailable: hosted mode is on but kernels cannot be sandboxed.
            KernelDied: the kernel did not start (the message includes its error output).
        """
        with self.lock:
            self._stop()
            s = self.settings
            self.cwd.mkdir(parents=True, exist_ok=True)
            # Short path: a Unix socket path must stay under ~100 characters.
            self._ipc_dir = Path(tempfile.mkdtemp(prefix="wbk-", dir="/tmp"))
            connection_file = self._ipc_dir / "kernel.json"
            write_connection_file(
                str(connection_file),
                ip=str(self._ipc_dir / "k"),
                transport="ipc",
                key=uuid.uuid4().hex.encode(),
            )
            read_fd, self._lifeline_w = os.pipe()
            limits = [
                "--memory-mb",
                str(s.kernel_memory_mb),
                "--cell-cpu-s",
                str(s.kernel_cell_cpu_s),
            ]
            limits += ["--lifeline-fd", str(read_fd)]
            popen: dict[str, Any] = {
                "env": self._env(),
                "pass_fds": (read_fd,),
                "start_new_session": True,
                "stdin": subprocess.DEVNULL,
                "stdout": subprocess.DEVNULL,
                "stderr": open(self._ipc_dir / "stderr.log", "wb"),  # noqa: SIM115
            }
            if s.sandbox:
                cache = self._model_cache()
                readonly = [cache] if cache is not None else []
                sandbox.check_available()
                limits += ["--max-procs", str(s.kernel_max_processes)]
                limits += ["--max-file-mb", str(s.kernel_max_file_mb)]
                inner = [sys.executable, str(sandbox.launcher_path()), "-f", str(connection_file)]
                argv = sandbox.bwrap_argv(
                    inner + limits, home=self.cwd, ipc_dir=self._ipc_dir, readonly=readonly
                )
                if sandbox.needs_process_cap():
                    self._cap = sandbox.ProcessCap(s.kernel_max_processes)
                    popen["preexec_fn"] = self._cap.join
                popen["cwd"] = "/"
            else:
                argv = [sys.executable, str(_LAUNCHER), "-f", str(connection_file), *limits]
                popen["cwd"] = str(self.cwd)
            try:
                self._proc = _spawn(argv, **popen)
            finally:
                os.close(read_fd)
                popen["stderr"].close()
            client = BlockingKernelClient(connection_file=str(connection_file))
            client.load_connection_file()
            client.start_channels()
            self._client = client
            deadline = time.monotonic() + _START_TIMEOUT_S
            while True:
                if self._proc.poll() is not None:
                    err = self._stderr_tail()
                    self._stop()
                    raise KernelDied(f"The kernel could not start: {err or 'no error output'}")
                try:
                    client.wait_for_ready(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        err = self._stderr_tail()
                        self._stop()
                        raise KernelDied(
                            f"The kernel did not answer within {_START_TIMEOUT_S:.0f} s. {err}"
                        ) from None
            self.last_used = time.monotonic()

    def _stderr_tail(self) -> str:
        if self._ipc_dir is None:
            return ""
        try:
            text = (self._ipc_dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""
        return text.strip()[-2000:]

    def _stop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # noqa: BLE001 - closing a broken socket
                self._client.stop_channels()
            self._client = None
        if self._proc is not None:
            if self._proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
            self._proc = None
        if self._lifeline_w is not None:
            with contextlib.suppress(OSError):
                os.close(self._lifeline_w)
            self._lifeline_w = None
        if self._cap is not None:
            self._cap.remove()
            self._cap = None
        if self._ipc_dir is not None:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
            self._ipc_dir = None

    def is_alive(self) -> bool:
        """Whether the kernel process is running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the kernel (of bubblewrap in hosted mode), if running."""
        return self._proc.pid if self._proc is not None else None

    def restart(self) -> None:
        """Stop the kernel (losing its variables) and start a fresh one."""
        with self.lock:
            self.start()

    def shutdown(self) -> None:
        """Stop the kernel and release its sockets."""
        with self.lock:
            self._stop()

    # ----------------------------------------------------------------- running code
    def _interrupt(self) -> None:
        assert self._client is not None
        msg = self._client.session.msg("interrupt_request", content={})
        self._client.control_channel.send(msg)

    def _run(
        self, code: str, timeout: float | None, *, silent: bool, expressions: dict[str, str]
    ) -> tuple[_Collector, dict | None, Status]:
        """Send one execute request; collect outputs until the kernel is idle again.

        Returns the collected outputs, the execute_reply content (``None`` if none came) and
        the status: ``ok``/``error`` from the reply, ``timeout`` if it had to be interrupted
        (and did stop), ``died`` if the process ended or ignored the interrupt.
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
        collector = _Collector()
        deadline = time.monotonic() + limit
        interrupted = False
        idle = False
        while not idle:
            now = time.monotonic()
            if now > deadline:
                if interrupted:
                    return collector, None, "died"  # ignored the interrupt
                interrupted = True
                self._interrupt()
                deadline = now + _INTERRUPT_GRACE_S
            if not self.is_alive():
                return collector, None, "died"
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
        if interrupted:
            return collector, reply, "timeout"
        if reply is None:
            return collector, None, "died" if not self.is_alive() else "error"
        return collector, reply, "ok" if reply.get("status") == "ok" else "error"

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
            try:
                collector, reply, status = self._run(code, timeout, silent=False, expressions={})
            finally:
                self.last_used = time.monotonic()
            count = collector.execution_count
            if reply is not None and reply.get("execution_count") is not None:
                count = reply["execution_count"]
            message = ""
            if status == "error":
                error = next((o for o in collector.outputs if o["output_type"] == "error"), None)
                if error is None and reply is not None and reply.get("status") == "error":
                    collector.outputs.append(
                        {
                            "output_type": "error",
                            "ename": reply.get("ename", ""),
                            "evalue": reply.get("evalue", ""),
                            "traceback": reply.get("traceback", []),
                        }
                    )
                    error = collector.outputs[-1]
                if error is not None and error["ename"] == "CellCPUTimeExceeded":
                    message = (
                        f"This cell used more than {self.settings.kernel_cell_cpu_s} s of CPU "
                        "time and was stopped. Your variables are kept."
                    )
                elif error is not None and error["ename"] == "MemoryError":
                    message = (
                        f"This cell needed more memory than the {self.settings.kernel_memory_mb} "
                        "MB a kernel may use. Your variables are kept."
                    )
            elif status == "timeout":
                message = (
                    f"This cell ran longer than {limit:g} s and was interrupted. Variables "
                    "set before the interruption are kept."
                )
            elif status == "died":
                if self.is_alive():
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
                self.start()
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
        expression = "__import__('json').dumps(globals().pop('__workbook_result__'))"
        with self.lock:
            try:
                _, reply, status = self._run(
                    code, timeout, silent=True, expressions={"r": expression}
                )
            finally:
                self.last_used = time.monotonic()
            if status in ("timeout", "died"):
                if not self.is_alive() or status == "died":
                    self.start()
                raise KernelError(f"The check did not finish in time ({status}).")
            assert reply is not None
            if reply.get("status") != "ok":
                trace = "\n".join(reply.get("traceback", [])) or reply.get("evalue", "")
                raise KernelError(strip_ansi(trace))
            result = reply.get("user_expressions", {}).get("r", {})
            if result.get("status") != "ok":
                trace = "\n".join(result.get("traceback", [])) or result.get("evalue", "")
                raise KernelError(strip_ansi(trace))
            return json.loads(ast.literal_eval(result["data"]["text/plain"]))


class KernelPool:
    """One kernel per student, at most ``settings.max_kernels`` at once.

    Args:
        settings: limits, folders and whether to sandbox.
        extra_env: environment variables every kernel gets (e.g. ``LM_ENGINE_CACHE``).

    Raises:
        SandboxUnavailable: hosted mode is on but this machine cannot sandbox kernels.
    """

    def __init__(self, settings: Settings, *, extra_env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.extra_env = dict(extra_env or {})
        self._kernels: dict[str, StudentKernel] = {}
        self._lock = threading.Lock()
        # Gateway kernels are isolated by the gateway (a pod each), not by bubblewrap here.
        if settings.sandbox and not settings.kernel_gateway:
            sandbox.check_available()
            if sandbox.needs_process_cap():
                sandbox.remove_stale_caps()
        atexit.register(self.shutdown_all)

    def kernel_for(self, user_id: str) -> StudentKernel:
        """The student's kernel, started on first use (or restarted if it died).

        Raises:
            ServerBusy: all kernel slots are taken by active students.
            KernelError: ``user_id`` cannot be used as a folder name.
            KernelDied: the kernel could not start.
        """
        if not _USER_ID.match(user_id):
            raise KernelError(f"Cannot start a kernel for user id {user_id!r}.")
        with self._lock:
            kernel = self._kernels.get(user_id)
            if kernel is None:
                if len(self._kernels) >= self.settings.max_kernels:
                    self._cull_locked()
                if len(self._kernels) >= self.settings.max_kernels:
                    raise ServerBusy(
                        "The server is busy: all student kernels are in use. Please try again "
                        "in a minute."
                    )
                kernel = self._new_kernel(user_id)
                self._kernels[user_id] = kernel  # reserve the slot before the slow start
        with kernel.lock:
            if not kernel.is_alive():
                try:
                    kernel.start()
                except KernelError:
                    with self._lock:
                        if self._kernels.get(user_id) is kernel:
                            del self._kernels[user_id]
                    raise
        return kernel

    def _new_kernel(self, user_id: str) -> StudentKernel:
        """A kernel for ``user_id``, not started yet: on the gateway when one is configured."""
        if self.settings.kernel_gateway:
            from workbook.gateway import GatewayKernel

            return GatewayKernel(user_id, self.settings)  # type: ignore[return-value]
        return StudentKernel(
            user_id,
            self.settings,
            cwd=Path(self.settings.work_dir) / user_id,
            extra_env=self.extra_env,
        )

    def _cull_locked(self) -> list[str]:
        now = time.monotonic()
        culled = []
        for user_id, kernel in list(self._kernels.items()):
            idle = now - kernel.last_used > self.settings.kernel_idle_s
            # A kernel busy running a cell holds its lock: never cull it.
            if (idle or not kernel.is_alive()) and kernel.lock.acquire(blocking=False):
                try:
                    if kernel._proc is None and not idle:
                        continue  # being started right now by kernel_for
                    kernel._stop()
                    del self._kernels[user_id]
                    culled.append(user_id)
                finally:
                    kernel.lock.release()
        return culled

    def cull_idle(self) -> list[str]:
        """Shut down kernels idle longer than ``settings.kernel_idle_s`` (or dead).

        Returns:
            The user ids whose kernels were shut down.
        """
        with self._lock:
            return self._cull_locked()

    def running(self) -> list[str]:
        """The user ids that currently have a kernel."""
        with self._lock:
            return list(self._kernels)

    def shutdown_all(self) -> None:
        """Stop every kernel (also called when the app exits)."""
        with self._lock:
            kernels = list(self._kernels.values())
            self._kernels.clear()
        for kernel in kernels:
            kernel.shutdown()

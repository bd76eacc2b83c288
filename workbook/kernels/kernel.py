"""One Jupyter kernel per signed-in student: run cells like a notebook, capture their outputs.

A :class:`StudentKernel` owns an IPython kernel process (started through
``kernel_launcher.py``, which applies the resource limits, and, in hosted mode, wrapped in
bubblewrap by :mod:`workbook.kernels.sandbox`) and a ``jupyter_client`` connection to it over IPC
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
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from workbook.config import Settings
from workbook.kernels import limits, sandbox, spares, threads
from workbook.kernels.cell_clock import CellClock
from workbook.kernels.sandbox import KernelError, SandboxUnavailable

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
# Which limit stopped a cell: its own running time, or (a backstop for an overloaded server)
# the wall time since it was admitted.
StopReason = Literal["own", "wall"]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_LAUNCHER = Path(__file__).resolve().with_name("kernel_launcher.py")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_INTERRUPT_GRACE_S = 5.0
_START_TIMEOUT_S = 60.0
_POLL_S = 0.25
_STDERR_TAIL_BYTES = 8192
# No single message from a kernel may be larger: ZeroMQ drops the connection instead of
# buffering it, so a student printing gigabytes at once cannot grow the app's memory.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# However busy the server, a cell is stopped after this many times its limit in wall time.
_WALL_BACKSTOP_FACTOR = 10


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


_zmq_context: zmq.Context | None = None


def _client_context() -> zmq.Context:
    """The ZeroMQ context of every kernel client: no message above the size bound."""
    global _zmq_context
    with _spawner_lock:
        if _zmq_context is None:
            context = zmq.Context()
            context.setsockopt(zmq.MAXMSGSIZE, _MAX_MESSAGE_BYTES)
            _zmq_context = context
    return _zmq_context


def _size(value: Any) -> int:
    """Roughly how many characters a message's content holds."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return sum(_size(v) for v in value)
    return 8


def _output_size(output: dict) -> int:
    """Roughly how many characters an nbformat output holds (text and data values)."""
    if output["output_type"] == "stream":
        return len(output["text"])
    return _size(output.get("data", {})) + _size(output.get("traceback", []))


class _Collector:
    """Turns iopub messages of one request into nbformat outputs (like nbclient).

    Args:
        max_bytes: output the cell may show; past it, further output is dropped and one
            note says so (the student's messages still arrive, so memory stays bounded by
            this size, not by what the cell printed). ``0`` = no cap.
    """

    def __init__(self, max_bytes: int = 0) -> None:
        self.outputs: list[dict] = []
        self.execution_count: int | None = None
        self.truncated = False
        self._max_bytes = max_bytes
        self._received = 0  # characters received since the outputs were last cleared
        self._clear_pending = False
        self._display_index: dict[str, list[int]] = {}

    def _truncate(self) -> None:
        """Cut the outputs down to the cap and add the note (once)."""
        budget = self._max_bytes
        kept: list[dict] = []
        for output in self.outputs:
            size = _output_size(output)
            if size <= budget:
                kept.append(output)
                budget -= size
            elif output["output_type"] == "stream" and budget > 0:
                kept.append({**output, "text": output["text"][:budget]})
                budget = 0
            else:
                budget = 0
        kb = self._max_bytes // 1024
        note = f"\n[output truncated: this cell printed more than {kb} KB; the rest is not shown]\n"
        kept.append({"output_type": "stream", "name": "stderr", "text": note})
        self.outputs = kept
        self._display_index.clear()
        self.truncated = True

    def _append(self, output: dict) -> None:
        if self._clear_pending:
            self.outputs.clear()
            self._display_index.clear()
            self._clear_pending = False
            self._received = _output_size(output)
        self.outputs.append(output)

    def add(self, msg: dict) -> None:
        if self.truncated:
            return  # over the cap: drop everything else this cell sends
        self._received += _size(msg["content"])
        self._add(msg)
        if self._max_bytes and self._received > self._max_bytes:
            self._truncate()

    def _add(self, msg: dict) -> None:
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
                self._received = 0


def _error_output(collector: _Collector, reply: dict | None) -> dict | None:
    """The cell's error output; one is added from the reply when iopub carried none."""
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
    return error


def _with_truncation_note(message: str, settings: Settings) -> str:
    """``message`` plus the note that the cell's output was cut at the cap."""
    note = (
        f"This cell's output passed the {settings.cell_max_output_kb} KB a cell may show; "
        "the rest was dropped."
    )
    return f"{message} {note}" if message else note


# Evaluated after an inspection snippet: the JSON of what it bound to ``__workbook_result__``.
_INSPECT_EXPRESSION = "__import__('json').dumps(globals().pop('__workbook_result__'))"


def _inspection_value(reply: dict) -> Any:
    """The value an inspection snippet returned, from its execute_reply.

    Raises:
        KernelError: the snippet failed or bound no result (the message is the traceback).
    """
    if reply.get("status") != "ok":
        trace = "\n".join(reply.get("traceback", [])) or reply.get("evalue", "")
        raise KernelError(strip_ansi(trace))
    result = reply.get("user_expressions", {}).get("r", {})
    if result.get("status") != "ok":
        trace = "\n".join(result.get("traceback", [])) or result.get("evalue", "")
        raise KernelError(strip_ansi(trace))
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))


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
        self._stderr_fd: int | None = None
        self._cgroups: limits.Cgroups | None = None
        self._oom_seen = 0
        self._guard: limits.Guard | None = None
        # Told to the student on their next run: why their variables are gone.
        self.pending_notice = ""

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

        If the previous kernel process had died on its own (a crash, or a limit stopped
        it), :attr:`pending_notice` says so for the student's next run.

        Raises:
            SandboxUnavailable: hosted mode is on but kernels cannot be sandboxed.
            KernelDied: the kernel did not start (the message includes its error output).
        """
        with self.lock:
            if self._proc is not None and self._proc.poll() is not None:
                self.pending_notice = self._death_notice(while_idle=True)
            self._stop()
            s = self.settings
            # Short path: a Unix socket path must stay under ~100 characters. The folder is
            # the sandbox's to write (its sockets); the app only ever connects to sockets in it.
            self._ipc_dir = Path(tempfile.mkdtemp(prefix="wbk-", dir="/tmp"))
            connection_file = self._ipc_dir / "kernel.json"
            _, connection = write_connection_file(
                str(connection_file),
                ip=str(self._ipc_dir / "k"),
                transport="ipc",
                key=uuid.uuid4().hex.encode(),
            )
            # The kernel's error output goes to an unnamed file only the app holds: nothing
            # inside the sandbox can swap it for a link, and the app reads a bounded tail.
            self._stderr_fd = os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
            read_fd, self._lifeline_w = os.pipe()
            limits_args = [
                "--memory-mb",
                str(s.kernel_memory_mb),
                "--cell-cpu-s",
                str(s.kernel_cell_cpu_s),
            ]
            limits_args += ["--max-output-kb", str(s.cell_max_output_kb)]
            limits_args += ["--lifeline-fd", str(read_fd)]
            popen: dict[str, Any] = {
                "env": self._env(),
                "pass_fds": (read_fd,),
                "start_new_session": True,
                "stdin": subprocess.DEVNULL,
                "stdout": subprocess.DEVNULL,
                "stderr": self._stderr_fd,
            }
            try:
                if s.sandbox:
                    argv = self._sandbox_argv(str(connection_file), limits_args, popen)
                else:
                    self.cwd.mkdir(parents=True, exist_ok=True)
                    argv = [sys.executable, str(_LAUNCHER), "-f", str(connection_file)]
                    argv += limits_args
                    popen["cwd"] = str(self.cwd)
                self._proc = _spawn(argv, **popen)
            except BaseException:
                self._stop()
                raise
            finally:
                os.close(read_fd)
            if s.sandbox:
                self._guard = limits.watchdog().watch(
                    limits.Guard(
                        root_pid=self._proc.pid,
                        home=self.cwd,
                        memory_mb=s.kernel_memory_mb,
                        home_mb=s.kernel_home_mb,
                        home_files=s.kernel_home_files,
                        check_memory=self._cgroups is None,
                    )
                )
            # The connection details come from memory: the file the kernel reads sits in a
            # folder the sandbox can write, so the app never reads it back.
            client = BlockingKernelClient(context=_client_context())
            client.load_connection_info(connection)
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
            if s.sandbox:
                sandbox.lock_folder(self._ipc_dir)
            if self._guard is not None:
                self._guard.ready()
            self.last_used = time.monotonic()

    def _sandbox_argv(self, connection_file: str, limits_args: list[str], popen: dict) -> list[str]:
        """The bubblewrap command for this kernel; sets up its folders and cgroups."""
        s = self.settings
        sandbox.check_available(s.sandbox_uid)
        assert self._ipc_dir is not None
        sandbox.prepare_folder(self.cwd, s.sandbox_uid)
        sandbox.prepare_folder(self._ipc_dir, s.sandbox_uid)
        sandbox.give(Path(connection_file), s.sandbox_uid)
        cache = self._model_cache()
        if cache is not None:
            sandbox.share_read_only(cache)
        limits_args += ["--max-procs", str(s.kernel_max_processes)]
        limits_args += ["--max-file-mb", str(s.kernel_max_file_mb)]
        limits_args += ["--cpu-budget-s", str(s.kernel_cpu_budget_s)]
        inner = [sys.executable, str(sandbox.launcher_path()), "-f", connection_file]
        argv = sandbox.bwrap_argv(
            inner + limits_args,
            home=self.cwd,
            ipc_dir=self._ipc_dir,
            readonly=[cache] if cache is not None else [],
            sandbox_uid=s.sandbox_uid,
            tmp_mb=s.kernel_tmp_mb,
        )
        if sandbox.runs_as_root():
            try:
                self._cgroups = limits.Cgroups(
                    s.kernel_memory_mb, s.kernel_max_processes, s.kernel_cpus
                )
            except limits.CgroupsUnavailable as exc:
                raise SandboxUnavailable(str(exc)) from None
            popen["preexec_fn"] = self._cgroups.join
        popen["cwd"] = "/"
        return argv

    def _stderr_tail(self) -> str:
        """The end of the kernel's error output, read from the app's own descriptor."""
        if self._stderr_fd is None:
            return ""
        try:
            size = os.fstat(self._stderr_fd).st_size
            start = max(0, size - _STDERR_TAIL_BYTES)
            data = os.pread(self._stderr_fd, _STDERR_TAIL_BYTES, start)
        except OSError:
            return ""
        return data.decode(errors="replace").strip()[-2000:]

    def _stop_reason(self) -> str:
        """Which limit stopped the sandbox (``memory``, ``disk``, ``cpu``...), or ``""``."""
        if self._guard is not None and self._guard.reason():
            return self._guard.reason()
        if self._cgroups is not None and self._cgroups.oom_kills() > 0:
            return "memory"
        if (
            self._guard is not None
            and self._guard.kernel_cpu_s >= self.settings.kernel_cpu_budget_s - 2
        ):
            return "cpu_budget"
        return ""

    def _death_notice(self, *, while_idle: bool) -> str:
        """Plain words for the student: why the kernel stopped, and what to do now."""
        s = self.settings
        why = {
            "memory": (
                f"all its processes together needed more than the {s.kernel_memory_mb} MB of "
                "memory each student may use"
            ),
            "disk": (
                f"your files grew past the {s.kernel_home_mb} MB (or {s.kernel_home_files} "
                "files) your folder may hold; delete files you do not need"
            ),
            "cpu": "a program it started kept using the CPU after its cell had finished",
            "cpu_budget": f"it used up its CPU time budget ({s.kernel_cpu_budget_s} s)",
        }.get(self._stop_reason(), "")
        if while_idle:
            what = "Your kernel stopped while you were away"
            what += f", because {why}" if why else " (it crashed or was stopped by the server)"
            return (
                f"{what}. It has been restarted, so the variables from your earlier cells are "
                "gone: click **Run all above** to rebuild them, then run this cell again."
            )
        if why:
            return (
                f"Your kernel was stopped because {why}. It has been restarted: click **Run all "
                "above** to rebuild your variables."
            )
        return (
            "Your kernel stopped unexpectedly (it may have run out of memory or "
            "crashed) and has been restarted. Run the cells above again."
        )

    def _stop(self) -> None:
        if self._guard is not None:
            limits.watchdog().forget(self._guard)
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
        self._guard = None
        for fd in (self._lifeline_w, self._stderr_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._lifeline_w = self._stderr_fd = None
        if self._cgroups is not None:
            self._cgroups.remove()
            self._cgroups = None
        self._oom_seen = 0
        if self._ipc_dir is not None:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
            self._ipc_dir = None

    def cull_notice(self, *, idle: bool) -> str:
        """What to tell the student whose kernel the pool is shutting down now."""
        if self._proc is not None and self._proc.poll() is not None:
            return self._death_notice(while_idle=True)
        return idle_cull_notice(self.settings) if idle else ""

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
            self.pending_notice = ""  # the student asked for it: nothing to explain

    def shutdown(self) -> None:
        """Stop the kernel and release its sockets."""
        with self.lock:
            self._stop()

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
    ) -> tuple[_Collector, dict | None, Status, StopReason | None]:
        """Send one execute request; collect outputs until the kernel is idle again.

        The limit counts the time the cell has had (:class:`workbook.kernels.cell_clock.CellClock`:
        wall time less the time the kernel waited for a CPU), so a busy server does not cut
        a cell off; ``_WALL_BACKSTOP_FACTOR`` times the limit in plain wall time is the
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
        clock = CellClock(self.pid)
        collector = _Collector(self.settings.cell_max_output_kb * 1024)
        stopped_by: StopReason | None = None
        interrupted_at = 0.0
        idle = False
        while not idle:
            if stopped_by is None:
                if clock.own() > limit:
                    stopped_by = "own"
                elif clock.wall() > limit * _WALL_BACKSTOP_FACTOR:
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
                error = _error_output(collector, reply)
                if error is not None and error["ename"] == "CellCPUTimeExceeded":
                    message = (
                        f"This cell used more than {self.settings.kernel_cell_cpu_s} s of CPU "
                        "time and was stopped. Your variables are kept."
                    )
                elif error is not None and _is_memory_error(error):
                    message = (
                        f"This cell needed more memory than the {self.settings.kernel_memory_mb} "
                        "MB a kernel may use, so it stopped. Your variables are kept. Delete "
                        "large variables you no longer need (`del name`), or restart the "
                        "kernel and run the cells above again."
                    )
            elif status == "timeout":
                message = (
                    f"{_over_limit(stopped_by, limit)} and was interrupted. Variables set "
                    "before the interruption are kept."
                )
            elif status == "died":
                if self.is_alive():
                    message = (
                        f"{_over_limit(stopped_by, limit)} and did not stop when interrupted, "
                        "so your kernel was restarted. Run the cells above again."
                    )
                    status = "timeout"
                else:
                    message = self._death_notice(while_idle=False)
                self.start()
                self.pending_notice = ""  # told just now, in this run's message
            if collector.truncated:
                message = _with_truncation_note(message, self.settings)
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
                        code, timeout, silent=True, expressions={"r": _INSPECT_EXPRESSION}
                    )
            finally:
                self.last_used = time.monotonic()
            if status in ("timeout", "died"):
                if not self.is_alive() or status == "died":
                    self.start()
                raise KernelError(f"The check did not finish in time ({status}).")
            assert reply is not None
            return _inspection_value(reply)


# How torch, numpy and the OS word "out of memory" when an allocation hits the kernel's
# address-space limit: MemoryError, or a RuntimeError from torch's allocator or from mmap.
_MEMORY_ERROR = re.compile(
    r"out of memory|not enough memory|can't allocate memory|cannot allocate memory"
    r"|bad_alloc|mmap|errno 12",
    re.IGNORECASE,
)


def _is_memory_error(error: Mapping[str, Any]) -> bool:
    """Whether an nbformat error output is the kernel running out of memory."""
    if error.get("ename") in ("MemoryError", "OutOfMemoryError"):
        return True
    return error.get("ename") in ("RuntimeError", "OSError") and bool(
        _MEMORY_ERROR.search(str(error.get("evalue", "")))
    )


def _over_limit(stopped_by: StopReason | None, limit: float) -> str:
    """The first half of a timeout message: which limit the cell crossed."""
    if stopped_by == "wall":
        return (
            f"The server is very busy: this cell had not finished after "
            f"{limit * _WALL_BACKSTOP_FACTOR:g} s (waiting for the server included; try again "
            "in a few minutes)"
        )
    return (
        f"This cell ran longer than its limit of {limit:g} s (only the time it actually "
        "ran counts, not time spent waiting for a busy server)"
    )


def idle_cull_notice(settings: Settings) -> str:
    """What a student reads after the pool shut their idle kernel down (any kind of kernel)."""
    minutes = max(1, round(settings.kernel_idle_s / 60))
    return (
        f"Your kernel was shut down after {minutes} minutes without use, so the "
        "variables from your earlier cells are gone: click **Run all above** to "
        "rebuild them, then run this cell again."
    )


class KernelPool:
    """One kernel per student, at most ``settings.max_kernels`` at once.

    A few spare kernels (``settings.spare_kernels``, see :mod:`workbook.kernels.spares`) can be kept
    warm for students who need a kernel next; they only start while student kernels plus
    spares stay under ``max_kernels``, and a ready spare is shut down when a student needs
    its place.

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
        self._notices: dict[str, str] = {}  # why a culled kernel's variables are gone
        # Starting a kernel is a burst of CPU (Python, ipykernel, their imports). Thirty
        # students starting at once on two cores would each take so long that they run
        # into the start timeout; one start per core at a time gets them all going sooner.
        self._starting = threading.BoundedSemaphore(threads.cores())
        # Gateway kernels are isolated by the gateway (a pod each), not by bubblewrap here.
        if settings.sandbox and not settings.kernel_gateway:
            sandbox.check_available(settings.sandbox_uid)
            if sandbox.runs_as_root():
                limits.remove_stale()
        spares.remove_stale_folders(Path(settings.work_dir))
        # A spare's folder is moved to its student on adoption; a gateway kernel's folder
        # lives on the gateway's host, out of reach, so a gateway pool keeps no spares.
        self._spares = spares.SparePool(
            self._new_spare,
            0 if settings.kernel_gateway else settings.spare_kernels,
            settings.model_name,
            room=self._room_for_spare,
            start=self._start,
        )
        atexit.register(self.shutdown_all)

    # ----------------------------------------------------------------- building kernels
    def _new_kernel(self, user_id: str) -> StudentKernel:
        """Build (not start) a kernel: on the gateway when one is configured, else working
        in ``work_dir/<user_id>``."""
        if self.settings.kernel_gateway:
            from workbook.kernels.gateway import GatewayKernel

            return GatewayKernel(user_id, self.settings)  # type: ignore[return-value]
        # One torch thread until the run queue grants more (workbook.kernels.threads).
        env = {**threads.kernel_env(), **self.extra_env}
        return StudentKernel(
            user_id, self.settings, cwd=Path(self.settings.work_dir) / user_id, extra_env=env
        )

    def _new_spare(self) -> StudentKernel:
        """Build a spare kernel: an ordinary kernel in a fresh folder of its own."""
        return self._new_kernel(spares.spare_name())

    def _start(self, kernel: StudentKernel) -> None:
        """Start a kernel once a start slot is free (see ``_starting``)."""
        with self._starting:
            kernel.start()

    def _room_for_spare(self) -> bool:
        with self._lock:
            return len(self._kernels) + len(self._spares) < self.settings.max_kernels

    def keep_spares(self, quiet: Callable[[], bool] = lambda: True) -> None:
        """Start refilling the spare kernels in the background.

        Args:
            quiet: whether the machine has time to warm a spare now (the app passes "no
                student is waiting in the run queue").
        """
        self._spares._quiet = quiet
        self._spares.keep_filled()

    def spares_ready(self) -> int:
        """Spare kernels warmed up and waiting for a student."""
        return self._spares.ready()

    def _adopt(self, kernel: StudentKernel, user_id: str) -> StudentKernel:
        """Hand a spare to a student: its folder becomes theirs (see workbook.kernels.spares)."""
        folder = Path(self.settings.work_dir) / user_id
        with kernel.lock:
            if getattr(kernel, "cwd", None) is not None:  # a kernel with a local folder
                spares.adopt_folder(kernel.cwd, folder)
                kernel.cwd = folder.resolve()
                if getattr(kernel, "_guard", None) is not None:
                    kernel._guard.home = kernel.cwd  # the home quota follows the moved folder
            kernel.user_id = user_id
            kernel.last_used = time.monotonic()
        return kernel

    def _take_spare(self, user_id: str) -> StudentKernel | None:
        spare = self._spares.take()
        if spare is None:
            return None
        try:
            return self._adopt(spare, user_id)
        except OSError:
            spare.shutdown()  # a folder could not be moved: fall back to a fresh kernel
            return None

    # ----------------------------------------------------------------- handing them out
    def kernel_for(self, user_id: str) -> StudentKernel:
        """The student's kernel, started on first use (or restarted if it died).

        A warm spare is used when one is ready.

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
                kernel = self._take_spare(user_id)
                if kernel is None:
                    if len(self._kernels) + len(self._spares) >= self.settings.max_kernels:
                        self._spares.release_one()
                    kernel = self._new_kernel(user_id)
                kernel.pending_notice = self._notices.pop(user_id, "")
                self._kernels[user_id] = kernel  # reserve the slot before the slow start
        with kernel.lock:
            if not kernel.is_alive():
                try:
                    self._start(kernel)
                except KernelError:
                    with self._lock:
                        if self._kernels.get(user_id) is kernel:
                            del self._kernels[user_id]
                    raise
        return kernel

    def current(self, user_id: str) -> StudentKernel | None:
        """The student's kernel if one is running, without starting one."""
        with self._lock:
            return self._kernels.get(user_id)

    def restart(self, user_id: str) -> StudentKernel:
        """A fresh kernel for the student (variables lost), from the spares when one is ready.

        Returns:
            The student's kernel from now on (a spare replaces the old object, so callers
            holding the old one should ask :meth:`current` again).

        Raises:
            ServerBusy, KernelError, KernelDied: as :meth:`kernel_for`.
        """
        old = self.current(user_id)
        if old is None:
            return self.kernel_for(user_id)  # no kernel yet: a fresh one (a spare if ready)
        with old.lock:
            with self._lock:
                replaced = self._kernels.get(user_id) is not old
            if replaced:  # by another tab's restart, or culled, while we waited for its lock
                return self.kernel_for(user_id)
            old._stop()  # the folder must be free before the spare takes it over
            with self._lock:
                spare = self._take_spare(user_id)
                if spare is not None:
                    self._kernels[user_id] = spare
            if spare is None:
                self._start(old)
                return old
        return spare

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
                    self._notices[user_id] = kernel.cull_notice(idle=idle)
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
        """Stop every kernel, spares included (also called when the app exits)."""
        self._spares.shutdown()
        with self._lock:
            kernels = list(self._kernels.values())
            self._kernels.clear()
        for kernel in kernels:
            kernel.shutdown()

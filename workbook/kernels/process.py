"""A local kernel's process: its environment, its start (sandboxed in hosted mode), its stop.

:class:`KernelProcess` starts an IPython kernel through ``kernel_launcher.py`` (which applies
the resource limits; a local one is forked from :mod:`workbook.kernels.template`), in hosted
mode wrapped in bubblewrap (:mod:`workbook.kernels.sandbox`) and watched by
:mod:`workbook.kernels.limits`, then connects a ``jupyter_client`` client to it over IPC
sockets in a private folder. It knows why the process stopped (which limit) and tells the
student through :mod:`workbook.kernels.notices`. Running cells over that connection is
:class:`workbook.kernels.kernel.StudentKernel`'s job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from workbook.config import Settings
from workbook.kernels import (
    cell_clock,
    cgroups,
    home_quota,
    home_watch,
    limits,
    sandbox,
    spawning,
    template,
)
from workbook.kernels.environment import KERNEL_ENV
from workbook.kernels.errors import KernelDied, SandboxUnavailable
from workbook.kernels.notices import death_notice, idle_cull_notice, over_quota_notice
from workbook.kernels.spares import SPARE_PREFIX
from workbook.kernels.write_filter import program_fd

__all__ = ["KernelProcess"]

log = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[2]
_LAUNCHER = Path(__file__).resolve().with_name("kernel_launcher.py")
_START_TIMEOUT_S = 60.0
_STDERR_TAIL_BYTES = 8192


class KernelProcess:
    """One student's kernel process and the connection to it.

    Args:
        user_id: the student's id (used in messages and folder names).
        settings: limits and folders.
        cwd: the student's private working folder (created if missing).
        extra_env: environment variables added for the kernel (e.g. ``LM_ENGINE_CACHE``).

    Every public method holds the kernel's lock, so a start, a stop and a run of one
    student's kernel never overlap.
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
        self._proc: subprocess.Popen | template.ForkedKernel | None = None
        self._client: BlockingKernelClient | None = None
        self._ipc_dir: Path | None = None
        self._lifeline_w: int | None = None
        self._stderr_fd: int | None = None
        self._cgroups: cgroups.CgroupsV1 | cgroups.CgroupsV2 | None = None
        self._oom_seen = 0
        self._guard: limits.Guard | None = None
        self._home_image = False  # the home folder is a mounted image (home_quota)
        self._home_watch: home_watch.HomeWatch | None = None
        # The Python process running the kernel (inside bubblewrap in hosted mode), found
        # once per start: the cell clock reads its CPU wait, the watchdog its CPU time.
        self._kernel_pid: int | None = None
        # How many times a kernel process was started: what it was told before (its torch
        # threads, see workbook.kernels.threads) does not hold for the next one.
        self.starts = 0
        # Told to the student on their next run: why their variables are gone.
        self.pending_notice = ""
        # What the last start found, also in pending_notice (a folder over its quota).
        self.start_notice = ""

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
        env.update(KERNEL_ENV)
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
                    if s.kernel_template:  # forked from a warm process; None: as below
                        spare = self.cwd.name.startswith(SPARE_PREFIX)  # may wait for it
                        self._proc = template.start_kernel(
                            argv[2:], popen, read_fd, s.model_name, wait=spare
                        )
                if self._proc is None:
                    self._proc = spawning.spawn(argv, **popen)
            except BaseException:
                self._stop()
                raise
            finally:
                os.close(read_fd)
                for fd in popen["pass_fds"][1:]:
                    os.close(fd)  # the write filter, read by bubblewrap
            if s.sandbox:
                assert self._home_watch is not None
                over = self._home_watch.started_over
                self.start_notice = over_quota_notice(s, image=self._home_image) if over else ""
                self.pending_notice = f"{self.pending_notice} {self.start_notice}".strip()
                self._guard = limits.watchdog().watch(
                    limits.Guard(
                        root_pid=self._proc.pid,
                        home=self.cwd,
                        memory_mb=s.kernel_memory_mb,
                        home_mb=s.kernel_home_mb,
                        home_files=s.kernel_home_files,
                        check_memory=self._cgroups is None,
                        home_watch=self._home_watch,
                    )
                )
            # The connection details come from memory: the file the kernel reads sits in a
            # folder the sandbox can write, so the app never reads it back.
            client = BlockingKernelClient(context=spawning.client_context())
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
            self._kernel_pid = cell_clock.kernel_process(self._proc.pid)
            if self._guard is not None:
                self._guard.ready(self._kernel_pid)
            self.starts += 1
            self.last_used = time.monotonic()

    def _sandbox_argv(self, connection_file: str, limits_args: list[str], popen: dict) -> list[str]:
        """The bubblewrap command for this kernel; sets up its folders and cgroups."""
        s = self.settings
        sandbox.check_available(s.sandbox_uid)
        assert self._ipc_dir is not None
        self._mount_home()
        sandbox.prepare_folder(self.cwd, s.sandbox_uid)
        sandbox.prepare_folder(self._ipc_dir, s.sandbox_uid)
        sandbox.give(Path(connection_file), s.sandbox_uid)
        cache = self._model_cache()
        if cache is not None:
            sandbox.share_read_only(cache)
        limits_args += ["--max-procs", str(s.kernel_max_processes)]
        # Without an image, the largest file is the room left in the folder (home_watch).
        self._home_watch = home_watch.HomeWatch.for_kernel(self.cwd, s, image=self._home_image)
        limits_args += ["--max-file-mb", str(self._home_watch.room_mb())]
        limits_args += ["--cpu-budget-s", str(s.kernel_cpu_budget_s)]
        inner = [sys.executable, str(sandbox.launcher_path()), "-f", connection_file]
        try:
            filter_fd = program_fd()
        except OSError as exc:
            raise SandboxUnavailable(f"Hosted mode cannot start a kernel: {exc}") from None
        popen["pass_fds"] = (*popen["pass_fds"], filter_fd)
        argv = sandbox.bwrap_argv(
            inner + limits_args,
            seccomp_fd=filter_fd,
            home=self.cwd,
            ipc_dir=self._ipc_dir,
            readonly=[cache] if cache is not None else [],
            sandbox_uid=s.sandbox_uid,
            tmp_mb=s.kernel_tmp_mb,
        )
        if sandbox.runs_as_root():
            # None where no controller can be written: the watchdog bounds memory instead.
            try:
                self._cgroups = cgroups.for_sandbox(
                    s.kernel_memory_mb, s.kernel_max_processes, s.kernel_cpus
                )
            except cgroups.CgroupsUnavailable as exc:
                raise SandboxUnavailable(f"Hosted mode cannot start a kernel: {exc}") from None
            if self._cgroups is not None:
                popen["preexec_fn"] = self._cgroups.join
        popen["cwd"] = "/"
        return argv

    def _mount_home(self) -> None:
        """As root, put the home folder on its own size-limited filesystem where possible."""
        s = self.settings
        if not (s.kernel_home_images and sandbox.runs_as_root()):
            return
        problem = home_quota.available()
        if problem is None:
            try:
                home_quota.mount(
                    self.cwd, size_mb=s.kernel_home_mb, files=s.kernel_home_files, uid=s.sandbox_uid
                )
                self._home_image = True
                return
            except OSError as exc:
                problem = str(exc)
        log.warning("home quota of %s by the watchdog only: %s", self.cwd.name, problem)

    def _release_home(self) -> None:
        """Unmount the home image (a spare's, never adopted, is deleted)."""
        if not self._home_image:
            return
        self._home_image = False
        try:
            if self.cwd.name.startswith(SPARE_PREFIX):
                home_quota.release(self.cwd)
            else:
                home_quota.unmount(self.cwd)
        except OSError as exc:
            log.warning("could not unmount %s: %s", self.cwd, exc)

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

    def stop_reason(self) -> str:
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
        return death_notice(self.settings, self.stop_reason(), while_idle=while_idle)

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
        self._guard = self._home_watch = None
        self._kernel_pid = None
        for fd in (self._lifeline_w, self._stderr_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._lifeline_w = self._stderr_fd = None
        if self._cgroups is not None:
            self._cgroups.remove()
            self._cgroups = None
        self._oom_seen = 0
        self._release_home()
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
    def started(self) -> bool:
        """Whether a process was started and not stopped since (running, or died)."""
        return self._proc is not None

    @property
    def home(self) -> Path:
        """The kernel's working folder (the sandbox's ``/home/student`` in hosted mode)."""
        return self.cwd

    def move_home(self, folder: Path) -> None:
        """The working folder was renamed to ``folder``: the home quota follows it."""
        with self.lock:
            self.cwd = Path(folder).resolve()
            if self._guard is not None:
                self._guard.move_home(self.cwd)

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

"""The app's side of the kernel template: cheap local kernel starts by forking a warm process.

A fresh local kernel is a new Python process that imports ipykernel, torch, transformers and
pandas and loads the model: about five CPU-seconds each, so thirty students arriving at once
keep two cores busy for minutes. The kernel template (``kernel_template.py``, beside
``kernel_launcher.py``) does that work once; each local kernel is then forked from it, and
``kernel_launcher.main`` applies the same limits in the child as in a started process.

:func:`start_kernel` asks the template for one kernel and returns a :class:`ForkedKernel`
(what ``subprocess.Popen`` offers the app: ``pid``, ``poll``, ``wait``, ``kill``), or None
when the template cannot serve (not started yet and failing, died, another environment): the
caller then starts the kernel as before, and the reason is logged. A template that failed is
started again on a later request, at most once per :data:`RETRY_S`.

There is one template per kernel environment (a pool's kernels all share one). Its own
memory is counted once, like any other program's, in the memory the pool re-reads
(:mod:`workbook.kernels.capacity`); each kernel's proportional memory already shares the
pages it inherited.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbook.kernels import threads
from workbook.kernels.spares import warm_up_code

__all__ = [
    "RETRY_S",
    "ForkedKernel",
    "TemplateFailed",
    "pids",
    "start_kernel",
    "stop_all",
    "wait_until_started",
]

log = logging.getLogger(__name__)

_SCRIPT = Path(__file__).resolve().with_name("kernel_template.py")
# The template imports torch and transformers and warms the model up before it answers.
_READY_TIMEOUT_S = 180.0
_REPLY_TIMEOUT_S = 30.0
# After a failure, the next try to start a template waits this long (kernels start as before).
RETRY_S = 60.0
# Templates kept at once, one per kernel environment; the least recently used goes first.
_MOST = 2
_STDERR_TAIL = 2000
# A stopped template reaps its kernels' exits this long (it waits 15 s itself), then is killed.
_LINGER_S = 20.0


class TemplateFailed(Exception):
    """The template could not start or serve a kernel."""


def _readable(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` is readable (or closed at the other end) within ``timeout`` seconds.

    ``poll``, not ``select``: an app with many kernels holds descriptors past 1024.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else int(timeout * 1000)))


class ForkedKernel:
    """A kernel process forked by the template: what the app needs of a ``Popen``.

    The app holds a pidfd of the process (no pid reuse can fool it) and a socket on which the
    template reports its exit status once it has reaped it.
    """

    def __init__(self, pid: int, pidfd: int, conn: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._conn = conn
        self._lock = threading.Lock()

    def _exited(self, timeout: float | None) -> bool:
        with self._lock:
            if self.returncode is not None:
                return True
            if self._pidfd < 0:
                return True
            if not _readable(self._pidfd, timeout):
                return False
            # It has exited; the template tells its status once it has reaped it.
            self.returncode = -1  # unknown, if the template is gone
            if _readable(self._conn.fileno(), 2.0):
                with contextlib.suppress(OSError, ValueError):
                    self.returncode = int(json.loads(self._conn.recv(4096))["exit"])
            os.close(self._pidfd)
            self._pidfd = -1
            self._conn.close()
            return True

    def poll(self) -> int | None:
        """The exit status if the process has ended (``-1``: unknown), else None."""
        self._exited(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; its exit status.

        Raises:
            subprocess.TimeoutExpired: it still runs after ``timeout`` seconds.
        """
        if not self._exited(timeout):
            raise subprocess.TimeoutExpired(["forked kernel", str(self.pid)], timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Signal the process (through its pidfd: never another process with its pid)."""
        with self._lock:
            if self._pidfd >= 0:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        """Kill the process."""
        self.send_signal(signal.SIGKILL)

    def __del__(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
        self._conn.close()


class _Template:
    """One running template process and the app's end of its control socket."""

    def __init__(self, env: Mapping[str, str], warm_up: str) -> None:
        self.env = dict(env)
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stderr = os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
        self._lock = threading.Lock()
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own script, no shell
                [sys.executable, str(_SCRIPT), "--control-fd", str(theirs.fileno())]
                + (["--warm-up", warm_up] if warm_up else []),
                env=self.env,
                cwd="/",
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # a Ctrl-C meant for the app does not stop it
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        except OSError:
            self.control.close()
            os.close(self._stderr)
            raise
        finally:
            theirs.close()
        self.ready = False

    def wait_ready(self) -> None:
        """Wait for the template's "ready" (it imports and warms up first).

        Raises:
            TemplateFailed: it said it could not prepare, exited, or took too long.
        """
        ready = _readable(self.control.fileno(), _READY_TIMEOUT_S)
        reply = self._reply(self.control) if ready else {"error": "no answer in time"}
        if not reply.get("ready"):
            tail = self.stderr_tail()
            self.stop()
            raise TemplateFailed(f"{reply.get('error', 'it ended')}. {tail}")
        if reply.get("threads") != 1:  # a library started a thread: forks copy it half-alive
            log.warning("the kernel template runs %s threads, not 1", reply.get("threads"))
        self.ready = True

    @staticmethod
    def _reply(conn: socket.socket) -> dict:
        try:
            data = conn.recv(4096)
            return json.loads(data) if data else {}
        except (OSError, ValueError):
            return {}

    def fork(
        self, args: list[str], env: Mapping[str, str], cwd: str, stderr_fd: int, lifeline_fd: int
    ) -> ForkedKernel:
        """Ask for one kernel; raises :class:`TemplateFailed` if none came."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"args": args, "env": dict(env), "cwd": cwd}).encode()
        try:
            with self._lock:  # one request at a time on the control socket
                socket.send_fds(self.control, [request], [theirs.fileno(), stderr_fd, lifeline_fd])
            theirs.close()
            if not _readable(ours.fileno(), _REPLY_TIMEOUT_S):
                raise TemplateFailed("the template did not answer")
            data, fds, _, _ = socket.recv_fds(ours, 4096, 1)
            reply = json.loads(data) if data else {}
            if "pid" not in reply or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise TemplateFailed(reply.get("error", "the template stopped"))
        except (OSError, ValueError) as exc:
            ours.close()
            raise TemplateFailed(f"the template stopped: {exc}") from None
        except TemplateFailed:
            ours.close()
            raise
        finally:
            with contextlib.suppress(OSError):
                theirs.close()
        return ForkedKernel(int(reply["pid"]), fds[0], ours)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        """The end of the template's error output (read before :meth:`stop`)."""
        if self._stderr < 0:
            return ""
        with contextlib.suppress(OSError):
            size = os.fstat(self._stderr).st_size
            data = os.pread(self._stderr, _STDERR_TAIL, max(0, size - _STDERR_TAIL))
            return data.decode(errors="replace").strip()
        return ""

    def stop(self) -> None:
        """Close the control socket: the template reaps its children a while, then exits.

        Returns at once; a thread reaps the template (and kills it if it lingers).
        """
        with contextlib.suppress(OSError):
            self.control.close()
        threading.Thread(target=self._reap, name="kernel-template-reaper", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=_LINGER_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with self._lock:
            fd, self._stderr = self._stderr, -1
        with contextlib.suppress(OSError):
            os.close(fd)


_Key = tuple[tuple[str, str], ...]
_templates: dict[_Key, _Template] = {}  # ready to serve, the least recently used first
_failed_at: dict[_Key, float] = {}  # when the template for an environment last failed
_pending: set[_Key] = set()  # being started
_registry = threading.Lock()
_started = threading.Condition(_registry)  # a start ended (well or not)


def _key(env: Mapping[str, str]) -> _Key:
    """What picks a kernel's template: the part of its environment that is not the app's.

    That part (``PYTHONPATH``, the kernels' threads, the pool's ``extra_env``) is the same for
    every kernel of a pool and is what libraries read at import. A variable the app's own
    environment gains later (a test's name, say) still reaches the kernel's ``os.environ``.
    """
    return tuple(sorted((k, v) for k, v in env.items() if os.environ.get(k) != v))


def _template_for(env: Mapping[str, str], warm_up: str, *, wait: bool) -> _Template:
    """The running template for ``env``.

    The first request for an environment starts the template. With ``wait`` (a spare,
    which nobody is waiting for) it waits until the template serves, as do other such
    requests meanwhile; without it (a student's kernel) it never waits: the template starts
    in the background and :class:`TemplateFailed` sends this kernel down the plain path,
    so a student is never slower than without a template. Once one has failed or stopped,
    it is started again in the background, at most once per :data:`RETRY_S`, and requests
    meanwhile get :class:`TemplateFailed`.
    """
    key = _key(env)
    with _started:
        while True:
            template = _templates.get(key)
            if template is not None and template.alive():
                _templates[key] = _templates.pop(key)  # the most recently used last
                return template
            if template is not None:
                del _templates[key]
                _failed_at[key] = time.monotonic() - RETRY_S  # restart it now
                log.warning("the kernel template stopped: %s", template.stderr_tail() or "?")
                template.stop()
            if key not in _pending or key in _failed_at or not wait:
                break
            _started.wait()  # the first start, by another request
        if key in _pending:
            raise TemplateFailed("the kernel template is being started")
        failed = _failed_at.get(key)
        if failed is not None and time.monotonic() - failed < RETRY_S:
            raise TemplateFailed(
                f"it failed {time.monotonic() - failed:.0f} s ago; it is tried again later"
            )
        _pending.add(key)
    if failed is None and wait:
        return _start(key, env, warm_up)
    threading.Thread(
        target=_restart, args=(key, env, warm_up), name="kernel-template", daemon=True
    ).start()
    if failed is None:
        raise TemplateFailed("the kernel template is starting; this kernel starts as before")
    raise TemplateFailed("the kernel template had stopped; it is being started again")


def _start(key: _Key, env: Mapping[str, str], warm_up: str) -> _Template:
    """Start a template and wait until it serves; ``key`` is in ``_pending`` meanwhile."""
    try:
        template = _Template(env, warm_up)
        template.wait_ready()
    except (OSError, TemplateFailed) as exc:
        with _started:
            _failed_at[key] = time.monotonic()
            _pending.discard(key)
            _started.notify_all()
        raise TemplateFailed(f"the kernel template could not start: {exc}") from None
    with _started:
        _templates[key] = template
        _failed_at.pop(key, None)
        _pending.discard(key)
        _started.notify_all()
        # The least recently used first: past _MOST, those go.
        stale = [_templates.pop(k) for k in list(_templates)[: max(0, len(_templates) - _MOST)]]
    for old in stale:
        old.stop()  # its kernels go on; only their exit statuses are lost
    return template


def _restart(key: _Key, env: Mapping[str, str], warm_up: str) -> None:
    try:
        _start(key, env, warm_up)
        log.info("the kernel template serves again")
    except TemplateFailed as exc:
        log.warning("%s", exc)


def start_kernel(
    args: list[str],
    popen: Mapping[str, Any],
    lifeline_fd: int,
    model_name: str,
    *,
    wait: bool = False,
) -> ForkedKernel | None:
    """A kernel forked from the template for its environment, or None (start it as before).

    Args:
        args: ``kernel_launcher.py``'s arguments (connection file and limits).
        popen: what a plain start gives ``subprocess.Popen``; its ``env`` (the kernel's
            whole environment, the template's too), ``cwd`` and ``stderr`` (a descriptor)
            are the kernel's.
        lifeline_fd: the read end of the kernel's lifeline pipe.
        model_name: the model the template warms up once (the spares' warm-up, without
            the pandas table: see :func:`workbook.kernels.spares.warm_up_code`).
        wait: wait for a template that is not serving yet (a spare's start); else the
            kernel starts as before while the template starts in the background.
    """
    env = popen["env"]
    if any(env.get(name) != value for name, value in threads.kernel_env().items()):
        # A template must fork with one thread; this kernel's torch would start more.
        log.info("kernel started without the template: its environment allows more threads")
        return None
    try:
        template = _template_for(env, warm_up_code(model_name, tables=False), wait=wait)
        return template.fork(args, env, str(popen["cwd"]), popen["stderr"], lifeline_fd)
    except TemplateFailed as exc:
        # A template that stopped mid-request is noticed (and restarted) on the next one.
        log.warning("kernel started without the template: %s", exc)
        return None


def wait_until_started(timeout: float = _READY_TIMEOUT_S) -> bool:
    """Wait until no template is being started; True if none is (for tests, benchmarks)."""
    deadline = time.monotonic() + timeout
    with _started:
        while _pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _started.wait(left)
    return True


def pids() -> list[int]:
    """The running templates' process ids (for tests and measurements)."""
    with _registry:
        return [t.proc.pid for t in _templates.values() if t.alive()]


def stop_all() -> None:
    """Stop every template (their kernels go on; the app's exit stops them too)."""
    with _registry:
        templates = list(_templates.values())
        _templates.clear()
    for template in templates:
        template.stop()

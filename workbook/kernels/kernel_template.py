"""A kernel template: one process that has imported what a kernel needs, forked per kernel.

Run as a script by the app (:mod:`workbook.kernels.template`), never imported by it, and it
imports nothing from ``workbook``: ``python kernel_template.py --control-fd N [--warm-up
CODE]``. It imports ipykernel, torch, transformers, pandas and ``lm_engine``, runs the
warm-up code (the spares' own, given by the app: a model load and one forward pass, then
freed), freezes its objects out of the garbage collector's reach (so forked children keep
sharing those pages) and then serves.

**One request per kernel.** Over the control socket (``AF_UNIX``, ``SOCK_SEQPACKET``) the app
sends a JSON message ``{"args", "env", "cwd"}`` with three descriptors (``SCM_RIGHTS``): the
app's end of a fresh socket pair for this kernel, the kernel's error-output file and the read
end of its lifeline pipe. The template forks; the child becomes exactly what
``kernel_launcher.py`` makes of a new process: its own session, the requested working folder
and environment (replaced, not merged), stdin and stdout on ``/dev/null``, stderr on the
given file, then ``kernel_launcher.main(args)`` applies the limits and runs the kernel. The
template answers on the kernel's own socket with the child's pid and a pidfd (opened before
the child can be reaped), and later with its exit status once it has reaped it.

**Threads.** The template is started with one thread for torch and OpenMP (the kernels'
environment) and starts no thread of its own, so no thread pool is copied half-alive into a
child; a child may raise its torch threads later. It creates no ZeroMQ context: each
child's ``IPKernelApp`` makes its own.

The template exits when the app closes the control socket (the app exited or was killed),
after reaping its children (each ends by itself when its own lifeline closes).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import os
import select
import socket
import sys
import traceback

import kernel_launcher  # beside this script: the one place that applies a kernel's limits

_MAX_REQUEST = 1 << 20
# Once the app is gone, how long the template waits for its children to end.
_REAP_AFTER_APP_S = 15.0


def _prepare(warm_up: str) -> None:
    """Import everything a kernel and the setup cell need, then run the warm-up code."""
    # pandas loads pyarrow, whose jemalloc would start a background thread: none here, so
    # that the template forks with one thread (it only hands freed pages back sooner).
    os.environ.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")
    import ipykernel.ipkernel  # noqa: F401 - the kernel class IPKernelApp builds
    import ipykernel.kernelapp  # noqa: F401
    import IPython.core.interactiveshell  # noqa: F401
    import pandas  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import lm_engine  # noqa: F401

    if warm_up:
        exec(compile(warm_up, "<warm-up>", "exec"), {"__name__": "__warm_up__"})  # noqa: S102
    gc.collect()
    # Children share the template's pages until written; the collector would write to
    # every object it visits, so the objects made so far are kept out of its reach.
    gc.freeze()


def _child(request: dict, stderr_fd: int, lifeline_fd: int, keep_closed: list[int]) -> None:
    """In the forked child: become the kernel process, run it, never return."""
    code = 1
    try:
        for fd in keep_closed:
            with contextlib.suppress(OSError):
                os.close(fd)
        os.setsid()  # own session and process group: ipykernel interrupts its group
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(stderr_fd, 2)
        os.close(null)
        os.close(stderr_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "numpy" in sys.modules:  # its global generator was seeded once, in the template
            sys.modules["numpy"].random.seed()
        args = list(request["args"])
        if "--lifeline-fd" in args:  # the descriptor's number in this process
            args[args.index("--lifeline-fd") + 1] = str(lifeline_fd)
        sys.argv = [kernel_launcher.__file__, *args]
        kernel_launcher.main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported on the kernel's error output
        traceback.print_exc()
    finally:
        # What a kernel process does when it exits (IPython saves its history, say).
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # exiting anyway
                stream.flush()
        os._exit(code)


def _send(conn: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    try:
        if fds:
            socket.send_fds(conn, [data], fds)
        else:
            conn.send(data)
    except OSError:
        pass  # the app let go of this kernel: nobody to tell


class _Template:
    """The serving loop: requests on the control socket, children's exits on their pidfds."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.poller = select.poll()
        self.poller.register(control, select.POLLIN)
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, its socket)

    def serve(self) -> None:
        threads = len(os.listdir("/proc/self/task"))
        _send(self.control, {"ready": True, "pid": os.getpid(), "threads": threads})
        while True:
            for fd, _ in self.poller.poll():
                if fd == self.control.fileno():
                    if not self._request():
                        self._wind_down()
                        return
                elif fd in self.children:
                    self._reap(fd)

    def _request(self) -> bool:
        """Serve one request; False when the app has closed the control socket."""
        try:
            data, fds, _, _ = socket.recv_fds(self.control, _MAX_REQUEST, 3)
        except OSError:
            return False
        if not data or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            # No data: the app closed the socket. Else a malformed request: the app gets
            # no answer and falls back.
            return bool(data)
        conn = socket.socket(fileno=fds[0])
        stderr_fd, lifeline_fd = fds[1], fds[2]
        try:
            request = json.loads(data)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except Exception as exc:  # noqa: BLE001 - the app falls back to a plain start
            _send(conn, {"error": f"{type(exc).__name__}: {exc}"})
            conn.close()
            os.close(stderr_fd)
            os.close(lifeline_fd)
            return True
        if pid == 0:
            others = [self.control.fileno(), conn.fileno()]
            others += [
                fd for pidfd, (_, sock) in self.children.items() for fd in (pidfd, sock.fileno())
            ]
            self.poller = None  # type: ignore[assignment]
            _child(request, stderr_fd, lifeline_fd, others)
        os.close(stderr_fd)
        os.close(lifeline_fd)
        # Opened before this loop can reap the child, so the pid cannot be someone else's.
        pidfd = os.pidfd_open(pid)
        _send(conn, {"pid": pid}, [pidfd])
        self.children[pidfd] = (pid, conn)
        self.poller.register(pidfd, select.POLLIN)
        return True

    def _reap(self, pidfd: int) -> None:
        pid, conn = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1
        _send(conn, {"exit": code})
        conn.close()

    def _wind_down(self) -> None:
        """The app is gone: wait a little for the children (their lifelines end them)."""
        self.poller.unregister(self.control)
        self.control.close()
        while self.children:
            events = self.poller.poll(int(_REAP_AFTER_APP_S * 1000))
            if not events:
                break
            for fd, _ in events:
                self._reap(fd)


def main(argv: list[str] | None = None) -> None:
    """Prepare, then fork kernels on request until the app goes away."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--warm-up", default="")
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control_fd)
    try:
        _prepare(args.warm_up)
    except BaseException as exc:  # noqa: BLE001 - told to the app, which starts kernels as before
        traceback.print_exc()
        _send(control, {"error": f"the template could not prepare: {type(exc).__name__}: {exc}"})
        return
    _Template(control).serve()


if __name__ == "__main__":
    sys.exit(main())

"""Start one student's IPython kernel with resource limits applied to its own process.

Run as a script (``python kernel_launcher.py -f CONNECTION_FILE [limits]``), never imported by
the app: it must work inside the sandbox where only the standard library, the virtual
environment and ``lm_engine`` are visible, so it imports nothing from ``workbook``.

Limits are set here, before ipykernel is imported, so that they bind the kernel and
everything it starts:

- ``--memory-mb``: RLIMIT_AS. A too-large allocation raises ``MemoryError`` (or torch's
  ``RuntimeError``) inside the kernel instead of exhausting the server.
- ``--cell-cpu-s``: CPU seconds one cell may use. Before each cell the soft RLIMIT_CPU is
  moved to "used so far, rounded up to a whole second, + limit"; when it is crossed, SIGXCPU
  raises ``CellCPUTimeExceeded``. RLIMIT_CPU counts whole seconds, so a cell gets at least
  its limit and at most one second more (:func:`cell_soft_limit`).
- ``--cpu-budget-s``: the hard RLIMIT_CPU, the CPU seconds the kernel process (and each
  process it starts) may use in its whole life. It is set before any student code runs and
  an unprivileged process can never raise a hard limit, so no cell can lift the soft one
  past it; at the hard limit Linux kills the process.
- ``--max-procs``: RLIMIT_NPROC (a fork bomb fails with ``BlockingIOError``). Inside a user
  namespace the count is per sandbox, so one student's processes do not count against another's.
- ``--max-file-mb``: RLIMIT_FSIZE; SIGXFSZ is ignored so a too-large write raises ``OSError``.
  Set once IPython has set up (before any student code); 0 means no file may grow. In hosted
  mode the app lowers it further as the home folder fills (``home_watch.py``).
- ``--max-output-kb``: what one cell may print. Past it ``sys.stdout``/``sys.stderr`` drop
  the rest, so an accidental flood never leaves the kernel. The app caps what arrives too
  (a cell can get around this one on purpose), and adds the "output truncated" note.
- ``--lifeline-fd``: the read end of a pipe whose write end only the app holds. When the app
  dies the pipe reports end-of-file and the kernel exits, so no kernel outlives its app.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable


class CellCPUTimeExceeded(BaseException):
    """A cell used more CPU time than the workbook allows.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that a student's ``except Exception``
    does not swallow it.
    """


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def _watch_lifeline(fd: int, ipc_dir: str) -> None:
    # Blocks until the app closes its end (it exits or is killed), then ends the kernel.
    # A killed app cannot tidy up, so the kernel removes its own socket folder first.
    try:
        while os.read(fd, 1):
            pass
    finally:
        shutil.rmtree(ipc_dir, ignore_errors=True)
        os._exit(3)


def cell_soft_limit(used_cpu_s: float, cell_cpu_s: int, hard: int) -> int:
    """The soft RLIMIT_CPU that gives the next cell ``cell_cpu_s`` CPU seconds.

    RLIMIT_CPU is in whole seconds of the process's total CPU time. The time used so far is
    rounded up, never down, so the cell gets at least its limit (and less than one second
    more); the hard limit (the kernel's lifetime budget) still wins.
    """
    soft = math.ceil(used_cpu_s) + cell_cpu_s
    return soft if hard == resource.RLIM_INFINITY else min(soft, hard)


def _install_cpu_limit(shell: object, cell_cpu_s: int) -> None:
    def used_cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    _, hard = resource.getrlimit(resource.RLIMIT_CPU)

    def arm(*_args: object) -> None:
        soft = cell_soft_limit(used_cpu_s(), cell_cpu_s, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    def disarm(*_args: object) -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))

    def on_xcpu(_signum: int, _frame: object) -> None:
        disarm()  # the kernel sends SIGXCPU every further second otherwise
        raise CellCPUTimeExceeded(f"this cell used more than {cell_cpu_s} s of CPU time")

    signal.signal(signal.SIGXCPU, on_xcpu)
    shell.events.register("pre_run_cell", arm)  # type: ignore[attr-defined]
    shell.events.register("post_run_cell", disarm)  # type: ignore[attr-defined]


def _install_output_cap(shell: object, max_chars: int) -> None:
    printed = [0]

    def reset(*_args: object) -> None:
        printed[0] = 0

    def capped(write: Callable[[str], object]) -> Callable[[str], int]:
        def write_capped(text: str) -> int:
            room = max_chars - printed[0]
            printed[0] += len(text)
            if room > 0:
                write(text[:room])
            return len(text)  # what print() expects, whether or not it was kept

        return write_capped

    for stream in (sys.stdout, sys.stderr):
        stream.write = capped(stream.write)  # type: ignore[method-assign]
    shell.events.register("pre_run_cell", reset)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Apply the limits, then run the kernel until it is shut down."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-f", dest="connection_file", required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--cell-cpu-s", type=int, default=0)
    parser.add_argument("--max-procs", type=int, default=0)
    parser.add_argument("--max-file-mb", type=int, default=-1)  # 0: no file may grow
    parser.add_argument("--cpu-budget-s", type=int, default=0)
    parser.add_argument("--max-output-kb", type=int, default=0)
    parser.add_argument("--lifeline-fd", type=int, default=-1)
    args = parser.parse_args(argv)

    # Own process group: ipykernel's interrupt signals its group only when it leads it.
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)
    if args.lifeline_fd >= 0:
        threading.Thread(
            target=_watch_lifeline,
            args=(args.lifeline_fd, os.path.dirname(os.path.abspath(args.connection_file))),
            name="lifeline",
            daemon=True,
        ).start()
    if args.memory_mb:
        _set_limit(resource.RLIMIT_AS, args.memory_mb * 1024 * 1024)
    if args.max_procs:
        _set_limit(resource.RLIMIT_NPROC, args.max_procs)
    if args.cpu_budget_s:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard == resource.RLIM_INFINITY or args.cpu_budget_s < hard:
            _set_limit(resource.RLIMIT_CPU, args.cpu_budget_s)

    # tqdm warns, with the server's own file path, that notebook progress bars need
    # ipywidgets; its console bars work without them. Students see only their own output.
    warnings.filterwarnings("ignore", message="IProgress not found")

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", args.connection_file])
    if args.max_file_mb >= 0:
        # After IPython has set up its profile folder (it copies a README there), before
        # any student code: 0 (a home over its quota) would fail that copy.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _set_limit(resource.RLIMIT_FSIZE, args.max_file_mb * 1024 * 1024)
    if args.cell_cpu_s:
        _install_cpu_limit(app.shell, args.cell_cpu_s)
    if args.max_output_kb:
        # A little more than the app shows, so the app sees it was cut and says so.
        _install_output_cap(app.shell, args.max_output_kb * 1024 + 4096)
    app.start()


if __name__ == "__main__":
    sys.exit(main())

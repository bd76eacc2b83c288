"""How many CPU threads torch may use, in the app and in each student's kernel.

torch starts as many threads as the machine has cores. With ten kernels each doing that on
a 2-core machine, twenty threads spin against each other and every student waits four to
seven times longer than needed. The policy, decided from the machine:

- **Kernels start with one thread** (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and friends in
  the kernel's environment). The run queue (:mod:`workbook.kernels.run_queue`) admits at most
  ``WORKBOOK_RUN_SLOTS`` runs at once (default: one per core).
- **Each admitted run gets an equal share of the cores that are free**: ``cores // runs
  going now``, but never more than the cores the 1-minute load average leaves idle, and at
  least 1 (:func:`share`). A student alone on a quiet machine gets every core (as fast as
  before); under load everyone gets one. Extra threads are only worth it on idle cores:
  OpenMP threads that must share a core wait for each other at every step, and on this
  2-core machine, with other work running, a forward pass with 2 threads took ten times as
  long as with 1 (3.8 s vs 0.4 s; 72 vs 96 ms when the machine was quiet). :func:`grant`
  tells the kernel, with one silent request, only when its share changes.
- **The app** (the checks' reference model, the Explore page) uses ``cores // 4`` threads,
  at least 1: its requests run beside up to one kernel per core (:func:`configure_app`).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from workbook.config import cpu_cores as cores

__all__ = ["app_threads", "configure_app", "cores", "grant", "kernel_env", "share"]

# Every threading library torch, numpy or tokenizers may use reads one of these at import.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def kernel_env() -> dict[str, str]:
    """Environment variables that start a kernel with one thread for torch and numpy."""
    env = dict.fromkeys(_THREAD_VARIABLES, "1")
    # The Rust tokenizers' own pool: one thread, and no warning about forking after use.
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def share(running: int, machine_cores: int | None = None, load: float | None = None) -> int:
    """Threads for one run when ``running`` runs (this one included) are going at once.

    Args:
        running: runs holding a slot now, this one included.
        machine_cores: the cores (default: this process's).
        load: the 1-minute load average (default: the machine's now).
    """
    machine_cores = cores() if machine_cores is None else machine_cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = float(machine_cores)  # unknown: assume busy, one thread is the safe side
    idle = machine_cores - round(load)
    return max(1, min(machine_cores // max(1, running), idle))


def app_threads(machine_cores: int | None = None) -> int:
    """Threads for the app's own model: a quarter of the cores, at least one."""
    machine_cores = cores() if machine_cores is None else machine_cores
    return max(1, machine_cores // 4)


_configured = threading.Lock()


def configure_app() -> int:
    """Set the app's torch threads (:func:`app_threads`); returns the number set."""
    import torch

    threads = app_threads()
    with _configured:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return threads


# What each kernel was last told, keyed by the kernel object and its start count (a restarted
# or replaced kernel, local or on a gateway, starts again from its environment's one thread).
_granted: weakref.WeakKeyDictionary[Any, tuple[Any, int]] = weakref.WeakKeyDictionary()

# Runs in the student's kernel, silently, binding only the name inspect() pops again. It does
# nothing before torch is imported (the environment already says one thread).
_GRANT_CODE = (
    "__workbook_result__ = (lambda t, n: (t.set_num_threads(n) if t.get_num_threads() != n "
    "else None, t.get_num_threads())[1] if t is not None else None)"
    "(__import__('sys').modules.get('torch'), {n})"
)


def grant(kernel: Any, threads: int) -> bool:
    """Let the kernel's torch use ``threads`` threads for the run about to start.

    Sends one silent request, and only when the share differs from what this kernel was last
    told since its last (re)start. Works with any kernel offering ``inspect`` and ``starts``
    (a gateway kernel too).

    Returns:
        Whether a request was sent.
    """
    ident = getattr(kernel, "starts", None)
    if _granted.get(kernel) == (ident, threads):
        return False
    applied = kernel.inspect(_GRANT_CODE.format(n=int(threads)), timeout=10)
    if applied == threads:  # None: torch is not imported yet, so ask again next time
        _granted[kernel] = (ident, threads)
    return True

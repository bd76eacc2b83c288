"""Where kernel processes are started from, and the ZeroMQ context their clients share.

:func:`spawn` starts every local kernel process (plain or sandboxed) from one long-lived
thread; :func:`client_context` is the one ZeroMQ context of every kernel client, with the
message size bound of :data:`workbook.kernels.run_loop.MAX_MESSAGE_BYTES`.
"""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zmq

from workbook.kernels.run_loop import MAX_MESSAGE_BYTES

__all__ = ["client_context", "spawn"]

_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def spawn(argv: list[str], **popen_kwargs: Any) -> subprocess.Popen:
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


def client_context() -> zmq.Context:
    """The ZeroMQ context of every kernel client: no message above the size bound.

    ZeroMQ drops a connection that brings a larger message instead of buffering it.
    """
    global _zmq_context
    with _spawner_lock:
        if _zmq_context is None:
            context = zmq.Context()
            context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            _zmq_context = context
    return _zmq_context

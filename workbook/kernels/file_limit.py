"""Set RLIMIT_FSIZE on a sandbox's processes from the app, whoever runs it.

:mod:`workbook.kernels.home_watch` lowers each sandboxed kernel's file limit as its home
folder fills. Linux lets a process change another's limits when both are the same user, or
with CAP_SYS_RESOURCE (which raising a hard limit needs in any case). Unprivileged, the app
and its sandboxes are one user. As root they are not (the sandbox runs as
``WORKBOOK_SANDBOX_UID``), and root in a container may lack CAP_SYS_RESOURCE (this
machine's does): then a helper forked from the app, running as the sandbox's user outside
the sandbox (whose PID namespace cannot see it), lowers the limits instead.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import threading
from pathlib import Path

__all__ = ["lower", "may_raise"]


def may_raise() -> bool:
    """Whether this process may raise a hard limit (and set any process's limits)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 24 & 1)  # CAP_SYS_RESOURCE
    except (OSError, ValueError):
        pass
    return False


class _Limiter:
    """Sets the limit directly where Linux allows it, else through the helper."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._helpers: dict[int, int] = {}  # uid: the pipe to its helper

    def lower(self, pids: list[int], value: int, sandbox_uid: int | None) -> None:
        """Set both limits of each of ``pids`` to ``value`` (processes that ended: skipped)."""
        refused = []
        for pid in pids:
            try:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (value, value))
            except PermissionError:
                refused.append(pid)
            except OSError:
                continue
        if refused and sandbox_uid is not None and os.geteuid() == 0:
            lines = "".join(f"{pid} {value}\n" for pid in refused)
            with contextlib.suppress(OSError):
                os.write(self._helper(sandbox_uid), lines.encode())

    def _helper(self, uid: int) -> int:
        """The pipe to the helper for ``uid``, forked on first use."""
        with self._lock:
            if uid not in self._helpers:
                self._helpers[uid] = _fork_helper(uid, _gid_of(uid))
            return self._helpers[uid]


def _fork_helper(uid: int, gid: int) -> int:
    """Fork a process that becomes ``uid`` and lowers limits; returns the pipe to it.

    A fork, not a new program: the Python installation may sit in a folder the sandbox user
    cannot read. The child holds nothing of the app's (its descriptors are closed), drops
    to ``uid``, and exits when the app closes the pipe (or dies).
    """
    read_end, write_end = os.pipe()
    if os.fork() != 0:
        os.close(read_end)
        return write_end
    try:  # the child: only system calls from here on
        os.closerange(3, read_end)
        os.closerange(read_end + 1, 1 << 16)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        pending = b""
        while chunk := os.read(read_end, 1 << 12):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                pid, value = (int(word) for word in line.split())
                with contextlib.suppress(OSError):
                    resource.prlimit(pid, resource.RLIMIT_FSIZE, (value, value))
    finally:
        os._exit(0)


def _gid_of(uid: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


_limiter = _Limiter()


def lower(pids: list[int], value: int, sandbox_uid: int | None) -> None:
    """Set RLIMIT_FSIZE (both limits) of each of ``pids`` to ``value``.

    Args:
        pids: the sandbox's processes, as the host numbers them (ended ones are skipped).
        value: the new limit in bytes.
        sandbox_uid: the host uid the sandbox runs as when the app runs as root.
    """
    _limiter.lower(pids, value, sandbox_uid)

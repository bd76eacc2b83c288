"""The kernels' errors: what can go wrong with a student's kernel, and how they are related.

:class:`KernelError` is the base; local kernels, gateway kernels, the sandbox and the pool
all raise it or one of its kinds.
"""

from __future__ import annotations

__all__ = ["KernelDied", "KernelError", "SandboxUnavailable", "ServerBusy"]


class KernelError(RuntimeError):
    """Something went wrong with a student's kernel (base of the kernel errors)."""


class SandboxUnavailable(KernelError):
    """Hosted mode was asked for, but kernels cannot be sandboxed on this machine."""


class ServerBusy(KernelError):
    """Too many kernels are running; the student should try again in a minute."""


class KernelDied(KernelError):
    """The kernel process is gone (crashed, killed, or could not start)."""

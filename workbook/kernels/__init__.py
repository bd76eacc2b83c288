"""kernels: one Jupyter kernel per student, run safely and fairly for a whole class.

- ``kernel``: a student's kernel (start, execute a cell, capture its outputs, stop) and the
  ``KernelPool`` that hands each student theirs, culls idle ones and keeps spares warm;
- ``kernel_launcher``: the kernel process's entry point (resource limits, then ipykernel),
  run as a script, never imported;
- ``sandbox`` / ``limits``: hosted mode: bubblewrap without privilege, and per-student
  totals (cgroups as root, a watchdog otherwise);
- ``spares``: warm spare kernels and how a spare's folder becomes a student's;
- ``run_queue`` / ``threads`` / ``cell_clock``: fairness when a class presses Run at once:
  admission, CPU threads per run, and a cell's own time;
- ``gateway``, ``gateway_protocol``, ``gateway_launcher``, ``gateway_local``: the same kernel
  over a Jupyter Kernel/Enterprise Gateway.

Public names: the pool, the kernel interface and its errors, the run queue and the gateway
kernel. The service (``workbook.service``) is their one user in the app.
"""

from workbook.kernels.gateway import GatewayKernel
from workbook.kernels.kernel import (
    ExecutionResult,
    KernelDied,
    KernelPool,
    ServerBusy,
    StudentKernel,
)
from workbook.kernels.run_queue import RunQueue, Ticket
from workbook.kernels.sandbox import KernelError, SandboxUnavailable

__all__ = [
    "ExecutionResult",
    "GatewayKernel",
    "KernelDied",
    "KernelError",
    "KernelPool",
    "RunQueue",
    "SandboxUnavailable",
    "ServerBusy",
    "StudentKernel",
    "Ticket",
]

"""kernels: one Jupyter kernel per student, run safely and fairly for a whole class.

- ``pool``: the ``KernelPool`` that hands each student their kernel (readied when they
  arrive, a place in line when memory is full), culls idle ones and keeps spares warm;
- ``capacity``: how many kernels the machine's memory holds (measured PSS), and how many
  spares the arrivals call for;
- ``interface``: ``Kernel``, the protocol every kernel satisfies and the pool relies on;
- ``run_loop``: the one run loop (clock, limits, output cap, notices) over any transport;
- ``kernel`` / ``process``: a student's local kernel: its messages over ZeroMQ, and its
  process (start, sandboxed argv, stop, why it stopped);
- ``collector`` / ``result``: a cell's iopub messages become nbformat outputs (capped), and
  what a run gives back (``ExecutionResult``, an inspection's value);
- ``notices``: what the student reads when a limit, a crash or the idle cull stopped a kernel;
- ``errors``: the kernel errors (``KernelError`` and its kinds);
- ``kernel_launcher``: the kernel process's entry point (resource limits, then ipykernel),
  run as a script, never imported;
- ``template`` / ``kernel_template``: local kernels forked from one warm process that has
  imported ipykernel, torch and transformers once (the app's side, and the template script,
  which calls ``kernel_launcher.main`` in each child);
- ``sandbox`` / ``limits`` / ``cgroups`` / ``home_quota``: hosted mode: bubblewrap without
  privilege, and per-student totals (cgroups v2 or v1 as root, a watchdog otherwise; a
  size-limited filesystem per home folder as root);
- ``spares``: warm spare kernels and how a spare's folder becomes a student's;
- ``run_queue`` / ``threads`` / ``cell_clock``: fairness when a class presses Run at once:
  admission, CPU threads per run, and a cell's own time;
- ``gateway``, ``gateway_process``, ``gateway_protocol``, ``gateway_launcher``,
  ``gateway_local``: the same kernel over a Jupyter Kernel/Enterprise Gateway (its
  messages over a WebSocket, the kernel's lifetime over REST, the wire protocol, the kernelspec's launcher, a
  local gateway for tests and benchmarks).

Public names: the pool, the kernel interface and its errors, the run queue and the gateway
kernel. The service (``workbook.service``) is their one user in the app.
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "errors": (
            "KernelDied",
            "KernelError",
            "SandboxUnavailable",
            "ServerBusy",
        ),
        "gateway": ("GatewayKernel",),
        "interface": ("Kernel",),
        "kernel": ("StudentKernel",),
        "pool": ("KernelPool",),
        "result": ("ExecutionResult",),
        "run_queue": (
            "RunQueue",
            "Ticket",
        ),
    },
)

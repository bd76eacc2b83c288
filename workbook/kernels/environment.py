"""What every kernel's environment says, whether the app starts it here or a gateway does.

:data:`KERNEL_ENV` goes into a local kernel's environment
(:class:`workbook.kernels.process.KernelProcess`) and into the gateway kernelspec's ``env``
(:func:`workbook.kernels.gateway_local.kernelspec`), so both kinds of kernel behave alike.
"""

from __future__ import annotations

__all__ = ["KERNEL_ENV"]

KERNEL_ENV: dict[str, str] = {
    # Kernels never download: the model comes from the cache only.
    "HF_HUB_OFFLINE": "1",
    "PYTHONNOUSERSITE": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "MPLBACKEND": "agg",
    # Progress bars are noise in a cell's output (and tqdm's notebook mode warns that
    # ipywidgets is missing).
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # glibc gives each new thread that allocates its own malloc arena, reserving 64 MB of
    # address space each (up to 8 per core): a fresh ipykernel reserved 740 MB here where
    # it needs 150. Against the kernel's RLIMIT_AS (WORKBOOK_KERNEL_MEMORY_MB) that made
    # starts at 400 MB fail (threads refused, then aborts: exit 134, 139, or no answer).
    "MALLOC_ARENA_MAX": "2",
}

"""What every kind of kernel must do alike, asserted once for the local and the gateway tests."""

from __future__ import annotations

from workbook.kernels.interface import Kernel


def assert_a_large_allocation_fails_inside_the_kernel(kernel: Kernel, words: str) -> None:
    """A 50 GiB array is a MemoryError in the cell, ``words`` in its message; the kernel lives."""
    result = kernel.execute("import numpy as np\nbig = np.ones(50 * 1024**3 // 8)")
    assert result.status == "error"
    assert result.outputs[-1]["ename"] == "MemoryError"
    assert words in result.message
    assert kernel.is_alive()

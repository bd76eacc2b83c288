"""Hosted mode: the student reads which limit stopped their kernel in the very cell it died in.

A kernel that a limit stops mid-cell is replaced by the run loop at once. What the student
reads must survive that replacement: why the old kernel stopped, what the fresh one found
(a folder still over its quota), and, when no fresh kernel can start, still which limit
stopped the old one. Real sandboxed kernels, real limits: the home-quota watchdog and the
lifetime CPU budget (the kernel's hard RLIMIT_CPU).
"""

from __future__ import annotations

import dataclasses
import textwrap

import pytest
from sandbox_support import WHO, hosted_fixture, needs_sandbox

from workbook.kernels.errors import KernelDied

pytestmark = [pytest.mark.slow, needs_sandbox]

HOME_MB = 20
HOME_FILES = 20
CPU_BUDGET_S = 6


hosted = hosted_fixture(
    cell_timeout_s=60,
    kernel_home_mb=HOME_MB,
    kernel_home_files=HOME_FILES,
    kernel_cpu_budget_s=CPU_BUDGET_S,
    spare_kernels=0,
    # The watch's quota stops a kernel (an image would refuse the write instead).
    kernel_home_images=False,
)


def test_a_kernel_stopped_for_its_folder_says_so_and_that_the_folder_is_still_over(hosted):
    pool, settings = hosted
    kernel = pool.kernel_for("dora")
    # Empty files: no file limit bounds their number, so the watch stops the kernel once
    # the folder holds far more entries than it may.
    fill = textwrap.dedent(
        """
        import time
        for i in range(5000):
            open(f'blob{i}', 'w').close()
            time.sleep(0.002)
        """
    )
    result = kernel.execute(fill)
    print(f"[{WHO}] {result.status}: {result.message}")
    assert result.status == "died"
    # Why it stopped, and, in the same result, that the fresh kernel starts over the quota.
    assert "your files grew past" in result.message and f"{HOME_FILES} files" in result.message
    assert f"Your folder holds more than the {HOME_MB} MB" in result.message
    tidy = kernel.execute("import glob, os\nfor name in glob.glob('blob*'):\n    os.remove(name)")
    assert tidy.status == "ok" and tidy.message == ""  # told once, not again


def test_the_limit_is_named_even_when_no_fresh_kernel_can_start(hosted):
    pool, settings = hosted
    kernel = pool.kernel_for("emil")
    assert kernel.execute("kept = 1").status == "ok"
    # From now on a kernel cannot start here (far too little memory for Python itself).
    kernel.settings = dataclasses.replace(settings, kernel_memory_mb=8)
    try:
        with pytest.raises(KernelDied) as raised:
            kernel.execute("while True:\n    pass")
    finally:
        kernel.settings = settings
    print(f"[{WHO}] {raised.value}")
    assert f"CPU time budget ({CPU_BUDGET_S} s)" in str(raised.value)
    assert "could not start" in str(raised.value)
    again = pool.kernel_for("emil").execute("1 + 1")
    # The next run starts a kernel and says nothing more about the old one.
    assert again.status == "ok" and again.message == ""

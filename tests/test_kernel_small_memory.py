"""A sandboxed kernel with little memory starts and can run threads (hosted mode).

``WORKBOOK_KERNEL_MEMORY_MB`` is the kernel's RLIMIT_AS, which counts reserved address space,
not memory used. glibc reserves 64 MB per thread that allocates (a malloc arena each), so a
fresh kernel reserved about 740 MB while using about 50; at 400 MB its starts died (exit 134
or 139) or never answered. ``MALLOC_ARENA_MAX`` (``workbook.kernels.environment``) bounds that.
"""

from __future__ import annotations

import textwrap

import pytest
from sandbox_support import hosted_pool, needs_sandbox, value_of

pytestmark = [pytest.mark.slow, needs_sandbox]

MEMORY_MB = 400
THREADS = 6


def test_a_400_mb_kernel_starts_and_its_threads_can_allocate(tmp_path_factory):
    pool, _ = hosted_pool(
        tmp_path_factory,
        kernel_memory_mb=MEMORY_MB,
        spare_kernels=0,
        kernel_home_images=False,
    )
    try:
        kernel = pool.kernel_for("fay")
        code = textwrap.dedent(
            f"""
            import threading
            done = []
            def work():
                block = bytearray(1024 * 1024)  # this thread's first allocation
                done.append(len(block))
            threads = [threading.Thread(target=work) for _ in range({THREADS})]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            reserved = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmSize')]
            (len(done), int(reserved[0]) // 1024)
            """
        )
        finished, reserved_mb = value_of(kernel.execute(code))
        print(f"{finished} threads allocated; the kernel reserves {reserved_mb} MB")
        assert finished == THREADS and reserved_mb <= MEMORY_MB
    finally:
        pool.shutdown_all()

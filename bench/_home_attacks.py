"""Cells a student could run to leave more in their folder than its quota allows.

Shared by ``bench/home_quota.py`` (every attack, at the default quota) and
``tests/test_home_watch.py`` (the ones that matter, at a small quota). Each cell takes the
quota from ``QUOTA_MB`` (set in the kernel first), tries to write past it, and shows the
first error it met (errno name) or ``None``.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

__all__ = ["ATTACKS", "on_disk", "setup_cell"]


def on_disk(folder: Path) -> tuple[int, int]:
    """Bytes on disk (as ``du`` counts them) and entries under ``folder``: what an attack left."""
    total = count = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
            count += 1
    return total, count


def setup_cell(quota_mb: int) -> str:
    """The cell that gives the attacks their target (run once per kernel)."""
    return f"QUOTA_MB = {quota_mb}\nMB = 1024 * 1024"


def _cell(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


ATTACKS: dict[str, str] = {
    # The burst: eleven files of 95 MB, one after another.
    "eleven 95 MB files": _cell(
        """
        import errno
        error = None
        block = b'x' * (95 * MB)
        for i in range(11):
            try:
                with open(f'burst{i}.bin', 'wb') as f:
                    f.write(block)
            except OSError as exc:
                error = errno.errorcode[exc.errno]
        error
        """
    ),
    # One write call of four times the quota.
    "one write of 4x the quota": _cell(
        """
        import errno, os
        error = None
        fd = os.open('big.bin', os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, b'x' * (4 * QUOTA_MB * MB))
            os.write(fd, b'x')
        except OSError as exc:
            error = errno.errorcode[exc.errno]
        os.close(fd)
        error
        """
    ),
    # A sparse file: one byte written 10 GB out, then its holes filled by truncate/fallocate.
    "sparse, ftruncate, fallocate": _cell(
        """
        import ctypes, errno, os
        errors = []
        fd = os.open('sparse.bin', os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in (
            lambda: (os.lseek(fd, 10 * 1024 * MB, 0), os.write(fd, b'x')),
            lambda: os.ftruncate(fd, 20 * QUOTA_MB * MB),
            lambda: os.posix_fallocate(fd, 0, 4 * QUOTA_MB * MB),
        ):
            try:
                attempt()
            except OSError as exc:
                errors.append(errno.errorcode[exc.errno])
        # fallocate(FALLOC_FL_KEEP_SIZE) reserves blocks past the end, size unchanged.
        libc = ctypes.CDLL(None, use_errno=True)
        done = libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(4 * QUOTA_MB * MB))
        errors.append(errno.errorcode[ctypes.get_errno()] if done else None)
        os.close(fd)
        errors
        """
    ),
    # Files grown through shared mappings, each as long as the file limit lets it be.
    "mmap writes": _cell(
        """
        import errno, mmap, os
        error = None
        for i in range(12):
            try:
                fd = os.open(f'map{i}.bin', os.O_RDWR | os.O_CREAT, 0o600)
                size = QUOTA_MB * MB // 5
                os.ftruncate(fd, size)
                with mmap.mmap(fd, size) as m:
                    for offset in range(0, size, 4096):
                        m[offset] = 1
                os.close(fd)
            except OSError as exc:
                error = errno.errorcode[exc.errno]
        error
        """
    ),
    # Many tiny files: each takes a block (and an entry) but is far below any file limit.
    "20,000 tiny files": _cell(
        """
        import errno, os
        error = None
        os.makedirs('tiny', exist_ok=True)
        try:
            for i in range(20_000):
                with open(f'tiny/{i}', 'wb') as f:
                    f.write(b'x')
        except OSError as exc:
            error = errno.errorcode[exc.errno]
        error
        """
    ),
    # Eight threads and four processes writing their own files at the same time.
    "threads and processes in parallel": _cell(
        """
        import errno, os, subprocess, sys, threading
        errors = []
        block = b'x' * (QUOTA_MB * MB // 8)

        def fill(tag):
            try:
                for i in range(6):
                    fd = os.open(f'par-{tag}-{i}.bin', os.O_WRONLY | os.O_CREAT, 0o600)
                    try:
                        os.write(fd, block)
                    finally:
                        os.close(fd)
            except OSError as exc:
                errors.append(errno.errorcode[exc.errno])

        child = (
            "import os, sys\\n"
            "block = b'x' * int(sys.argv[2])\\n"
            "for i in range(6):\\n"
            "    with open(f'proc-{sys.argv[1]}-{i}.bin', 'wb') as f: f.write(block)\\n"
        )
        procs = [
            subprocess.Popen([sys.executable, '-c', child, str(n), str(len(block))],
                             stderr=subprocess.DEVNULL)
            for n in range(4)
        ]
        threads = [threading.Thread(target=fill, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = [p.wait() for p in procs]
        sorted(set(errors)), codes
        """
    ),
}

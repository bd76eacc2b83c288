"""A seccomp filter that closes the two ways around RLIMIT_FSIZE a sandboxed kernel has.

The home quota without a per-student filesystem relies on RLIMIT_FSIZE (see
:mod:`workbook.kernels.home_watch`): Linux checks it synchronously on every ``write``,
``ftruncate`` and ``fallocate`` that makes a file longer. Two calls take disk space without
making a file longer, so the limit never sees them:

- ``fallocate`` with a mode (``FALLOC_FL_KEEP_SIZE`` and the others) reserves blocks past
  the end of a file while its size stays put: measured here, 200 MB reserved under a 10 MB
  limit. The filter answers ``EOPNOTSUPP`` for every mode but 0; ``posix_fallocate``
  (mode 0) is still allowed and obeys the limit.
- ``io_uring`` runs the same operations from a ring the filter cannot look into: its
  set-up call answers ``ENOSYS``, so programs use plain system calls instead.

System calls of any other architecture (a 32-bit ``int 0x80`` on x86-64, or x32) are
refused outright, since their numbers differ. The program is classic BPF, the form
bubblewrap's ``--seccomp FD`` loads; :func:`program_fd` hands it over in a memory file.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

__all__ = ["program", "program_fd"]

# linux/audit.h and the syscall tables of each architecture.
_ARCHES = {
    "x86_64": (0xC000003E, 285),  # AUDIT_ARCH_X86_64, __NR_fallocate
    "aarch64": (0xC00000B7, 47),  # AUDIT_ARCH_AARCH64
}
_IO_URING_SETUP = 425  # the same number on every architecture (unified table)
_X32_BIT = 0x40000000

# linux/filter.h, linux/seccomp.h
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
# struct seccomp_data: nr at 0, arch at 4, args[6] (64-bit each) from 16.
_NR, _ARCH, _MODE_LOW = 0, 4, 24  # fallocate's mode is args[1]; an int: its low half


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes:
    """The filter as ``struct sock_filter`` entries, for this machine's architecture.

    Raises:
        OSError: an architecture this filter does not know (the caller decides).
    """
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise OSError(f"no write filter for the {machine} architecture")
    arch, fallocate = _ARCHES[machine]
    refuse_foreign = _ERRNO | errno.ENOSYS
    # Each jump counts the instructions it skips.
    return b"".join(
        [
            _insn(_LD_W_ABS, 0, 0, _ARCH),
            _insn(_JEQ_K, 1, 0, arch),  # 1
            _insn(_RET_K, 0, 0, refuse_foreign),  # 2
            _insn(_LD_W_ABS, 0, 0, _NR),  # 3
            _insn(_JGE_K, 0, 1, _X32_BIT),  # 4
            _insn(_RET_K, 0, 0, refuse_foreign),  # 5
            _insn(_JEQ_K, 0, 1, _IO_URING_SETUP),  # 6
            _insn(_RET_K, 0, 0, _ERRNO | errno.ENOSYS),  # 7
            _insn(_JEQ_K, 1, 0, fallocate),  # 8
            _insn(_RET_K, 0, 0, _ALLOW),  # 9
            _insn(_LD_W_ABS, 0, 0, _MODE_LOW),  # 10
            _insn(_JEQ_K, 0, 1, 0),  # 11
            _insn(_RET_K, 0, 0, _ALLOW),  # 12
            _insn(_RET_K, 0, 0, _ERRNO | errno.EOPNOTSUPP),  # 13
        ]
    )


def program_fd() -> int:
    """A file descriptor to read :func:`program` from, positioned at its start.

    The caller passes it to bubblewrap (``--seccomp FD``) and closes it after the start.
    """
    fd = os.memfd_create("workbook-write-filter")
    try:
        os.write(fd, program())
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd

"""A seccomp filter that closes the two ways around RLIMIT_FSIZE a sandboxed kernel has.

The home quota without a per-student filesystem relies on RLIMIT_FSIZE (see
:mod:`workbook.kernels.home_watch`): Linux checks it synchronously on every ``write``,
``ftruncate`` and ``fallocate`` that makes a file longer. Two calls take disk space without
making a file longer, so the limit never sees them:

- ``fallocate`` with a mode (``FALLOC_FL_KEEP_SIZE`` and the others) reserves blocks past
  the end of a file while its size stays put: measured here, 200 MB reserved under a 10 MB
  limit. The filter answers ``EOPNOTSUPP`` for every mode but 0; ``posix_fallocate``
  (mode 0) is still allowed and obeys the limit (glibc also falls back to plain writes when
  the call is refused).
- ``io_uring`` runs the same operations from a ring the filter cannot look into: its
  set-up call answers ``ENOSYS``, so programs use plain system calls instead.

System calls of another architecture than the machine's own (a 32-bit ``int 0x80`` on
x86-64, say) answer ``ENOSYS``, since their numbers differ. Everything else is allowed:
bubblewrap's namespaces and the limits do the rest of the sandbox's work.

The filter is built by libseccomp (through ``pyseccomp``, a thin binding of its C API), which
knows each architecture's system call numbers and argument layout, and exported as the
classic BPF program that bubblewrap's ``--seccomp FD`` loads; :func:`program_fd` hands it
over in a memory file.
"""

from __future__ import annotations

import errno
import os

__all__ = ["program", "program_fd"]


class _MemoryFile:
    """What libseccomp's export needs: an object with a file descriptor."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("workbook-write-filter")

    def fileno(self) -> int:
        return self.fd


def program_fd() -> int:
    """A file descriptor to read :func:`program` from, positioned at its start.

    The caller passes it to bubblewrap (``--seccomp FD``) and closes it after the start.

    Raises:
        OSError: libseccomp is missing, or does not know this machine's architecture.
    """
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:  # the binding loads libseccomp.so.2 on import
        raise OSError(f"libseccomp is not available ({exc}); install libseccomp2") from None
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.ERRNO(errno.ENOSYS))
    # fallocate(fd, mode, offset, len): any mode but 0 takes space past the file's size.
    rules.add_rule(seccomp.ERRNO(errno.EOPNOTSUPP), "fallocate", seccomp.Arg(1, seccomp.NE, 0))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "io_uring_setup")
    out = _MemoryFile()
    try:
        rules.export_bpf(out)
        os.lseek(out.fd, 0, os.SEEK_SET)
    except OSError:
        os.close(out.fd)
        raise
    return out.fd


def program() -> bytes:
    """The filter as ``struct sock_filter`` entries, for this machine's architecture.

    Raises:
        OSError: libseccomp is missing, or does not know this machine's architecture.
    """
    fd = program_fd()
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)

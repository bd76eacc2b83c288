"""Hosted mode: the bubblewrap command line that confines one student's kernel.

Inside the sandbox a kernel sees only:

- the system (``/usr``, ``/etc``) and the virtual environment, read-only;
- ``lm_engine`` and the kernel launcher under ``/opt/workbook``, read-only (the repository
  itself is not visible: it may hold the database and other students' folders);
- the model cache, read-only (the app builds it before starting kernels);
- its own working folder, writable, as ``/home/student``; a private ``/tmp``;
- its per-kernel IPC folder, the only channel to the app (``transport="ipc"``).

It has no network namespace (no TCP at all, not even to 127.0.0.1), its own PID namespace,
and dies with the app. The process cap is RLIMIT_NPROC, which Linux counts per (user
namespace, user), so each sandbox has its own budget; root is exempt from RLIMIT_NPROC, so an
app running as root puts each sandbox into its own pids cgroup instead (:class:`ProcessCap`).

If bubblewrap is missing or the machine refuses user namespaces, :func:`check_available`
raises :class:`SandboxUnavailable` saying why: hosted mode never runs kernels unsandboxed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

SANDBOX_HOME = Path("/home/student")
SANDBOX_CODE = Path("/opt/workbook")

_REPO_ROOT = Path(__file__).resolve().parents[1]
_LAUNCHER = Path(__file__).resolve().with_name("kernel_launcher.py")


class KernelError(RuntimeError):
    """Something went wrong with a student's kernel (base of the kernel errors)."""


class SandboxUnavailable(KernelError):
    """Hosted mode was asked for, but kernels cannot be sandboxed on this machine."""


def _pids_root() -> Path | None:
    """The pids cgroup folder the app may create children in, or ``None``."""
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if (base / "cgroup.procs").exists() and os.access(base, os.W_OK):
            if base.name == "cgroup" and "pids" not in _read(base / "cgroup.subtree_control"):
                continue
            return base
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class ProcessCap:
    """A pids cgroup holding one sandbox, for an app running as root.

    For an unprivileged app RLIMIT_NPROC inside the sandbox's user namespace is enough; root
    is exempt from RLIMIT_NPROC, so the app caps the sandbox with a pids cgroup instead.
    """

    def __init__(self, max_procs: int) -> None:
        root = _pids_root()
        if root is None:
            raise SandboxUnavailable(
                "Hosted mode cannot start: the app runs as root, where the per-kernel process "
                "limit needs a writable pids cgroup, and none is available. Run the app as an "
                "unprivileged user instead."
            )
        self.path = root / "workbook" / uuid.uuid4().hex[:12]
        self.path.mkdir(parents=True)
        (self.path / "pids.max").write_text(str(max_procs))
        self._procs_fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)

    def join(self) -> None:
        """Move the calling process into the cgroup (run in the child before exec)."""
        os.write(self._procs_fd, str(os.getpid()).encode())

    def remove(self) -> None:
        """Delete the cgroup once its processes are gone."""
        with contextlib.suppress(OSError):
            os.close(self._procs_fd)
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # the killed processes are still being reaped


def remove_stale_caps() -> None:
    """Delete empty cgroups left behind by an app that was killed (non-empty ones stay)."""
    root = _pids_root()
    if root is None or not (root / "workbook").is_dir():
        return
    for child in (root / "workbook").iterdir():
        if child.is_dir():
            with contextlib.suppress(OSError):
                child.rmdir()


def needs_process_cap() -> bool:
    """Whether the app must add a :class:`ProcessCap` (it runs as root)."""
    return os.geteuid() == 0


def _system_binds() -> list[str]:
    """The read-only system, a private /proc, /dev and /tmp, then the Python in use.

    Order matters: bubblewrap mounts in sequence, so the interpreter and virtual environment
    are bound *after* the private /tmp, or a checkout under /tmp would be hidden by it.
    """
    args: list[str] = []
    for name in ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            # Merged-/usr systems: /bin -> usr/bin and so on; recreate the link.
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    # The virtual environment (and the interpreter it links to) may live outside /usr.
    for prefix in {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}:
        if prefix.is_dir() and not str(prefix).startswith("/usr"):
            args += ["--ro-bind", str(prefix), str(prefix)]
    return args


def bwrap_argv(
    kernel_argv: Sequence[str],
    *,
    home: Path,
    ipc_dir: Path,
    readonly: Sequence[Path] = (),
) -> list[str]:
    """The full command line that runs ``kernel_argv`` inside a fresh sandbox.

    Args:
        kernel_argv: the kernel command as seen inside the sandbox (use :data:`SANDBOX_CODE`
            paths for the launcher; see :func:`launcher_path`).
        home: the student's private working folder, writable, mounted at ``/home/student``.
        ipc_dir: the per-kernel folder holding the connection file and the IPC sockets,
            mounted writable at the same path so the app and the kernel agree on it.
        readonly: further folders to expose read-only at the same path (the model cache).
    """
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    args += ["--hostname", "workbook"]
    args += _system_binds()
    args += ["--ro-bind", str(_REPO_ROOT / "lm_engine"), str(SANDBOX_CODE / "lm_engine")]
    args += ["--ro-bind", str(_LAUNCHER), str(SANDBOX_CODE / "kernel_launcher.py")]
    for path in readonly:
        if Path(path).exists():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(home), str(SANDBOX_HOME)]
    args += ["--bind", str(ipc_dir), str(ipc_dir)]
    # The sandbox's own root is a tmpfs holding the mount points: make it read-only too.
    args += ["--remount-ro", "/", "--chdir", str(SANDBOX_HOME), "--"]
    return args + list(kernel_argv)


def launcher_path() -> Path:
    """Where the kernel launcher script appears inside the sandbox."""
    return SANDBOX_CODE / "kernel_launcher.py"


@functools.cache
def _probe() -> str | None:
    """Run a throw-away sandbox once per process; the reason it failed, or ``None``."""
    if shutil.which("bwrap") is None:
        return (
            "bubblewrap (the 'bwrap' command) is not installed; install the Debian package "
            "'bubblewrap' or set WORKBOOK_SANDBOX=0 for a local single-user run"
        )
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    argv += _system_binds()
    argv += ["--", sys.executable, "-c", "print('sandbox ok')"]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, check=False, cwd="/"
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap could not be started: {exc}"
    if done.returncode != 0 or "sandbox ok" not in done.stdout:
        reason = done.stderr.strip() or f"exit status {done.returncode}"
        return (
            f"bubblewrap cannot create a sandbox here ({reason}); if it mentions namespaces "
            "or 'Operation not permitted', the machine or container refuses user namespaces "
            "(sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)"
        )
    return None


def check_available() -> None:
    """Refuse hosted mode unless kernels can really be sandboxed and bounded.

    Raises:
        SandboxUnavailable: with the reason and what to do about it.
    """
    reason = _probe()
    if reason is not None:
        raise SandboxUnavailable(f"Hosted mode cannot start: {reason}.")
    if needs_process_cap() and _pids_root() is None:
        ProcessCap(1)  # raises with the explanation

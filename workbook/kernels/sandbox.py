"""Hosted mode: the bubblewrap command line that confines one student's kernel.

Inside the sandbox a kernel sees only:

- the system (``/usr``, ``/etc``) and the virtual environment, read-only;
- ``lm_engine`` and the kernel launcher under ``/opt/workbook``, read-only (the repository
  itself is not visible: it may hold the database and other students' folders);
- the model cache, read-only (the app builds it before starting kernels);
- its own working folder, writable, as ``/home/student``; a private, size-bounded ``/tmp``;
- its per-kernel IPC folder, the only channel to the app (``transport="ipc"``). It holds the
  sockets and the kernel's copy of its connection file; the app never reads a file from it
  (its connection details stay in memory, the kernel's error output goes to a file only the
  app holds open).

It has no network namespace (no TCP at all, not even to 127.0.0.1), its own PID namespace,
and dies with the app. Student code never holds a privilege on the host, whoever runs the app:

- it runs as uid/gid 1000 inside its own user namespace, with every capability dropped,
  ``PR_SET_NO_NEW_PRIVS`` set (setuid/setgid files give nothing; every bind is ``nosuid``)
  and no way to create further user namespaces (``--disable-userns``);
- on the host that uid is the app's own uid when the app runs unprivileged. When the app runs
  as root, an outer bubblewrap (root, so it can bind folders an unprivileged user could not
  reach) builds the mounts and namespaces, then ``setpriv`` drops to the unprivileged
  ``Settings.sandbox_uid`` and an inner, unprivileged bubblewrap adds the user namespace.
  The kernel and all it starts are that uid on the host, with no capability.

Per-student totals (memory, processes, CPU, home quota) are :mod:`workbook.kernels.limits`' job.
If bubblewrap is missing or the machine refuses user namespaces, :func:`check_available`
raises :class:`SandboxUnavailable` saying why: hosted mode never runs kernels unsandboxed.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from workbook.kernels import cgroups
from workbook.kernels.errors import SandboxUnavailable

SANDBOX_HOME = Path("/home/student")
SANDBOX_CODE = Path("/opt/workbook")

_REPO_ROOT = Path(__file__).resolve().parents[2]
_LAUNCHER = Path(__file__).resolve().with_name("kernel_launcher.py")


def runs_as_root() -> bool:
    """Whether the app runs as root (then the sandbox drops to ``sandbox_uid`` itself)."""
    return os.geteuid() == 0


def _parents(path: Path) -> list[str]:
    """``--dir`` lines creating ``path``'s parents world-traversable inside the sandbox.

    Bubblewrap run as root creates missing mount-point parents with mode 0700, which the
    unprivileged sandbox user could not traverse; unprivileged it creates them 0755 anyway.
    """
    args: list[str] = []
    for parent in reversed(Path(path).parents):
        if str(parent) != "/":
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _system_binds(tmp_mb: int) -> list[str]:
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
    args += ["--proc", "/proc", "--dev", "/dev"]
    # A RAM-backed /tmp of bounded size, writable by whoever the sandbox user is.
    args += ["--perms", "1777", "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    # The virtual environment (and the interpreter it links to) may live outside /usr.
    for prefix in sorted(
        {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    ):
        if prefix.is_dir() and not str(prefix).startswith("/usr"):
            args += _parents(prefix) + ["--ro-bind", str(prefix), str(prefix)]
    return args


_NAMESPACES = [
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
    "--hostname",
    "workbook",
]
# Inside its user namespace the kernel is this uid/gid (never 0), with no capability.
_INNER_ID = ["--uid", "1000", "--gid", "1000", "--disable-userns", "--cap-drop", "ALL"]


def bwrap_argv(
    kernel_argv: Sequence[str],
    *,
    home: Path,
    ipc_dir: Path,
    sandbox_uid: int,
    readonly: Sequence[Path] = (),
    tmp_mb: int = 256,
    as_root: bool | None = None,
    seccomp_fd: int | None = None,
) -> list[str]:
    """The full command line that runs ``kernel_argv`` inside a fresh sandbox.

    Args:
        kernel_argv: the kernel command as seen inside the sandbox (use :data:`SANDBOX_CODE`
            paths for the launcher; see :func:`launcher_path`).
        home: the student's private working folder, writable, mounted at ``/home/student``.
        ipc_dir: the per-kernel folder holding the IPC sockets, mounted writable at the same
            path so the app and the kernel agree on it.
        readonly: further folders to expose read-only at the same path (the model cache).
        sandbox_uid: the host uid the kernel runs as when the app runs as root.
        tmp_mb: size of the sandbox's private ``/tmp``.
        as_root: build the command for an app running as root (default: whether it does).
        seccomp_fd: a descriptor to read a seccomp program from
            (:mod:`workbook.kernels.write_filter`), loaded before the sandbox's first command.
    """
    as_root = runs_as_root() if as_root is None else as_root
    args = ["bwrap", *_NAMESPACES]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    if as_root:
        # The outer sandbox keeps only what setpriv needs to drop to the sandbox user.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", *_INNER_ID]
    args += _system_binds(tmp_mb)
    args += _parents(SANDBOX_CODE / "lm_engine")
    args += ["--ro-bind", str(_REPO_ROOT / "lm_engine"), str(SANDBOX_CODE / "lm_engine")]
    args += ["--ro-bind", str(_LAUNCHER), str(SANDBOX_CODE / "kernel_launcher.py")]
    for path in readonly:
        if Path(path).exists():
            args += _parents(Path(path)) + ["--ro-bind", str(path), str(path)]
    args += _parents(SANDBOX_HOME) + ["--bind", str(home), str(SANDBOX_HOME)]
    args += _parents(ipc_dir) + ["--bind", str(ipc_dir), str(ipc_dir)]
    # The sandbox's own root is a tmpfs holding the mount points: make it read-only too.
    args += ["--remount-ro", "/"]
    if not as_root:
        return [*args, "--chdir", str(SANDBOX_HOME), "--", *kernel_argv]
    # Root without its capabilities cannot enter the sandbox user's 0700 home: only the
    # inner bubblewrap, already that user, changes into it.
    args += ["--chdir", "/", "--"]
    gid = _gid_of(sandbox_uid)
    args += ["setpriv", f"--reuid={sandbox_uid}", f"--regid={gid}", "--clear-groups"]
    args += ["--", "bwrap", "--unshare-user", *_INNER_ID, "--die-with-parent"]
    # The outer mounts, as they are; devices stay usable (/dev/null, /dev/urandom).
    args += ["--dev-bind", "/", "/", "--chdir", str(SANDBOX_HOME), "--"]
    return args + list(kernel_argv)


def _gid_of(uid: int) -> int:
    """The primary group of ``uid`` if it names a user, else the same number."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def prepare_folder(path: Path, sandbox_uid: int) -> None:
    """Make ``path`` the sandbox user's own folder (mode 0700).

    As root the folder is handed to ``sandbox_uid``; unprivileged it already belongs to
    the app's uid, which is also the sandbox's uid on the host.
    """
    path.mkdir(parents=True, exist_ok=True)
    give(path, sandbox_uid)
    os.chmod(path, 0o700, follow_symlinks=False)


def give(path: Path, sandbox_uid: int) -> None:
    """Hand ``path`` (never a link's target) to the sandbox user when the app runs as root."""
    if runs_as_root():
        os.chown(path, sandbox_uid, _gid_of(sandbox_uid), follow_symlinks=False)


def lock_folder(path: Path) -> None:
    """Take ``path`` back from the sandbox user once the kernel has made its sockets.

    As root, the IPC folder returns to root (mode 0755): the kernel keeps using its sockets
    but can no longer swap one for a link, which the app would otherwise follow when it
    reconnects. Unprivileged, the sandbox and the app are one uid and nothing changes.
    """
    if runs_as_root():
        os.chown(path, 0, 0, follow_symlinks=False)
        os.chmod(path, 0o755, follow_symlinks=False)


def share_read_only(path: Path) -> None:
    """Let every user read ``path`` (the model cache), as root, where it is not yet so.

    As root the kernel runs as ``sandbox_uid``, which must read the weights the app cached
    (built with private permissions). They are public model files: opening them to all
    users gives away nothing. Links are never followed.
    """
    if not runs_as_root() or not Path(path).is_dir():
        return
    for folder, dirs, files in os.walk(path):
        for name, wanted in [(folder, 0o555)] + [(os.path.join(folder, f), 0o444) for f in files]:
            info = os.lstat(name)
            if stat.S_ISLNK(info.st_mode) or info.st_mode & wanted == wanted:
                continue
            os.chmod(name, stat.S_IMODE(info.st_mode) | wanted, follow_symlinks=False)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]


def launcher_path() -> Path:
    """Where the kernel launcher script appears inside the sandbox."""
    return SANDBOX_CODE / "kernel_launcher.py"


@functools.cache
def _probe(sandbox_uid: int) -> str | None:
    """Run a throw-away sandbox once per process; the reason it failed, or ``None``."""
    if shutil.which("bwrap") is None:
        return (
            "bubblewrap (the 'bwrap' command) is not installed; install the Debian package "
            "'bubblewrap' or set WORKBOOK_SANDBOX=0 for a local single-user run"
        )
    if runs_as_root() and shutil.which("setpriv") is None:
        return "the app runs as root and needs 'setpriv' (Debian package util-linux)"
    with tempfile.TemporaryDirectory(prefix="wbk-probe-") as tmp:
        home, ipc = Path(tmp) / "home", Path(tmp) / "ipc"
        for folder in (home, ipc):
            prepare_folder(folder, sandbox_uid)
        argv = bwrap_argv(
            [sys.executable, "-c", "import os; print('sandbox ok', os.getuid())"],
            home=home,
            ipc_dir=ipc,
            sandbox_uid=sandbox_uid,
            tmp_mb=1,
        )
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=60, check=False, cwd="/"
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap could not be started: {exc}"
    if done.returncode != 0 or "sandbox ok 1000" not in done.stdout:
        reason = done.stderr.strip()[-500:] or f"exit status {done.returncode}"
        return (
            f"bubblewrap cannot create a sandbox here ({reason}); if it mentions namespaces "
            "or 'Operation not permitted', the machine or container refuses unprivileged "
            "user namespaces (sysctl kernel.unprivileged_userns_clone / "
            "user.max_user_namespaces); as root, 'Permission denied' may mean the sandbox "
            "user cannot read the Python installation"
        )
    return None


def check_available(sandbox_uid: int) -> None:
    """Refuse hosted mode unless kernels can really be sandboxed and bounded.

    Both checks run once per process (every kernel start asks again).

    Args:
        sandbox_uid: the host uid kernels run as when the app runs as root
            (``Settings.sandbox_uid``).

    Raises:
        SandboxUnavailable: with the reason and what to do about it.
    """
    reason = _probe(sandbox_uid)
    if reason is not None:
        raise SandboxUnavailable(f"Hosted mode cannot start: {reason}.")
    if runs_as_root():
        # Detects v2, v1 or neither once and logs what enforces each limit; with neither,
        # the watchdog does (hosted mode does not refuse to start for want of cgroups).
        cgroups.hierarchy()

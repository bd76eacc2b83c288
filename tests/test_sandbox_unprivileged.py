"""The hosted-mode tests again, as an unprivileged user, when the suite runs as root.

CI runs as root, where the sandbox drops privileges itself and cgroups bound each student.
An app run by an ordinary user takes other paths (bubblewrap unprivileged, the watchdog
instead of cgroups, RLIMIT_NPROC instead of a pids cgroup, no per-student filesystem), so
this test re-runs ``test_sandbox.py``, ``test_sandbox_limits.py``, ``test_home_quota.py`` and
``test_home_watch.py``
(and the LTI tests, since file permissions such as the tool key's 0600 mean little to root)
as a dedicated unprivileged user (``workbook-test``, created when missing) and expects every
test there to pass.

That user must be able to read the Python installation and the model cache. Where they sit
under a folder closed to other users (``/root`` on this machine), the re-run happens in a
private mount namespace where that folder is replaced by an open one holding only those
paths, read from the original through bind mounts; nothing changes on the host.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
from sandbox_support import PROBLEM, ROOT

from lm_engine.config import default_cache_dir
from workbook.kernels import sandbox

pytestmark = pytest.mark.slow

USER = "workbook-test"
FILES = [
    "tests/test_sandbox.py",
    "tests/test_sandbox_limits.py",
    "tests/test_home_quota.py",
    "tests/test_home_watch.py",
    # LTI: the tool's private key file (0600, made on first use) and the launch routes
    "tests/test_db_lti.py",
    "tests/test_lti_launch.py",
]


def _test_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        pytest.skip(f"no user {USER!r} and no useradd to create one")
    done = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"could not create the user {USER!r}: {done.stderr.strip()}")
    return pwd.getpwnam(USER)


def _closed_ancestor(path: Path) -> Path | None:
    """The outermost folder above ``path`` that other users cannot pass through."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            return parent
    return None


def _mount_script(needed: list[Path], scratch: Path) -> str:
    """Shell lines that open every closed folder above ``needed`` (in a private namespace)."""
    lines = ["set -e"]
    opened: dict[Path, Path] = {}
    for path in needed:
        closed = _closed_ancestor(path)
        if closed is None:
            continue
        if closed not in opened:
            original = scratch / f"original{len(opened)}"
            original.mkdir()
            opened[closed] = original
            lines += [
                f"mount --bind '{closed}' '{original}'",
                f"mount -t tmpfs -o mode=0755 tmpfs '{closed}'",
            ]
        relative = path.relative_to(closed)
        lines += [
            f"mkdir -p '{closed / relative}'",
            f"mount --bind '{opened[closed] / relative}' '{closed / relative}'",
        ]
    return "\n".join(lines)


@pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")
def test_hosted_mode_tests_pass_as_an_unprivileged_user():
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the hosted-mode tests run as this user directly")
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' (util-linux) is needed to switch users")
    user = _test_user()
    # pytest's own temporary folders are closed to other users: use an open one.
    top = Path(tempfile.mkdtemp(prefix="wbk-unprivileged-"))
    try:
        _run_as(user, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _run_as(user: pwd.struct_passwd, top: Path) -> None:
    os.chmod(top, 0o755)
    scratch = top / "scratch"
    scratch.mkdir()
    home = top / "home"
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    cache = default_cache_dir().resolve()
    sandbox.share_read_only(cache)  # as the app does before its first kernel
    needed = sorted(
        {
            Path(sys.base_prefix).resolve(),
            Path(sys.executable).resolve().parent.parent,
            Path(sys.prefix).resolve(),
            Path(sysconfig.get_paths()["purelib"]).resolve(),
            cache,
        }
    )
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LM_ENGINE_CACHE": str(cache),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    pytest_argv = [
        sys.executable,
        "-m",
        "pytest",
        *FILES,
        "-p",
        "no:cacheprovider",
        f"--basetemp={home / 'pytest'}",
        "-q",
        "-rs",
        "-s",
    ]
    switch = [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--",
        "env",
        "-i",
        *(f"{key}={value}" for key, value in env.items()),
        *pytest_argv,
    ]
    script = _mount_script(needed, scratch) + '\nexec "$@"\n'
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"] + switch,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = done.stdout + done.stderr
    print(f"--- the hosted-mode tests as {USER} (uid {user.pw_uid}) ---")
    lines = (line.lstrip(".sFE") for line in done.stdout.splitlines())  # progress marks
    print("\n".join(line for line in lines if line.startswith(("[", "SKIPPED"))))
    # pytest's summary is stdout's last line (stderr holds the model loader's progress).
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "(no output)"
    print(summary)
    assert done.returncode == 0, output[-6000:]
    assert "passed" in summary and "failed" not in summary and "error" not in summary

"""Per-sandbox cgroups: v2, v1 or neither detected; the v2 subtree; the watchdog fallback.

Where the v2 code runs against what (this machine mounts the legacy v1 controllers, so a
real cgroup2 hierarchy here has memory, pids and cpu bound to v1 and offers none of them):

- detection and the files written for a sandbox: a folder laid out like cgroupfs
  (``Documentation/admin-guide/cgroup-v2.rst``: ``cgroup.controllers``,
  ``cgroup.subtree_control``, ``cgroup.procs``, ``memory.max``, ``memory.events`` ...);
- the "no internal processes" rule and the move into a leaf: the real cgroup2 hierarchy
  this machine mounts (or one we mount), with whatever controller it offers (the test
  prints which); skipped unless root;
- the fallback to the watchdog: for real, a sandboxed kernel as root with no cgroup.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from workbook.kernels import cgroups

MB = 1024 * 1024


def _fake_v2(tmp_path: Path, offered: str = "cpuset cpu io memory hugetlb pids rdma") -> Path:
    """A v2 host as cgroupfs shows it: the app in /system.slice/workbook.service."""
    base = tmp_path / "cgroup"
    own = base / "system.slice" / "workbook.service"
    own.mkdir(parents=True)
    (base / "cgroup.controllers").write_text(offered + "\n")
    (own / "cgroup.controllers").write_text(offered + "\n")
    (own / "cgroup.subtree_control").write_text("")
    (own / "cgroup.procs").write_text("")
    (tmp_path / "self_cgroup").write_text("0::/system.slice/workbook.service\n")
    return base


def test_detect_finds_a_v2_host_and_the_apps_own_cgroup(tmp_path):
    base = _fake_v2(tmp_path)
    found = cgroups.detect(base, tmp_path / "self_cgroup")
    assert found.kind == "v2"
    assert found.own == base / "system.slice" / "workbook.service"
    assert {"memory", "pids", "cpu"} <= found.controllers
    lines = cgroups.enforcement(found)
    assert any(line.startswith("memory:") and "memory.max" in line for line in lines)
    assert any(line.startswith("CPU:") and "cpu.max" in line for line in lines)


def test_a_v2_host_without_a_memory_controller_falls_back_to_the_watchdog(tmp_path):
    base = _fake_v2(tmp_path, offered="cpu io pids")
    found = cgroups.detect(base, tmp_path / "self_cgroup")
    assert found.kind == "none" and "memory" in found.why
    lines = cgroups.enforcement(found)
    assert "watchdog" in lines[0] and found.why in lines[0]


def test_detect_finds_v1_controllers_or_none(tmp_path):
    base = tmp_path / "v1"
    for name in ("memory", "pids", "cpu"):
        (base / name).mkdir(parents=True)
        (base / name / "cgroup.procs").write_text("")
    found = cgroups.detect(base, tmp_path / "missing")
    assert found.kind == "v1" and set(found.roots) == {"memory", "pids", "cpu"}
    (base / "pids" / "cgroup.procs").unlink()
    found = cgroups.detect(base, tmp_path / "missing")
    assert found.kind == "none" and "pids" in found.why
    assert cgroups.detect(tmp_path / "empty", tmp_path / "missing").kind == "none"


def test_own_v2_cgroup_reads_the_unified_line_among_v1_ones():
    text = "4:memory:/x\n1:name=systemd:/y\n0::/user.slice/app.scope\n"
    assert cgroups.own_v2_cgroup(text) == "/user.slice/app.scope"
    assert cgroups.own_v2_cgroup("4:memory:/x\n") is None


def test_v2_sandbox_cgroup_gets_its_limits_and_reports_oom_kills(tmp_path):
    base = _fake_v2(tmp_path)
    own = base / "system.slice" / "workbook.service"
    parent = cgroups.prepare_v2(own, frozenset({"memory", "pids", "cpu", "io"}))
    assert parent == own / cgroups.GROUP
    # Controllers enabled for the app's children and for the sandboxes, never io.
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (own / cgroups.LEAF).is_dir()
    box = cgroups.CgroupsV2(parent, memory_mb=768, max_procs=64, cpus=2)
    path = box.paths["memory"]
    assert path.parent == parent
    assert (path / "memory.max").read_text() == str(768 * MB)
    assert (path / "memory.swap.max").read_text() == "0"
    assert (path / "pids.max").read_text() == "64"
    quota, period = (path / "cpu.max").read_text().split()
    assert int(quota) == 2 * int(period)
    assert box.oom_kills() == 0
    # memory.events as the kernel writes it after the ceiling killed one process.
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    assert box.oom_kills() == 1
    for file in path.iterdir():
        file.unlink()  # cgroupfs removes its own files with the folder
    box.remove()
    assert not path.exists()


def _cgroup2_mount(tmp_path: Path) -> tuple[Path, str]:
    """A real cgroup2 hierarchy: the one mounted already, else one we mount."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1]), f"the host's cgroup2 mount at {fields[1]}"
    target = tmp_path / "cgroup2"
    target.mkdir()
    done = subprocess.run(["mount", "-t", "cgroup2", "none", str(target)], check=False)
    if done.returncode != 0:
        pytest.skip("no cgroup2 hierarchy mounted and mounting one failed")
    return target, f"a cgroup2 hierarchy we mounted at {target}"


def _v2_path_of(pid: int) -> str:
    return cgroups.own_v2_cgroup(Path(f"/proc/{pid}/cgroup").read_text()) or ""


@pytest.mark.skipif(os.geteuid() != 0, reason="creating cgroups needs root")
def test_v2_subtree_moves_processes_into_a_leaf_on_a_real_cgroup2(tmp_path):
    mount, which = _cgroup2_mount(tmp_path)
    offered = (mount / "cgroup.controllers").read_text().split()
    print(f"found {which}; it offers: {' '.join(offered) or 'no controller'}")
    if not offered:
        pytest.skip(f"{which} offers no controller to test the no-internal-processes rule")
    controller = offered[0]
    root_enabled = controller in (mount / "cgroup.subtree_control").read_text().split()
    own = mount / f"wbk-test-{uuid.uuid4().hex[:8]}"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        if not root_enabled:  # the root cgroup is exempt from the rule: always allowed
            (mount / "cgroup.subtree_control").write_text(f"+{controller}")
        own.mkdir()
        (own / "cgroup.procs").write_text(str(sleeper.pid))
        # What the rule forbids: controllers for the children of a cgroup holding a process.
        with pytest.raises(OSError):
            (own / "cgroup.subtree_control").write_text(f"+{controller}")
        parent = cgroups.prepare_v2(own, frozenset(offered), enable=(controller,))
        assert _v2_path_of(sleeper.pid).endswith(f"{own.name}/{cgroups.LEAF}")
        assert (own / "cgroup.procs").read_text().split() == []
        assert controller in (own / "cgroup.subtree_control").read_text().split()
        # A sandbox's cgroup gets the controller, and a process can be put in it.
        box = parent / "box"
        box.mkdir()
        assert controller in (box / "cgroup.controllers").read_text().split()
        (box / "cgroup.procs").write_text(str(sleeper.pid))
        assert _v2_path_of(sleeper.pid).endswith(f"{cgroups.GROUP}/box")
        assert cgroups.prepare_v2(own, frozenset(offered), enable=(controller,)) == parent
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
        for folder in (own / cgroups.GROUP / "box", own / cgroups.GROUP, own / cgroups.LEAF, own):
            if folder.is_dir():
                folder.rmdir()
        if not root_enabled:
            (mount / "cgroup.subtree_control").write_text(f"-{controller}")


@pytest.mark.slow
def test_as_root_without_any_cgroup_the_watchdog_bounds_memory(tmp_path_factory, monkeypatch):
    from sandbox_support import PROBLEM, hosted_pool, still_answers

    if PROBLEM is not None:
        pytest.skip(PROBLEM)
    if os.geteuid() != 0:
        pytest.skip("the unprivileged mode is the watchdog already (test_sandbox_limits.py)")
    none = cgroups.Hierarchy("none", why="test: no writable controller")
    monkeypatch.setattr(cgroups, "_setup", lambda: (none, None))
    assert cgroups.for_sandbox(768, 64, 1) is None
    pool, _ = hosted_pool(
        tmp_path_factory, cell_timeout_s=40, kernel_memory_mb=768, spare_kernels=0
    )
    try:
        alice, bob = pool.kernel_for("alice"), pool.kernel_for("bob")
        assert alice._cgroups is None  # no cgroup: the watchdog checks memory
        code = textwrap.dedent(
            """
            import subprocess, sys
            hog = "b = bytearray(b'\\x01') * (300 * 1024 * 1024); import time; time.sleep(20)"
            children = [subprocess.Popen([sys.executable, '-c', hog]) for _ in range(4)]
            [child.wait() for child in children]
            """
        )
        result = alice.execute(code)
        assert result.status == "died"
        assert "memory" in result.message and "768 MB" in result.message
        still_answers(bob, "after the memory attempt without cgroups")
    finally:
        pool.shutdown_all()

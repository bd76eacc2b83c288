"""One cgroup per sandbox when the app runs as root: cgroup v2 or v1, whichever the host has.

The Linux kernel then enforces a sandbox's memory, process and CPU ceilings on every process
in it, including those that outlive their cell. :func:`detect` looks once at start-up:

- **v2** (Debian 12, Ubuntu 22.04+, RHEL 9: one unified hierarchy at ``/sys/fs/cgroup``):
  the app's own cgroup (from ``/proc/self/cgroup``) must offer ``memory`` and ``pids``.
  A cgroup v2 with controllers enabled for its children may hold no processes itself (the
  "no internal processes" rule), so :func:`prepare_v2` first moves every process of the
  app's cgroup into a leaf (``workbook-app``), then enables ``+memory +pids +cpu`` in its
  ``cgroup.subtree_control`` and in that of ``workbook``, under which each sandbox gets a
  cgroup with ``memory.max``, ``memory.swap.max`` (0: no swap beyond the ceiling),
  ``pids.max`` and ``cpu.max``. A kill by the memory ceiling is read from ``memory.events``
  (``oom_kill``). We chose this over a transient ``systemd-run --scope``: it needs no
  systemd as PID 1 (containers rarely have it) and works the same under any delegated
  cgroup; ``Delegate=yes`` in the app's systemd unit is what lets it write there.
- **v1** (the legacy controllers mounted one per folder): ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes``), ``pids.max``, ``cpu.cfs_quota_us``; kills are read from
  ``memory.oom_control``.
- **none**: no writable controller. The app does not refuse to start: the watchdog limits of
  the unprivileged mode apply (see :mod:`workbook.kernels.limits`), and the log says so.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CgroupsUnavailable",
    "CgroupsV1",
    "CgroupsV2",
    "Hierarchy",
    "detect",
    "for_sandbox",
    "prepare_v2",
    "remove_stale",
]

log = logging.getLogger(__name__)

BASE = Path("/sys/fs/cgroup")
GROUP = "workbook"  # the folder holding one cgroup per sandbox
LEAF = "workbook-app"  # v2: where the app's own processes move
_REQUIRED = ("memory", "pids")
_WANTED = ("memory", "pids", "cpu")
_CPU_PERIOD_US = 100_000


class CgroupsUnavailable(RuntimeError):
    """A sandbox's cgroup could not be created or set up."""


@dataclass(frozen=True)
class Hierarchy:
    """What :func:`detect` found.

    Attributes:
        kind: ``"v2"``, ``"v1"`` or ``"none"``.
        own: v2: the app's own cgroup folder.
        controllers: v2: the controllers the app's cgroup offers; v1: those writable.
        roots: v1: each writable controller's folder.
        why: for ``"none"``: why no cgroup can be used.
    """

    kind: str
    own: Path | None = None
    controllers: frozenset[str] = frozenset()
    roots: dict[str, Path] = field(default_factory=dict)
    why: str = ""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def own_v2_cgroup(self_cgroup: str) -> str | None:
    """The app's path in the unified hierarchy, from ``/proc/self/cgroup`` (``0::/path``)."""
    for line in self_cgroup.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            return path
    return None


def detect(base: Path = BASE, self_cgroup: Path = Path("/proc/self/cgroup")) -> Hierarchy:
    """Which cgroup hierarchy this app may use for its sandboxes (looks, changes nothing)."""
    if (base / "cgroup.controllers").exists():  # the unified hierarchy is mounted at base
        path = own_v2_cgroup(_read(self_cgroup))
        if path is None:
            return Hierarchy("none", why="cgroup v2 host, but /proc/self/cgroup has no 0:: line")
        own = base / path.lstrip("/")
        offered = frozenset(_read(own / "cgroup.controllers").split())
        missing = [name for name in _REQUIRED if name not in offered]
        if missing:
            return Hierarchy(
                "none",
                why=f"cgroup v2 host; the app's cgroup {own} does not offer {', '.join(missing)}"
                " (delegate them to it, e.g. Delegate=yes in its systemd unit)",
            )
        if not os.access(own / "cgroup.subtree_control", os.W_OK):
            return Hierarchy("none", why=f"cgroup v2 host; the app's cgroup {own} is not writable")
        return Hierarchy("v2", own=own, controllers=offered)
    roots = {
        name: base / name
        for name in _WANTED
        if (base / name / "cgroup.procs").exists() and os.access(base / name, os.W_OK)
    }
    missing = [name for name in _REQUIRED if name not in roots]
    if not missing:
        return Hierarchy("v1", controllers=frozenset(roots), roots=roots)
    return Hierarchy(
        "none",
        roots=roots,
        why=f"no writable cgroup v2, and cgroup v1 lacks {', '.join(missing)} under {base}",
    )


def _write_pid(procs: Path, pid: str) -> None:
    try:
        procs.write_text(pid)
    except OSError as exc:
        # A process that ended meanwhile, or a kernel thread (in a root cgroup): nothing to move.
        if exc.errno not in (errno.ESRCH, errno.EINVAL):
            raise


def prepare_v2(own: Path, offered: frozenset[str], enable: Sequence[str] | None = None) -> Path:
    """Set up the sandboxes' subtree under ``own``; return the folder to create them in.

    Idempotent: safe to call again after a restart of the app.

    Args:
        own: the app's own cgroup.
        offered: the controllers ``own`` offers (its ``cgroup.controllers``).
        enable: the controllers to enable for the sandboxes (memory, pids and cpu where
            offered, by default).

    Raises:
        CgroupsUnavailable: the kernel refused a step (the message names it).
    """
    chosen = [name for name in _WANTED if name in offered] if enable is None else enable
    line = " ".join(f"+{name}" for name in chosen)
    leaf, parent = own / LEAF, own / GROUP
    try:
        leaf.mkdir(exist_ok=True)
        # New processes may fork while we move the others: a few rounds until none is left.
        for _ in range(5):
            pids = _read(own / "cgroup.procs").split()
            if not pids:
                break
            for pid in pids:
                _write_pid(leaf / "cgroup.procs", pid)
        (own / "cgroup.subtree_control").write_text(line)
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text(line)
    except OSError as exc:
        raise CgroupsUnavailable(f"setting up cgroup v2 under {own} failed ({exc})") from exc
    return parent


class _Sandbox:
    """What both versions share: the open ``cgroup.procs`` files, joining, removing."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}
        self._procs_fds: list[int] = []

    def _open_procs(self) -> None:
        for path in dict.fromkeys(self.paths.values()):
            # Opened now, by the app: the child joins before exec without touching paths.
            # (O_CREAT like every write here: cgroupfs has the file already, so it only opens.)
            self._procs_fds.append(os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CREAT))

    def join(self) -> None:
        """Move the calling process into the sandbox's cgroups (run in the child before exec)."""
        pid = str(os.getpid()).encode()
        for fd in self._procs_fds:
            os.write(fd, pid)

    def oom_kills(self) -> int:  # pragma: no cover - each version reads its own file
        raise NotImplementedError

    def remove(self) -> None:
        """Delete the cgroups once their processes are gone."""
        for fd in self._procs_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._procs_fds = []
        for path in dict.fromkeys(self.paths.values()):
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # the killed processes are still being reaped


def _count(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


class CgroupsV2(_Sandbox):
    """One cgroup v2 holding one sandbox, under the folder :func:`prepare_v2` returned."""

    def __init__(
        self, parent: Path, memory_mb: int, max_procs: int, cpus: int, *, cpu: bool = True
    ) -> None:
        super().__init__()
        path = parent / uuid.uuid4().hex[:12]
        try:
            path.mkdir()
            self.paths = {"memory": path, "pids": path}
            (path / "memory.max").write_text(str(memory_mb * 1024 * 1024))
            with contextlib.suppress(OSError):
                # Absent where the host does not account swap: then there is none to bound.
                (path / "memory.swap.max").write_text("0")
            (path / "pids.max").write_text(str(max_procs))
            if cpu:
                (path / "cpu.max").write_text(f"{cpus * _CPU_PERIOD_US} {_CPU_PERIOD_US}")
                self.paths["cpu"] = path
            self._open_procs()
        except OSError as exc:
            self.paths.setdefault("memory", path)
            self.remove()
            raise CgroupsUnavailable(f"creating the sandbox's cgroup failed ({exc})") from exc

    def oom_kills(self) -> int:
        """How many processes the memory ceiling has killed so far (``memory.events``)."""
        return _count(_read(self.paths["memory"] / "memory.events"), "oom_kill")


class CgroupsV1(_Sandbox):
    """One memory, pids and (where present) cpu cgroup v1 holding one sandbox."""

    def __init__(self, roots: dict[str, Path], memory_mb: int, max_procs: int, cpus: int) -> None:
        super().__init__()
        name = uuid.uuid4().hex[:12]
        try:
            for controller, base in roots.items():
                path = base / GROUP / name
                path.mkdir(parents=True)
                self.paths[controller] = path
            memory = self.paths["memory"]
            limit = str(memory_mb * 1024 * 1024)
            (memory / "memory.limit_in_bytes").write_text(limit)
            if (memory / "memory.memsw.limit_in_bytes").exists():
                # memsw must stay >= limit_in_bytes; same value = no swap beyond the ceiling.
                (memory / "memory.memsw.limit_in_bytes").write_text(limit)
            (self.paths["pids"] / "pids.max").write_text(str(max_procs))
            if "cpu" in self.paths:
                period = int(_read(self.paths["cpu"] / "cpu.cfs_period_us") or _CPU_PERIOD_US)
                (self.paths["cpu"] / "cpu.cfs_quota_us").write_text(str(period * cpus))
            self._open_procs()
        except OSError as exc:
            self.remove()
            raise CgroupsUnavailable(f"creating the sandbox's cgroups failed ({exc})") from exc

    def oom_kills(self) -> int:
        """How many processes the memory ceiling has killed so far."""
        return _count(_read(self.paths["memory"] / "memory.oom_control"), "oom_kill")


@functools.cache
def _setup() -> tuple[Hierarchy, Path | None]:
    """Detect once per process (and, on v2, prepare the subtree); log what enforces what."""
    found = detect()
    parent = None
    if found.kind == "v2" and found.own is not None:
        try:
            parent = prepare_v2(found.own, found.controllers)
        except CgroupsUnavailable as exc:
            found = Hierarchy("none", why=str(exc))
    level = logging.WARNING if found.kind == "none" else logging.INFO
    for line in enforcement(found):
        log.log(level, "hosted mode: %s", line)
    return found, parent


def enforcement(found: Hierarchy) -> list[str]:
    """One line per limit: which mechanism enforces it on this host (for the log)."""
    if found.kind == "none":
        return [
            f"no cgroup can be used ({found.why}): falling back to the watchdog, as when the "
            "app runs unprivileged",
            "memory: the watchdog adds up each sandbox's proportional memory (PSS) twice a "
            "second and stops it past the ceiling",
            "processes: RLIMIT_NPROC in the kernel launcher",
            "CPU: RLIMIT_CPU (the budget) and the watchdog's stop of processes burning CPU "
            "between cells; no quota while a cell runs",
        ]
    if found.kind == "v2":
        cpu = "cpu.max" if "cpu" in found.controllers else "no quota (cpu controller missing)"
        where = f"cgroup v2 under {found.own}/{GROUP}"
        return [
            f"memory: {where}: memory.max and memory.swap.max (kills read from memory.events)",
            f"processes: {where}: pids.max",
            f"CPU: {where}: {cpu}",
        ]
    cpu = "cpu.cfs_quota_us" if "cpu" in found.roots else "no quota (cpu controller missing)"
    return [
        "memory: cgroup v1: memory.limit_in_bytes (and memory.memsw.limit_in_bytes)",
        "processes: cgroup v1: pids.max",
        f"CPU: cgroup v1: {cpu}",
    ]


def hierarchy() -> Hierarchy:
    """What this app uses for its sandboxes (detected and set up on first use)."""
    return _setup()[0]


def for_sandbox(memory_mb: int, max_procs: int, cpus: int) -> CgroupsV1 | CgroupsV2 | None:
    """A new sandbox's cgroups, or ``None`` where the watchdog must enforce the limits.

    Raises:
        CgroupsUnavailable: the hierarchy is usable but creating this sandbox's cgroup failed.
    """
    found, parent = _setup()
    if found.kind == "v2" and parent is not None:
        return CgroupsV2(parent, memory_mb, max_procs, cpus, cpu="cpu" in found.controllers)
    if found.kind == "v1":
        return CgroupsV1(found.roots, memory_mb, max_procs, cpus)
    return None


def remove_stale() -> None:
    """Delete empty sandbox cgroups left behind by an app that was killed."""
    found, parent = _setup()
    parents = [parent] if parent is not None else [r / GROUP for r in found.roots.values()]
    for folder in parents:
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()

"""How many kernels this machine holds, and how many spares to keep: from its memory.

A fixed cap on kernels is wrong both ways: too low, and a class is turned away from a machine
that could hold it; too high, and the machine runs out of memory. So by default
(``WORKBOOK_MAX_KERNELS`` unset or ``auto``) the pool's cap follows from memory::

    cap = max(1, floor((available - reserve) / per_kernel))

- ``available``: the memory the pool's kernels may share: the memory available now
  (``MemAvailable``, via psutil, or the headroom left under the app's own cgroup memory
  limit when that is lower: cgroup v2 ``memory.max`` minus ``memory.current``; v1
  ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes``) plus what the pool's own
  kernels hold (their PSS). It is read when the pool starts and again each time the pool
  measures its kernels (:meth:`Sizing.observe`, every 10 s), so the cap follows memory that
  other programs free or take; a kernel growing only moves memory from one term to the
  other. A cap that falls stops nothing: no new kernel starts until it fits again;
- ``reserve``: kept for the app itself and the page cache (``WORKBOOK_MEMORY_RESERVE_MB``);
- ``per_kernel``: the proportional memory (PSS) of one kernel, so the model weights that
  every kernel maps are counted once in all, not once per kernel. It starts at
  :data:`DEFAULT_KERNEL_MB` and follows what the running kernels really use
  (:class:`MemoryEstimate`).
- local kernels forked from the kernel template (:mod:`workbook.kernels.template`) share
  its pages, and each one's PSS holds only its share of them; the template's own share is
  not a kernel's, so it stays out of what is added back to ``available`` at each re-read
  (:meth:`Sizing.observe`) and is counted once, like any other program's memory.

Spare kernels count against the cap like students' kernels. Their number grows with the
rate at which students arrive (:func:`spare_target`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ARRIVAL_WINDOW_S",
    "DEFAULT_KERNEL_MB",
    "GATEWAY_MAX_KERNELS",
    "Sizing",
    "MemoryEstimate",
    "available_mb",
    "cgroup_headroom_mb",
    "kernel_cap",
    "kernel_pss_mb",
    "kernels_pss_mb",
    "spare_target",
]

# A warmed kernel measured here: ~340 MB of its own (torch, transformers, the tokenizer)
# plus a share of the mapped weights; rounded up, since it is only used until the first
# kernel has been measured.
DEFAULT_KERNEL_MB = 450.0
# Sign-ins this recent count as "the class is arriving now" (see spare_target).
ARRIVAL_WINDOW_S = 180.0
# Gateway kernels use the gateway host's memory, which this app cannot see: without
# WORKBOOK_MAX_KERNELS the gateway's own limit decides (it refuses past it), and this cap
# only bounds how many this app asks for.
GATEWAY_MAX_KERNELS = 100
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_NO_LIMIT = 2**60  # v1 writes "no limit" as a number near 2**63


def kernel_cap(available_mb: float, reserve_mb: float, per_kernel_mb: float) -> int:
    """How many kernels fit: ``floor((available - reserve) / per_kernel)``, at least 1.

    Args:
        available_mb: memory the kernels may share (see :func:`available_mb`).
        reserve_mb: memory kept for the app and the page cache.
        per_kernel_mb: one kernel's proportional memory (PSS).

    Returns:
        The cap; at least one, so a small machine still serves one student at a time.
    """
    if per_kernel_mb <= 0:
        raise ValueError(f"a kernel's memory must be positive, got {per_kernel_mb}")
    return max(1, math.floor((available_mb - reserve_mb) / per_kernel_mb))


def spare_target(base: int, recent_arrivals: int) -> int:
    """How many spare kernels to keep ready, from how many students arrived lately.

    As many students as arrived in the last :data:`ARRIVAL_WINDOW_S` are likely to arrive in
    the next one, so that many spares are wanted, never fewer than ``base``; when the room
    has emptied (no recent arrivals) it falls back to ``base``. ``base`` 0 turns spares off.
    The pool's memory cap limits what really starts.
    """
    if base <= 0:
        return 0
    return max(base, recent_arrivals)


class MemoryEstimate:
    """A moving estimate of one kernel's proportional memory, in MB.

    It starts at ``start_mb``; the first :meth:`observe` replaces that guess. Each round
    of measurements counts as the mean of the kernels using at least half the current
    estimate: kernels just started, before their student's setup cell, are small, and would
    let in more students than fit once everyone has run it. A rise is then taken in by
    half, a fall only by a tenth.
    """

    def __init__(self, start_mb: float = DEFAULT_KERNEL_MB) -> None:
        self._mb = float(start_mb)
        self._lock = threading.Lock()
        self.measured = False

    @property
    def mb(self) -> float:
        """The current estimate."""
        with self._lock:
            return self._mb

    def observe(self, samples_mb: Iterable[float]) -> float:
        """Fold one round of measurements in; returns the new estimate."""
        with self._lock:
            settled = [s for s in samples_mb if s >= self._mb / 2]  # 0: the process was gone
            if settled:
                mean = sum(settled) / len(settled)
                if not self.measured:
                    self._mb, self.measured = mean, True  # the default was only a guess
                else:
                    weight = 0.5 if mean > self._mb else 0.1
                    self._mb += weight * (mean - self._mb)
            return self._mb


class Sizing:
    """One pool's cap and spare target: from the settings, its memory and recent arrivals.

    Args:
        max_kernels: a fixed cap (``WORKBOOK_MAX_KERNELS``), or None to follow memory.
        reserve_mb: memory kept for the app and the page cache.
        spares: spares kept when nobody is arriving (0: none at all).
        gateway: kernels run on a gateway host, whose memory this app cannot measure.
        available: memory available now, in MB (read here when following memory; again
            at each :meth:`observe`).
    """

    def __init__(
        self,
        max_kernels: int | None,
        reserve_mb: float,
        spares: int,
        *,
        gateway: bool = False,
        available: float | None = None,
    ) -> None:
        self.fixed = max_kernels if max_kernels is not None or not gateway else GATEWAY_MAX_KERNELS
        self.reserve_mb = reserve_mb
        self.spares = spares
        self.memory = MemoryEstimate()
        self.available_mb = 0.0
        if self.fixed is None:
            self.available_mb = available_mb() if available is None else available
        self._arrivals: deque[float] = deque()
        self._lock = threading.Lock()

    def cap(self) -> int:
        """How many kernels, spares included, may run at once now."""
        if self.fixed is not None:
            return self.fixed
        return kernel_cap(self.available_mb, self.reserve_mb, self.memory.mb)

    def observe(self, kernels_mb: list[float], available: float | None = None) -> float:
        """Fold one round of the kernels' PSS in, and re-read the memory available.

        Args:
            kernels_mb: the PSS of each of the pool's kernels and spares (0: gone, or PSS
                cannot be read here), measured just now.
            available: memory available now, in MB (read from the system when None).

        Returns:
            The new estimate of one kernel's memory (:class:`MemoryEstimate`).

        What the kernels hold is added back to what is available now, so the pool's own
        kernels never count against its cap twice. Where no kernel's PSS could be read
        (while kernels run), the memory they hold is unknown and ``available_mb`` is kept.
        """
        estimate = self.memory.observe(kernels_mb)
        held = sum(kernels_mb)
        if self.fixed is None and (held > 0 or not kernels_mb):
            self.available_mb = (available_mb() if available is None else available) + held
        return estimate

    def arrived(self, now: float | None = None) -> None:
        """Count a student who arrived without a kernel (``time.monotonic()``)."""
        with self._lock:
            self._arrivals.append(time.monotonic() if now is None else now)

    def spare_target(self, now: float | None = None) -> int:
        """Spares to keep now, from the arrivals of the last :data:`ARRIVAL_WINDOW_S`."""
        cutoff = (time.monotonic() if now is None else now) - ARRIVAL_WINDOW_S
        with self._lock:
            while self._arrivals and self._arrivals[0] < cutoff:
                self._arrivals.popleft()
            recent = len(self._arrivals)
        return spare_target(self.spares, recent)


def kernel_pss_mb(pid: int | None) -> float:
    """Proportional memory of a kernel's process and its children, in MB (0 if gone)."""
    return kernels_pss_mb([pid])[0]


def kernels_pss_mb(pids: list[int | None]) -> list[float]:
    """:func:`kernel_pss_mb` of each of ``pids``, reading the process table once for all."""
    import psutil

    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"], []).append(proc.pid)
    sizes = []
    for root in pids:
        total, todo = 0, [] if root is None else [root]
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, []))
            try:
                total += psutil.Process(pid).memory_full_info().pss
            except (psutil.Error, AttributeError):  # gone meanwhile, or no PSS on this system
                continue
        sizes.append(total / 2**20)
    return sizes


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # v2 writes "max" for no limit


def cgroup_headroom_mb(root: Path = _CGROUP_ROOT, self_cgroup: str | None = None) -> float | None:
    """Memory left under the app's own cgroup limit, in MB, or None when there is no limit.

    Looks at the app's own cgroup (from ``/proc/self/cgroup``) first, then at the root of
    the hierarchy (what a container shows as its own), for cgroup v2 (``memory.max``,
    ``memory.current``) and v1 (``memory/memory.limit_in_bytes``,
    ``memory/memory.usage_in_bytes``). The lowest headroom found wins.

    Args:
        root: where the cgroup filesystem is mounted.
        self_cgroup: the text of ``/proc/self/cgroup`` (read when None).
    """
    if self_cgroup is None:
        try:
            self_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            self_cgroup = ""
    places: list[tuple[Path, str, str]] = []
    for line in self_cgroup.splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        rel = path.strip().lstrip("/")
        if controllers == "" and path:  # v2: "0::/some/path"
            places.append((root / rel, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):
            places.append((root / "memory" / rel, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    places += [
        (root, "memory.max", "memory.current"),
        (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),
    ]
    best: float | None = None
    for folder, limit_file, usage_file in places:
        limit = _read_number(folder / limit_file)
        if limit is None or limit >= _NO_LIMIT:
            continue
        used = _read_number(folder / usage_file) or 0
        headroom = max(0, limit - used) / 2**20
        best = headroom if best is None else min(best, headroom)
    return best


def available_mb() -> float:
    """Memory available to new kernels now: the machine's, or the cgroup's if lower."""
    import psutil

    machine = psutil.virtual_memory().available / 2**20
    cgroup = cgroup_headroom_mb()
    return machine if cgroup is None else min(machine, cgroup)

"""What the load test's two modes share: the students' password, the sampler of memory and
CPU, the wait for spare kernels, and the p50 / p95 / max cells of the report.

``bench/load.py`` (everyone at once) and ``bench/_arrivals.py`` (a lab session arriving) both
use these; neither imports the other's parts.
"""

from __future__ import annotations

import threading
import time

PASSWORD = "load-test-password"


class Sampler:
    """Samples the app's process tree (memory) and the machine (CPU) every ``every_s``."""

    def __init__(self, every_s: float = 1.0) -> None:
        import psutil

        self._psutil = psutil
        self.every_s = every_s
        self.peak_pss_mb = 0.0
        self.peak_kernels = 0
        self.cpu: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)

    def _sample(self) -> None:
        from workbook.kernels.limits import _pss_bytes

        me = self._psutil.Process()
        tree = [me, *me.children(recursive=True)]  # forked kernels: the template's children
        # PSS (smaps_rollup: cheap, shared pages split), as the sandbox watchdog reads it.
        pss = sum(_pss_bytes(p.pid) for p in tree) / 2**20
        self.peak_pss_mb = max(self.peak_pss_mb, pss)
        self.peak_kernels = max(self.peak_kernels, len(tree) - 1)
        self.cpu.append(self._psutil.cpu_percent(None))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> Sampler:
        self._psutil.cpu_percent(None)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # a run shorter than one interval is measured too, as it ends


def _wait_for_spares(wb, timeout_s: float = 300) -> bool:
    """Start a round the way a class starts: the app up, its spare kernels ready.

    Returns:
        Whether every spare was ready in time; if not, a warning says that the figures
        reported "on a warm spare" may include starting a kernel.
    """
    wanted = wb.settings.spare_kernels
    deadline = time.monotonic() + timeout_s
    while wb.kernels.spares_ready() < wanted and time.monotonic() < deadline:
        time.sleep(0.5)
    ready = wb.kernels.spares_ready()
    if ready < wanted:
        print(
            f"WARNING: only {ready} of {wanted} spare kernels were ready after {timeout_s:g} s; "
            "the figures below said to be on a warm spare may include a kernel start",
            flush=True,
        )
    return ready >= wanted


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{_pct(values, 0.5):.2f} / {_pct(values, 0.95):.2f} / {max(values):.2f}"

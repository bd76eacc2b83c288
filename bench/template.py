"""One student's fresh kernel: its start and the setup cell, forked from the template or not.

``python -m bench template [--rounds 3]``: with no spare kernels, a student's kernel is started
and the given setup cell run in it, alternately with the kernel template (the default) and
without it (``WORKBOOK_KERNEL_TEMPLATE=0``: a new Python process, as before). Prints the
median of the rounds for both side by side: seconds to a kernel that answers, seconds for
the setup cell, the kernel's own CPU seconds for both (what thirty arrivals multiply on
the server's cores), and its proportional memory (PSS) after the setup cell; and what the
template itself cost, once per app.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench._common import machine


def _one(settings, user_id: str) -> dict[str, float]:
    """A fresh kernel for ``user_id`` and its setup cell; what they took."""
    import psutil

    from workbook.exercise.setup_cell import setup_code
    from workbook.kernels import capacity
    from workbook.kernels.pool import KernelPool

    pool = KernelPool(settings)
    try:
        began = time.perf_counter()
        kernel = pool.kernel_for(user_id)
        started = time.perf_counter()
        result = kernel.execute(setup_code(settings.model_name), timeout=300)
        done = time.perf_counter()
        if result.status != "ok":
            raise RuntimeError(f"the setup cell failed: {result.message}")
        cpu = psutil.Process(kernel.pid).cpu_times()
        return {
            "start": started - began,
            "setup": done - started,
            "total": done - began,
            "cpu": cpu.user + cpu.system,
            "pss": capacity.kernel_pss_mb(kernel.pid),
        }
    finally:
        pool.shutdown_all()


def main(argv: list[str] | None = None) -> None:
    """Run both kinds of start ``--rounds`` times, interleaved, and print the medians."""
    import psutil

    from workbook.config import Settings
    from workbook.kernels import template

    parser = argparse.ArgumentParser(prog="python -m bench template", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv or [])
    if args.rounds < 1:  # else a median of nothing, after the template's start
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-template-") as tmp:
        base = replace(Settings.from_env(), work_dir=Path(tmp), spare_kernels=0)
        on, off = replace(base, kernel_template=True), replace(base, kernel_template=False)
        # The template starts once per app, in the background beside the first student's
        # plain start (a student never waits for it): measured apart, then every round
        # forks from it.
        began = time.perf_counter()
        _one(on, "warming")
        if not template.wait_until_started():
            raise RuntimeError("the kernel template did not get ready")
        template_start = time.perf_counter() - began
        [pid] = template.pids() or [0]
        # Its own process only: its children are the kernels forked from it.
        own = psutil.Process(pid) if pid else None
        cpu = own.cpu_times() if own else None
        template_cpu = cpu.user + cpu.system if cpu else float("nan")
        template_pss = own.memory_full_info().pss / 2**20 if own else float("nan")
        rounds: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        for number in range(args.rounds):
            rounds["on"].append(_one(on, f"on{number}"))
            rounds["off"].append(_one(off, f"off{number}"))
        template.stop_all()

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[kind])

    print(
        f"\nfresh kernel + setup cell, one student, median of {args.rounds} interleaved rounds"
        f"\n{'figure':<34}{'template (default)':>20}{'WORKBOOK_KERNEL_TEMPLATE=0':>28}"
    )
    rows = [
        ("kernel start, s", "start", "{:.2f}"),
        ("setup cell, s", "setup", "{:.2f}"),
        ("start + setup cell, s", "total", "{:.2f}"),
        ("kernel's own CPU, s", "cpu", "{:.2f}"),
        ("kernel PSS after setup, MB", "pss", "{:.0f}"),
    ]
    for name, key, fmt in rows:
        print(f"{name:<34}{fmt.format(median('on', key)):>20}{fmt.format(median('off', key)):>28}")
    print(
        f"the template, once per app: ready {template_start:.2f} s after the first request, "
        f"{template_cpu:.2f} CPU s, "
        f"PSS {template_pss:.0f} MB (counted once, beside its kernels)"
    )


if __name__ == "__main__":
    main()

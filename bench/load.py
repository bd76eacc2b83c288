"""Load test: a whole class works through the notebook at once, beside one student alone.

``python -m bench load --students 30`` (``make bench`` runs it with ``BENCH_STUDENTS``,
default 10). ``--arrive 30 --over 60`` is the arrival mode instead (``bench/_arrivals.py``: a
lab session starting, students spread over a minute). Each simulated student goes through the real ``Workbook`` facade, exactly as
the pages call it: sign in, run the given setup cell, steps 1-6 with the course's solutions
(each checked), then export the Moodle bundle. First one student alone (the baseline), then
N students at the same moment, in one run and on one fresh database, with the app's real
settings (run queue, thread policy, spare kernels).

Prints per step p50 / p95 / max for 1 student and for N, the errors (a failed check, a cell
that did not run, an exception; must be 0), peak memory of the app and its kernels (PSS,
so the shared model weights count once), the CPU use of the machine, how long the app took
to answer a page read meanwhile, and the fair-share ratio: the class's total time against
N times one student's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench._common import machine
from bench._load_parts import PASSWORD, Sampler, _pct, _row, _wait_for_spares

STEPS = ("sign in", "setup", "step1", "step2", "step3", "step4", "step5", "step6", "export")


@dataclass
class Figures:
    """What one round (1 student or N) measured."""

    students: int
    times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    peak_pss_mb: float = 0.0
    peak_kernels: int = 0
    cpu_mean: float = 0.0
    cpu_peak: float = 0.0
    probe: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


# --- measuring the machine ---------------------------------------------------------------------
# --- one student ---------------------------------------------------------------------------------
def _student(wb, email: str, figures: Figures, start: threading.Barrier) -> None:
    from workbook.exercise import content

    def timed(name: str, fn):
        began = time.perf_counter()
        value = fn()
        with figures.lock:
            figures.times[name].append(time.perf_counter() - began)
        return value

    start.wait()
    try:
        user = timed("sign in", lambda: wb.sign_in(email, PASSWORD))
        for step in content.steps(wb.settings.model_name):
            code = None if step.given else step.solution
            run = timed(step.id, lambda step=step, code=code: wb.run_step(user.id, step.id, code))
            if run.result.status != "ok":
                figures.errors.append(f"{email} {step.id}: {run.result.message}")
            elif run.check is not None and not run.check.passed:
                figures.errors.append(f"{email} {step.id}: check failed: {run.check.message}")
        timed("export", lambda: wb.export_bundle(user.id))
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
        figures.errors.append(f"{email}: {type(exc).__name__}: {exc}")
        traceback.print_exc()


def _probe(wb, user_id: int, figures: Figures, stop: threading.Event) -> None:
    """Another page meanwhile: the Home page's progress read, twice a second."""
    while not stop.wait(0.5):
        began = time.perf_counter()
        wb.progress(user_id)
        figures.probe.append(time.perf_counter() - began)


def run_round(wb, emails: list[str], probe_user: int) -> Figures:
    """All ``emails`` do the whole notebook at the same moment."""
    figures = Figures(students=len(emails))
    barrier = threading.Barrier(len(emails) + 1)
    workers = [
        threading.Thread(target=_student, args=(wb, email, figures, barrier), daemon=True)
        for email in emails
    ]
    stop = threading.Event()
    prober = threading.Thread(target=_probe, args=(wb, probe_user, figures, stop), daemon=True)
    for worker in workers:
        worker.start()
    with Sampler() as sampler:
        prober.start()
        barrier.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
        figures.wall = time.perf_counter() - began
        stop.set()
        prober.join()
    figures.peak_pss_mb = sampler.peak_pss_mb
    figures.peak_kernels = sampler.peak_kernels
    figures.cpu_mean = statistics.fmean(sampler.cpu) if sampler.cpu else 0.0
    figures.cpu_peak = max(sampler.cpu, default=0.0)
    return figures


def _restart_and_cold_setup(wb, settings, email: str) -> dict[str, float]:
    """Restart + Run all above with a spare ready; the setup cell on a fresh kernel."""
    from workbook.service import Workbook

    user = wb.sign_in(email, PASSWORD)
    _wait_for_spares(wb)
    began = time.perf_counter()
    wb.restart_kernel(user.id)
    runs = wb.run_all_above(user.id, "step6")
    restart = time.perf_counter() - began
    if any(run.result.status != "ok" for run in runs):
        raise RuntimeError("Run all above failed after a restart")
    cold_wb = Workbook(replace(settings, spare_kernels=0))
    try:
        cold_wb.engine()
        began = time.perf_counter()
        run = cold_wb.run_step(user.id, "setup")
        cold = time.perf_counter() - began
        if run.result.status != "ok":
            raise RuntimeError(f"the setup cell failed on a fresh kernel: {run.result.message}")
    finally:
        cold_wb.kernels.shutdown_all()
    return {"restart + run all above": restart, "cold setup": cold}


# --- the report ----------------------------------------------------------------------------------
def report(one: Figures, many: Figures, extra: dict[str, float], spares: int) -> None:
    """Print both rounds side by side, then the fair-share ratios and the setup cell."""
    n = many.students
    print(f"\n{'step (seconds)':<22}{'1 student p50/p95/max':>26}{f'{n} students p50/p95/max':>28}")
    for step in STEPS:
        print(f"{step:<22}{_row(one.times[step]):>26}{_row(many.times[step]):>28}")
    whole = [sum(v) for v in zip(*(many.times[s] for s in STEPS[1:8]), strict=False)]
    print(
        f"{'setup + steps 1-6':<22}{_row([sum(one.times[s][0] for s in STEPS[1:8])]):>26}"
        f"{_row(whole):>28}"
    )
    print(f"{'errors':<22}{len(one.errors):>26}{len(many.errors):>28}")
    print(f"{'wall time, all':<22}{one.wall:>25.1f}s{many.wall:>27.1f}s")
    print(f"{'peak PSS, app+kernels':<22}{one.peak_pss_mb:>23.0f} MB{many.peak_pss_mb:>25.0f} MB")
    print(f"{'peak kernel processes':<22}{one.peak_kernels:>26}{many.peak_kernels:>28}")
    print(
        f"{'CPU mean / peak':<22}{f'{one.cpu_mean:.0f} / {one.cpu_peak:.0f} %':>26}"
        f"{f'{many.cpu_mean:.0f} / {many.cpu_peak:.0f} %':>28}"
    )
    print(f"{'page read meanwhile':<22}{_row(one.probe):>26}{_row(many.probe):>28}")
    ratio = many.wall / (n * one.wall) if one.wall else float("nan")
    print(
        f"\nfair share: {n} students took {many.wall:.1f} s = {ratio:.2f} x ({n} x one student's"
        f" {one.wall:.1f} s on a warm spare); target <= 1.3 x"
    )
    # Only `spares` of the class find a warm kernel; the others start a fresh one, as the
    # lone student would without spares.
    cold_one = one.wall - one.times["setup"][0] + extra["cold setup"]
    print(
        f"  against one student on a fresh kernel ({cold_one:.1f} s; {spares} of the {n} got a "
        f"spare): {many.wall / (n * cold_one):.2f} x"
    )
    print(
        f"setup cell on a warm spare kernel: {_pct(one.times['setup'], 0.5):.2f} s; on a "
        f"fresh kernel (no spares): {extra['cold setup']:.2f} s (target: <= 2 s)\n"
        f"Restart kernel + Run all above (setup, steps 1-5): "
        f"{extra['restart + run all above']:.2f} s with a spare"
    )
    for error in (one.errors + many.errors)[:20]:
        print("ERROR", error)


def main(argv: list[str] | None = None) -> None:
    """Run the load test (``--students N``, default ``BENCH_STUDENTS`` or 10)."""
    from workbook.config import Settings
    from workbook.service import Workbook

    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__)
    parser.add_argument(
        "--students", type=int, default=int(os.environ.get("BENCH_STUDENTS", "10")), metavar="N"
    )
    parser.add_argument("--arrive", type=int, metavar="N", help="arrival mode: N students")
    parser.add_argument("--over", type=float, default=60.0, metavar="S", help="arrivals spread")
    parser.add_argument("--working", type=int, default=0, metavar="N", help="working before")
    args = parser.parse_args(argv or [])
    # Say what is wrong at once, not minutes into a round with no student (or -3).
    if args.students < 1:
        parser.error(f"--students must be at least 1, got {args.students}")
    if args.arrive is not None and args.arrive < 1:
        parser.error(f"--arrive must be at least 1, got {args.arrive}")
    if args.over < 0 or args.working < 0:
        parser.error("--over and --working cannot be negative")
    n = args.students
    print(machine(), flush=True)
    if args.arrive:
        from bench import _arrivals

        _arrivals.main(args.arrive, args.over, args.working)
        return
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        folder = Path(tmp)
        base = Settings.from_env()
        settings = replace(
            base,
            db_path=folder / "load.db",
            work_dir=folder / "kernels",
            max_kernels=None  # auto: as many as memory holds
            if base.max_kernels is None
            else max(base.max_kernels, n + 1 + base.spare_kernels),
        )
        print(
            f"settings: {settings.run_slots} run slots, {settings.spare_kernels} spare kernels, "
            f"max {settings.max_kernels or 'auto'} kernels, cell limit {settings.cell_timeout_s} s",
            flush=True,
        )
        wb = Workbook(settings)
        try:
            emails = [f"student{i}@example.org" for i in range(n + 1)]
            for i, email in enumerate(emails):
                wb.register(f"Student {i}", email, PASSWORD)
            probe_user = wb.register("Probe", "probe@example.org", PASSWORD).id
            wb.preload()
            wb.engine()
            _wait_for_spares(wb)
            print("1 student alone ...", flush=True)
            one = run_round(wb, emails[:1], probe_user)
            extra = _restart_and_cold_setup(wb, settings, emails[0])
            wb.kernels.shutdown_all()  # the class starts from the same state: no kernels
            # A new app instance on the same database: its own pool, spares warmed again.
            wb2 = Workbook(settings)
            wb2.preload()
            _wait_for_spares(wb2)
            print(f"{n} students at once ...", flush=True)
            many = run_round(wb2, emails[1:], probe_user)
            wb2.kernels.shutdown_all()
        finally:
            wb.kernels.shutdown_all()
        report(one, many, extra, settings.spare_kernels)


if __name__ == "__main__":
    main()

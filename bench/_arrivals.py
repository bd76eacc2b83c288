"""Arrival mode of the load test: a lab session starts, students arrive spread over a minute.

``python -m bench load --arrive 30 --over 60 [--working 10]``: through the real ``Workbook``
facade with the app's default settings (kernel cap from memory, spares on, preload as the app
does it). Optionally ``--working`` students have already done setup and steps 1-2 and sit
idle with their kernels. Then the arrivals come, evenly spread over ``--over`` seconds; each
signs in (and, as the pages do, asks for their kernel at once: ``Workbook.warm_kernel``),
runs the setup cell, step 1 and step 2 with the course's solutions.

Printed side by side with one student alone on the same quiet server: students refused
(must be 0 while memory allows), other errors, setup cell p50/p95/max, time from sign-in to a
passed step 2, peak memory (PSS of the app and its kernels) and the pool's cap; and one line
for one student alone with the kernel template off (``WORKBOOK_KERNEL_TEMPLATE=0``).
"""

from __future__ import annotations

import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field

from bench._load_parts import PASSWORD, Sampler, _row, _wait_for_spares

STEPS = ("setup", "step1", "step2")


@dataclass
class Arrivals:
    """What one round measured."""

    students: int
    setup: list[float] = field(default_factory=list)
    to_step2: list[float] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    peak_pss_mb: float = 0.0
    peak_kernels: int = 0
    cpu_mean: float = 0.0
    cap: int = 0
    kernel_mb: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _arrive(wb, email: str, figures: Arrivals, *, warm: bool = True) -> None:
    """One student: sign in, setup, step 1, step 2 (checked)."""
    from workbook.exercise import content

    began = time.perf_counter()
    try:
        user = wb.sign_in(email, PASSWORD)
        if warm:
            wb.warm_kernel(user.id)  # as pages/common.py does right after a sign-in
        steps = {step.id: step for step in content.steps(wb.settings.model_name)}
        for step_id in STEPS:
            step = steps[step_id]
            started = time.perf_counter()
            run = wb.run_step(user.id, step_id, None if step.given else step.solution)
            if step_id == "setup":
                with figures.lock:
                    figures.setup.append(time.perf_counter() - started)
            if run.result.status != "ok" or (run.check is not None and not run.check.passed):
                raise RuntimeError(f"{step_id}: {run.result.message or run.check.message}")
        with figures.lock:
            figures.to_step2.append(time.perf_counter() - began)
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
        words = str(exc)
        target = figures.refused if "try again" in words or "busy" in words else figures.errors
        with figures.lock:
            target.append(f"{email}: {type(exc).__name__}: {words}")
        if target is figures.errors:
            traceback.print_exc()


def arrival_round(wb, emails: list[str], over_s: float, *, warm: bool = True) -> Arrivals:
    """``emails`` arrive evenly spread over ``over_s`` seconds; returns what they measured."""
    figures = Arrivals(students=len(emails))
    gap = over_s / (len(emails) - 1) if len(emails) > 1 else 0.0
    workers = []
    with Sampler() as sampler:
        began = time.monotonic()
        for i, email in enumerate(emails):
            time.sleep(max(0.0, began + i * gap - time.monotonic()))
            worker = threading.Thread(
                target=_arrive, args=(wb, email, figures), kwargs={"warm": warm}, daemon=True
            )
            worker.start()
            workers.append(worker)
        for worker in workers:
            worker.join()
    figures.peak_pss_mb = sampler.peak_pss_mb
    figures.peak_kernels = sampler.peak_kernels
    figures.cpu_mean = statistics.fmean(sampler.cpu) if sampler.cpu else 0.0
    figures.cap = wb.kernels.capacity()
    figures.kernel_mb = wb.kernels.sizing.memory.mb
    return figures


def report(
    one: Arrivals,
    many: Arrivals,
    over_s: float,
    working: int,
    cold_one: float,
    off: Arrivals | None = None,
) -> None:
    """Print one student alone and the arrivals side by side.

    ``off``: one student alone with ``WORKBOOK_KERNEL_TEMPLATE=0`` (the default before).
    """
    n = many.students
    head = f"{n} arrive over {over_s:g} s" + (f" ({working} working)" if working else "")
    print(f"\n{'figure':<34}{'1 student alone':>22}{head:>34}")
    rows = [
        ("refused (told to try again)", str(len(one.refused)), str(len(many.refused))),
        ("other errors", str(len(one.errors)), str(len(many.errors))),
        ("setup cell p50/p95/max s", _row(one.setup), _row(many.setup)),
        ("sign-in to step 2 passed p50/p95/max", _row(one.to_step2), _row(many.to_step2)),
        ("peak PSS, app + kernels", f"{one.peak_pss_mb:.0f} MB", f"{many.peak_pss_mb:.0f} MB"),
        ("peak kernel processes", str(one.peak_kernels), str(many.peak_kernels)),
        ("CPU mean", f"{one.cpu_mean:.0f} %", f"{many.cpu_mean:.0f} %"),
        ("kernel cap / PSS per kernel (end)", f"{one.cap} / {one.kernel_mb:.0f} MB",
         f"{many.cap} / {many.kernel_mb:.0f} MB"),
    ]  # fmt: skip
    for name, alone, class_ in rows:
        print(f"{name:<34}{alone:>22}{class_:>34}")
    print(
        f"one student alone, kernel asked for at Run only (as before warm_kernel): "
        f"setup {cold_one:.2f} s; target setup p95 <= 2 s, refused 0"
    )
    if off is not None:
        print(
            f"one student alone, WORKBOOK_KERNEL_TEMPLATE=0: setup {_row(off.setup)} s, "
            f"sign-in to step 2 passed {_row(off.to_step2)} s, "
            f"errors {len(off.refused) + len(off.errors)}"
        )
    for line in (one.refused + many.refused + one.errors + many.errors)[:20]:
        print("ERROR", line)


def main(arrive: int, over_s: float, working: int) -> None:
    """Run the arrival mode (see the module's docstring)."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from workbook.config import Settings
    from workbook.service import Workbook

    with tempfile.TemporaryDirectory(prefix="bench-arrive-") as tmp:
        settings = replace(
            Settings.from_env(), db_path=Path(tmp) / "load.db", work_dir=Path(tmp) / "kernels"
        )
        wb = Workbook(settings)
        emails = [f"student{i}@example.org" for i in range(2 + working + arrive)]
        for i, email in enumerate(emails):
            wb.register(f"Student {i}", email, PASSWORD)
        try:
            wb.preload()
            wb.engine()
            _wait_for_spares(wb)
            print(
                f"settings: kernel cap {wb.kernels.capacity()} (WORKBOOK_MAX_KERNELS "
                f"{settings.max_kernels or 'auto'}; {wb.kernels.sizing.available_mb:.0f} MB "
                f"available at start, reserve {settings.memory_reserve_mb} MB), "
                f"{settings.spare_kernels} spares, {settings.run_slots} run slots",
                flush=True,
            )
            print("1 student alone ...", flush=True)
            one = arrival_round(wb, emails[:1], 0.0)
            _wait_for_spares(wb)
            cold = arrival_round(wb, emails[1:2], 0.0, warm=False)
        finally:
            wb.kernels.shutdown_all()
        # The same lone student with the template off (the default before it), for comparison.
        wb_off = Workbook(replace(settings, kernel_template=False))
        try:
            wb_off.preload()
            wb_off.engine()
            _wait_for_spares(wb_off)
            print("1 student alone, WORKBOOK_KERNEL_TEMPLATE=0 ...", flush=True)
            off = arrival_round(wb_off, emails[:1], 0.0)
        finally:
            wb_off.kernels.shutdown_all()
        # A new app instance: its own pool, the memory read again, spares warmed again.
        wb2 = Workbook(settings)
        try:
            wb2.preload()
            wb2.engine()
            _wait_for_spares(wb2)
            if working:
                print(f"{working} students start working ...", flush=True)
                arrival_round(wb2, emails[2 : 2 + working], 0.0)
            print(f"{arrive} students arrive over {over_s:g} s ...", flush=True)
            many = arrival_round(wb2, emails[2 + working :], over_s)
        finally:
            wb2.kernels.shutdown_all()
    report(one, many, over_s, working, cold.setup[0] if cold.setup else float("nan"), off)

"""Check benchmark: what a step's check adds to a Run, beside the bare forward pass.

Issue 13 asks that **Run + check of step 2 cost at most the bare forward pass + 50 ms** on a
quiet machine. This prints, side by side and interleaved (so background load hits each
figure alike):

- the bare forward pass of the start phrase in this process (the baseline);
- the kernel executing step 2's cell alone (forward + kernel messaging);
- the check's silent inspection alone (``kernel.inspect`` of the step-2 snippet), and the
  size of the digest it ships back;
- the whole check (``checks.run_check``: inspection + reference + comparison);
- the whole **Run** button (``Workbook.run_step``: save, execute, check, save).

Run it with ``python -m bench checks``; ``BENCH_REPEAT`` sets the number of rounds (9).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench._common import bare_forward, machine, median_seconds, ms


def measure(wb, repeat: int) -> tuple[dict[str, float], int, int]:
    """Medians (seconds) over ``repeat`` interleaved rounds; digest and whole-tensor bytes."""

    from workbook.exercise import checks, content

    user = wb.register("Bench Checks", "bench-checks@example.org", "bench-password")
    for step in content.steps(wb.settings.model_name)[:3]:  # setup, steps 1 and 2
        run = wb.run_step(user.id, step.id, None if step.given else step.solution)
        if run.check is not None and not run.check.passed:
            raise RuntimeError(f"{step.id} did not pass: {run.check.message}")
    lm = wb.engine()
    kernel = wb.kernels.kernel_for(str(user.id))
    step2 = content.step("step2").solution
    snippet = checks.inspection_snippet("step2")
    forward = bare_forward(lm)
    outputs = kernel.execute(step2, timeout=60).outputs
    digest_bytes = len(json.dumps(kernel.inspect(snippet)))
    # What shipping the whole logits as base64 float32 in JSON would take (the old way).
    whole_bytes = 4 * math.ceil(forward().numel() * 4 / 3)
    figures: dict[str, Callable[[], object]] = {
        "forward": forward,
        "execute": lambda: kernel.execute(step2, timeout=60),
        "inspect": lambda: kernel.inspect(snippet),
        "check": lambda: checks.run_check("step2", kernel, lm, outputs=outputs),
        "run": lambda: wb.run_step(user.id, "step2", step2),
    }
    for fn in figures.values():  # warm-up: first calls allocate and fill caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in figures}
    for _ in range(repeat):
        for name, fn in figures.items():
            times[name].append(median_seconds(fn, 1))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, digest_bytes, whole_bytes


def main() -> None:
    """Measure and print one table: each figure beside the bare forward pass."""
    from lm_engine import EngineConfig, resolve
    from workbook.config import Settings
    from workbook.service import Workbook

    repeat = int(os.environ.get("BENCH_REPEAT", "9"))
    print(f"machine: {machine()}", flush=True)
    resolve(config=EngineConfig.from_env())  # the cache exists before anything is timed
    with tempfile.TemporaryDirectory(prefix="workbook-bench-checks-") as tmp:
        folder = Path(tmp)
        settings = replace(
            Settings(), db_path=folder / "bench.db", work_dir=folder / "kernels", cell_timeout_s=300
        )
        wb = Workbook(settings)
        try:
            t, digest_bytes, whole_bytes = measure(wb, repeat)
        finally:
            wb.kernels.shutdown_all()
    base = t["forward"]
    rows = [
        ("bare forward, start phrase (baseline)", t["forward"], "-"),
        ("kernel execute of step 2 alone", t["execute"], f"+{(t['execute'] - base) * 1e3:.0f} ms"),
        (
            "check's inspection alone",
            t["inspect"],
            f"digest {digest_bytes:,} bytes of JSON (whole logits in base64: {whole_bytes:,})",
        ),
        ("check alone (run_check)", t["check"], "inspection + reference + comparison"),
        (
            "what Run adds to the execute",
            t["run"] - t["execute"],
            "check + saving code and outputs (run_step minus kernel execute)",
        ),
        (
            "Run + check of step 2 (run_step)",
            t["run"],
            f"+{(t['run'] - base) * 1e3:.0f} ms vs bare forward (target <= +50 ms)",
        ),
    ]
    print(f"medians of {repeat} interleaved rounds")
    line = "{:<40} {:>9}   {}"
    print(line.format("what", "median", "vs bare forward / note"))
    for what, seconds, note in rows:
        print(line.format(what, ms(seconds), note))


if __name__ == "__main__":
    main()

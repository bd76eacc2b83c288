"""The Class page's figures on a big class vs a small one (``python -m bench class``).

Generates a class of 300 students x 60 runs and one of 30 x 60 through the store (a real
SQLite file each, ``bench/_class_data.py``), then times ``classview.class_view``, every
figure the page draws, for a TA who sees everyone: the first load (every latest code parsed
for the clusters) and the median of several refreshes (parsed codes cached), side by side. The small class is the baseline: the page should not get much slower with the class.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench._class_data import generate_class
from bench._common import median_seconds, ms


def _measure(folder: Path, students: int, runs: int, repeat: int) -> dict[str, float]:
    from db import Store
    from workbook.classview import class_view, normalised_code
    from workbook.exercise import content

    store = Store(
        folder / f"class-{students}.db",
        question_ids=content.question_ids(),
        step_ids=content.step_ids(),
    )
    # The store syncs every commit to disk (synchronous=FULL); 18,000 revisions written one
    # by one would time the disk, not the class view. This bench's own connection skips it.
    store._db().execute("PRAGMA synchronous=OFF")
    ta = store.create_user(f"ta{students}@example.org", "Bench TA", "password-1", role="ta")
    start = time.perf_counter()
    _ids, records = generate_class(store, students, runs, seed=students)
    written = time.perf_counter() - start
    normalised_code.cache_clear()  # cold: every latest code parsed, as on the first load
    start = time.perf_counter()
    class_view(store, ta)
    cold = time.perf_counter() - start
    figures = median_seconds(lambda: class_view(store, ta), repeat)
    store.close()
    return {"revisions": len(records), "write_s": written, "cold_s": cold, "figures_s": figures}


def main(argv: list[str] | None = None) -> None:
    """Print the time to compute the page's figures for both classes."""
    parser = argparse.ArgumentParser(prog="python -m bench class")
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--baseline", type=int, default=30)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv or [])
    import os
    import platform

    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    with tempfile.TemporaryDirectory(prefix="bench-class-") as tmp:
        big = _measure(Path(tmp), args.students, args.runs, args.repeat)
        small = _measure(Path(tmp), args.baseline, args.runs, args.repeat)
    print(
        f"{'class':<28}{'revisions':>10}{'written in':>12}{'first load':>12}"
        f"{'refresh (median)':>18}"
    )
    for label, row in (
        (f"{args.students} students x {args.runs} runs", big),
        (f"{args.baseline} students x {args.runs} runs", small),
    ):
        print(
            f"{label:<28}{row['revisions']:>10}{row['write_s']:>11.1f}s"
            f"{ms(row['cold_s']):>12}{ms(row['figures_s']):>18}"
        )
    ratio = big["figures_s"] / small["figures_s"]
    target = "under 1 s ✔" if big["figures_s"] < 1 else "under 1 s ✘"
    print(
        f"figures for {args.students} students: {ms(big['figures_s'])} vs "
        f"{ms(small['figures_s'])} for {args.baseline} ({ratio:.1f}x); target {target}"
    )


if __name__ == "__main__":
    main()

"""App benchmark: what a student and the server feel, each figure beside its baseline.

Prints, in one run, one table (with the machine noted):
1. app cold start: ``streamlit run app.py`` until it answers, and until headless Chromium
   shows the Home page (when Debian's Chromium is installed); the model ready from its
   safetensors cache (``load_model`` in a fresh process) vs plain ``from_pretrained``;
2. a step's **Run** round trip (``Workbook.run_step``: kernel execute, check, save) and the
   bare kernel execute, both vs the bare forward pass in this process;
3. export of a full bundle, recorded (``Workbook.export_bundle``) vs building the notebook alone;
4. memory of N concurrent student kernels (N = 1, 5, 10) after setup and steps 1-2: USS / PSS /
   RSS per kernel (psutil ``memory_full_info``) and how much of it is the memory-mapped
   safetensors file (psutil ``memory_maps``, grouped by path);
5. Explore next-token throughput for 16 concurrent sessions: one ``top_k_batch`` vs 16
   ``top_k`` calls from 16 threads (and vs the same 16 calls in a row).

Run it with ``python -m bench app``. ``BENCH_KERNELS=1,5`` measures fewer kernels (each
kernel's setup cell loads the model; ten of them take a few minutes on two cores).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from bench._common import bare_forward, machine, median_seconds, ms
from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS, REPO, start_app, stop_app

MB = 1024 * 1024
SESSIONS = 16
EXPLORE_PHRASES = [
    "This weekend I plan to",
    "To be or not to",
    "For God so loved the",
    "The capital of France is",
    "Once upon a time there was a",
    "My favourite programming language is",
    "The cat sat on the",
    "In a shocking finding, scientists discovered a herd of unicorns living in",
] * 2

Row = tuple[str, str, str, str]  # (what, measured, baseline, note)


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


# --- 1. cold start --------------------------------------------------------------------------
def _first_page_in_browser(url: str) -> float | None:
    """Seconds until headless Chromium shows Home's title; None without Chromium."""
    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(url)
            expect(page.get_by_role("heading", name="LM Logits Workbook")).to_be_visible(
                timeout=60_000
            )
            return time.perf_counter() - start
        finally:
            browser.close()


def bench_cold_start(folder: Path) -> tuple[float, float | None]:
    """(process start until served, then first page shown in Chromium) in seconds.

    The app is started exactly as the browser test starts it (``tests/e2e/harness.py``).
    """
    (folder / "cold").mkdir(exist_ok=True)
    start = time.perf_counter()
    app = start_app(folder / "cold")
    try:
        served = time.perf_counter() - start
        first_page = _first_page_in_browser(app.url)
    finally:
        stop_app(app.process)
    return served, first_page


_LOAD_SNIPPET = """
import time, sys
start = time.perf_counter()
{body}
print(time.perf_counter() - start)
"""
_ENGINE_LOAD = "from lm_engine import load_model\nload_model()"
_BARE_LOAD = (
    "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
    "from lm_engine import resolve\n"
    "src = resolve()\n"
    "AutoTokenizer.from_pretrained(src.path, **src.tokenizer_kwargs)\n"
    "AutoModelForCausalLM.from_pretrained(src.path)"
)


def _in_fresh_process(body: str) -> float:
    """Seconds the snippet's body takes in a fresh Python (imports of torch excluded)."""
    code = "import torch, transformers, lm_engine\n" + _LOAD_SNIPPET.format(body=body)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


# --- 2, 3. the notebook's Run and the export ----------------------------------------------
def bench_run_and_export(wb, repeat: int = 7) -> dict[str, float]:
    """Complete the notebook for one student, timing step 2's Run and the export."""
    from workbook.exercise import content
    from workbook.submission import notebook, snapshot

    user = wb.register("Bench Student", "bench@example.org", "bench-password")
    for step in content.steps(wb.settings.model_name):
        run = wb.run_step(user.id, step.id, None if step.given else step.solution)
        if run.check is not None and not run.check.passed:
            raise RuntimeError(f"{step.id} did not pass: {run.check.message}")
    for question in content.question_ids():
        wb.store.save_answer(user.id, question, f"A full answer to {question}. " * 20)

    lm = wb.engine()
    forward = bare_forward(lm)
    step2 = content.step("step2").solution
    kernel = wb.kernels.kernel_for(str(user.id))
    for _ in range(2):  # warm-up: first calls allocate
        forward()
        wb.run_step(user.id, "step2", step2)
    times: dict[str, list[float]] = {"forward": [], "execute": [], "run": []}
    # Interleaved, so background load on a shared machine hits all three alike.
    for _ in range(repeat):
        times["forward"].append(median_seconds(forward, 1))
        times["execute"].append(median_seconds(lambda: kernel.execute(step2, timeout=60), 1))
        times["run"].append(median_seconds(lambda: wb.run_step(user.id, "step2", step2), 1))
    model = wb.settings.model_name
    submission = snapshot.gather_submission(wb.store, user.id, model_name=model)
    return {
        **{name: statistics.median(values) for name, values in times.items()},
        "export": median_seconds(lambda: wb.export_bundle(user.id), 5),
        "notebook": median_seconds(lambda: notebook.build_notebook(submission), 5),
    }


# --- 4. memory of N kernels ---------------------------------------------------------------
def _kernel_process(kernel):
    """The ipykernel process of a local kernel (the launcher may exec or spawn it)."""
    import psutil

    root = psutil.Process(kernel.pid)  # the Kernel protocol's pid: its local process
    tree = [root, *root.children(recursive=True)]
    return max(tree, key=lambda p: p.memory_info().rss)


def kernel_memory(kernel) -> dict[str, float]:
    """USS/PSS/RSS of one kernel and the safetensors mapping's share of it, in MB."""
    process = _kernel_process(kernel)
    full = process.memory_full_info()
    mapped = {"rss": 0, "pss": 0, "private": 0, "shared": 0}
    for region in process.memory_maps(grouped=True):
        if region.path.endswith(".safetensors"):
            mapped["rss"] += region.rss
            mapped["pss"] += region.pss
            mapped["private"] += region.private_clean + region.private_dirty
            mapped["shared"] += region.shared_clean + region.shared_dirty
    return {
        "uss": full.uss / MB,
        "pss": full.pss / MB,
        "rss": full.rss / MB,
        **{f"st_{key}": value / MB for key, value in mapped.items()},
    }


def bench_kernels(wb, counts: list[int]) -> list[tuple[int, dict[str, float]]]:
    """Start up to max(counts) kernels, each running setup and steps 1-2; measure at each count."""
    from workbook.exercise import content

    # Setup, then steps 1-2: the forward pass touches every weight, so the kernel's memory
    # is what it is while a student works (after setup alone, mapped weights are not resident).
    cells = [content.setup_code(wb.settings.model_name)]
    cells += [content.step(f"step{n}").solution for n in (1, 2)]
    rows = []
    kernels = []
    for index in range(1, max(counts) + 1):
        kernel = wb.kernels.kernel_for(f"mem{index}")
        for cell in cells:
            result = kernel.execute(cell, timeout=300)
            if result.status != "ok":
                raise RuntimeError(f"a cell failed in kernel {index}: {result.message}")
        kernels.append(kernel)
        if index in counts:
            per_kernel = [kernel_memory(k) for k in kernels]
            averages = {key: statistics.mean(m[key] for m in per_kernel) for key in per_kernel[0]}
            averages["pss_total"] = sum(m["pss"] for m in per_kernel)
            rows.append((index, averages))
    return rows  # the caller shuts the kernels down (Workbook.kernels.shutdown_all)


# --- 5. Explore throughput ----------------------------------------------------------------
def bench_explore(lm, repeat: int = 3) -> dict[str, float]:
    """Seconds to answer 16 sessions' next-token requests three ways."""
    phrases = EXPLORE_PHRASES[:SESSIONS]

    def threaded() -> None:
        threads = [threading.Thread(target=lm.top_k, args=(p, 10)) for p in phrases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    lm.top_k_batch(phrases, 10)  # warm-up
    threaded()
    return {
        "batched": median_seconds(lambda: lm.top_k_batch(phrases, 10), repeat),
        "threads": median_seconds(threaded, repeat),
        "serial": median_seconds(lambda: [lm.top_k(p, 10) for p in phrases], repeat),
    }


# --- the report ---------------------------------------------------------------------------
def _print_table(rows: list[Row]) -> None:
    headers = ("measure", "measured", "baseline", "note")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))


def main() -> None:
    """Measure everything and print one table."""
    from lm_engine import EngineConfig, resolve
    from workbook.config import Settings
    from workbook.service import Workbook

    counts = [int(n) for n in os.environ.get("BENCH_KERNELS", "1,5,10").split(",") if n]
    print(f"machine: {machine()}", flush=True)
    resolve(config=EngineConfig.from_env())  # the cache exists before anything is timed
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="workbook-bench-") as tmp:
        folder = Path(tmp)
        served, first_page = bench_cold_start(folder)
        rows.append(
            (
                "app cold start: served / first page in Chromium",
                _s(served),
                "-" if first_page is None else _s(served + first_page),
                "streamlit run until /_stcore/health; then Home's title shown",
            )
        )
        engine_load, bare_load = _in_fresh_process(_ENGINE_LOAD), _in_fresh_process(_BARE_LOAD)
        rows.append(
            (
                "model ready from cache (fresh process)",
                _s(engine_load),
                _s(bare_load),
                "load_model vs plain from_pretrained on the same files",
            )
        )
        print("cold start measured", flush=True)

        settings = replace(
            Settings(),
            db_path=folder / "bench.db",
            work_dir=folder / "kernels",
            max_kernels=max(counts) + 2,
            cell_timeout_s=300,
        )
        wb = Workbook(settings)
        try:
            timing = bench_run_and_export(wb)
            print("run and export measured", flush=True)
            extra = timing["run"] - timing["forward"]
            rows.append(
                (
                    "step 2 Run round trip (run_step)",
                    ms(timing["run"]),
                    ms(timing["forward"]),
                    f"+{extra * 1000:.0f} ms vs bare forward (target < 50 ms)",
                )
            )
            rows.append(
                (
                    "  of which kernel execute alone",
                    ms(timing["execute"]),
                    ms(timing["forward"]),
                    f"+{(timing['execute'] - timing['forward']) * 1000:.0f} ms",
                )
            )
            rows.append(
                (
                    "export of a full bundle (export_bundle)",
                    ms(timing["export"]),
                    ms(timing["notebook"]),
                    "baseline: build_notebook alone (target < 1 s)",
                )
            )
            memory = bench_kernels(wb, counts)
            print("kernel memory measured", flush=True)
        finally:
            wb.kernels.shutdown_all()
        first = memory[0][1]
        for count, m in memory:
            rows.append(
                (
                    f"{count} kernel(s): USS / PSS / RSS per kernel",
                    f"{m['uss']:.0f} / {m['pss']:.0f} / {m['rss']:.0f} MB",
                    f"{first['uss']:.0f} MB USS (1 kernel)",
                    f"PSS total {m['pss_total']:.0f} MB",
                )
            )
            rows.append(
                (
                    "  of which .safetensors mapping (RSS / PSS / private / shared)",
                    f"{m['st_rss']:.0f} / {m['st_pss']:.0f} / {m['st_private']:.0f} / "
                    f"{m['st_shared']:.0f} MB",
                    "",
                    "each extra kernel adds its USS (target < 450 MB)",
                )
            )
        explore = bench_explore(wb.engine())
        for name, label in (
            ("batched", "Explore, 16 sessions: one top_k_batch"),
            ("threads", "Explore, 16 sessions: 16 top_k in threads"),
        ):
            rows.append(
                (
                    label,
                    f"{SESSIONS / explore[name]:.1f} req/s",
                    f"{SESSIONS / explore['serial']:.1f} req/s",
                    f"baseline: 16 top_k one by one ({ms(explore['serial'])})",
                )
            )
    print()
    _print_table(rows)


if __name__ == "__main__":
    main()

"""Gateway benchmark: the notebook's Run through a local Kernel Gateway vs a local kernel.

One student's notebook is completed twice in one process, once in a local kernel and once in
a kernel on a Jupyter Kernel Gateway on 127.0.0.1 (``workbook.kernels.gateway_local``), and the same
requests are then timed on both, interleaved so background load hits both alike:

1. kernel start (until the kernel answers);
2. a trivial cell (``1 + 1``): the protocol's own round trip;
3. step 2's cell alone, and step 2's **Run** (execute + the check's silent inspection + the
   comparison), as ``Workbook.run_step`` does it;
4. step 3's silent inspection (the digest a check reads from the kernel);
5. the app's side of a check (the reference model's answer and the comparison), from which
   follow the checks per second one app server can answer, with a cached reference and with
   a new phrase (one forward pass).

Run it with ``python -m bench gateway`` (or ``make bench``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import machine, median_seconds, ms

REPEAT = 9


def _complete(wb, email: str) -> int:
    """Register a student and run setup + steps 1-6 with their solutions; return the id."""
    from workbook.exercise import content

    user = wb.register("Bench Student", email, "bench-password")
    for step in content.steps(wb.settings.model_name):
        run = wb.run_step(user.id, step.id, None if step.given else step.solution)
        if run.result.status != "ok" or (run.check is not None and not run.check.passed):
            why = run.result.message or (run.check.message if run.check is not None else "")
            raise RuntimeError(f"{step.id} failed: {why or run.result.status}")
    return user.id


def _start_times(make: Callable[[], object], repeat: int = 3) -> list[float]:
    times = []
    for _ in range(repeat):
        kernel = make()
        start = time.perf_counter()
        kernel.start()
        times.append(time.perf_counter() - start)
        kernel.shutdown()
    return times


def main() -> None:
    """Measure both ways and print one table."""
    from workbook.config import Settings
    from workbook.exercise import checks, content
    from workbook.kernels.gateway import GatewayKernel
    from workbook.kernels.gateway_local import LocalGateway
    from workbook.kernels.kernel import StudentKernel
    from workbook.service import Workbook

    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp_name:
        tmp = Path(tmp_name)
        with LocalGateway(root=tmp / "gateway") as gateway:
            # Generous cell limit: on a loaded machine a check's inspection can take a while.
            local = Workbook(
                Settings(db_path=tmp / "local.db", work_dir=tmp / "kernels", cell_timeout_s=300)
            )
            remote = Workbook(
                Settings(
                    db_path=tmp / "gateway.db",
                    work_dir=tmp / "unused",
                    kernel_gateway=gateway.url,
                    cell_timeout_s=300,
                )
            )
            try:
                starts = {
                    "local": _start_times(
                        lambda: StudentKernel(
                            "start", local.settings, cwd=tmp / "kernels" / "start"
                        )
                    ),
                    "gateway": _start_times(lambda: GatewayKernel("start", remote.settings)),
                }
                print("kernel start measured", flush=True)
                users = {
                    "local": (local, _complete(local, "local@example.org")),
                    "gateway": (remote, _complete(remote, "gateway@example.org")),
                }
                print("notebook completed in both kernels", flush=True)
                lm = local.engine()
                step2 = content.step("step2").solution
                inspect3 = checks.inspection_snippet("step3")
                times: dict[tuple[str, str], list[float]] = {}

                def timed(name: str, where: str, fn: Callable[[], object]) -> None:
                    times.setdefault((name, where), []).append(median_seconds(fn, 1))

                for wb, uid in users.values():  # warm-up
                    wb.run_step(uid, "step2", step2)
                for _ in range(REPEAT):
                    for where, (wb, uid) in users.items():
                        kernel = wb.kernels.kernel_for(str(uid))
                        timed("trivial", where, lambda k=kernel: k.execute("1 + 1"))
                        timed("execute", where, lambda k=kernel: k.execute(step2, timeout=60))
                        timed(
                            "run",
                            where,
                            lambda wb=wb, uid=uid: wb.run_step(uid, "step2", step2),
                        )
                        timed("inspect", where, lambda k=kernel: k.inspect(inspect3))
                # The app's side of a check: the reference (cached per phrase) and the comparison.
                kernel = remote.kernels.kernel_for(str(users["gateway"][1]))
                digest = kernel.inspect(inspect3)
                app_side = _runs(
                    lambda: checks.compare(digest, checks.reference_for("step3", lm, digest))
                )
                # A new phrase costs the reference model one forward pass.
                fresh = iter(f"Phrase number {i} for the reference model" for i in range(99))
                forward = _runs(lambda: lm.logits(next(fresh)))
            finally:
                local.kernels.shutdown_all()
                remote.kernels.shutdown_all()

    rows = [("kernel start (until it answers)", starts["local"], starts["gateway"])]
    labels = {
        "trivial": "trivial cell `1 + 1`",
        "execute": "step 2 cell alone (execute)",
        "run": "step 2 **Run** (execute + check)",
        "inspect": "step 3 check's silent inspection",
    }
    for key, label in labels.items():
        rows.append((label, times[(key, "local")], times[(key, "gateway")]))
    # Medians, and the fastest run: on a shared machine the fastest is closer to the cost.
    print()
    print("| measure, median (fastest) | local kernel | gateway kernel | gateway - local |")
    print("|---|---|---|---|")
    for label, here, there in rows:
        gap = statistics.median(there) - statistics.median(here)
        print(f"| {label} | {_both(here)} | {_both(there)} | {ms(gap, 1)} |")
    print()
    print(
        f"app side of one check (reference model + comparison): {_both(app_side)} "
        f"cached, {_both(forward)} with a new phrase (one forward pass)"
    )
    print(
        "checks per second one app server answers, from the fastest runs: "
        f"{1 / min(app_side):.0f} cached, {1 / min(forward):.0f} with a new phrase each"
    )


def _runs(fn: Callable[[], object], repeat: int = REPEAT) -> list[float]:
    """Wall times of ``repeat`` calls of ``fn``, in seconds."""
    return [median_seconds(fn, 1) for _ in range(repeat)]


def _both(values: list[float]) -> str:
    return f"{ms(statistics.median(values), 1)} ({ms(min(values), 1)})"


if __name__ == "__main__":
    main()

"""Helpers for the hosted-mode tests: start sandboxed kernels, check a bystander, read /proc."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from workbook.config import Settings
from workbook.kernels import limits, sandbox
from workbook.kernels.errors import SandboxUnavailable
from workbook.kernels.pool import KernelPool

ROOT = Path(__file__).resolve().parents[1]
AS_ROOT = os.geteuid() == 0
WHO = "root" if AS_ROOT else f"uid {os.geteuid()}"


def sandbox_problem() -> str | None:
    """Why sandboxed kernels cannot run here, or ``None``."""
    try:
        sandbox.check_available(Settings().sandbox_uid)
    except SandboxUnavailable as exc:
        return str(exc)
    return None


PROBLEM = sandbox_problem()
needs_sandbox = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")


def hosted_pool(tmp_path_factory, **overrides) -> tuple[KernelPool, Settings]:
    """A pool of sandboxed kernels with a fresh work folder and a decoy database."""
    work = tmp_path_factory.mktemp("kernels")
    db = tmp_path_factory.mktemp("data") / "workbook.db"
    db.write_text("secret answers")
    options = {"cell_timeout_s": 10, "kernel_max_processes": 64, **overrides}
    settings = Settings(work_dir=work, db_path=db, sandbox=True, **options)
    return KernelPool(settings), settings


def hosted_fixture(**overrides):
    """A module-scoped ``hosted`` fixture: ``hosted_pool(**overrides)``, shut down after."""

    @pytest.fixture(scope="module")
    def hosted(tmp_path_factory):
        pool, settings = hosted_pool(tmp_path_factory, **overrides)
        yield pool, settings
        pool.shutdown_all()

    return hosted


def wait_until(predicate, seconds: float = 10.0, tick: float = 0.25) -> bool:
    """Whether ``predicate()`` became true within ``seconds`` (looked at every ``tick``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(tick)
    return predicate()


def still_answers(kernel, label: str = "") -> float:
    """Assert that another student's kernel still answers; return (and print) its latency."""
    start = time.monotonic()
    result = kernel.execute("6 * 7")
    latency = time.monotonic() - start
    assert result.status == "ok", result.outputs
    assert result.outputs[-1]["data"]["text/plain"] == "42"
    print(f"[{WHO}] bystander answered in {latency * 1000:.0f} ms {label}".rstrip())
    return latency


def text_of(result) -> str:
    """Every output of a cell as one string (streams, values, errors)."""
    parts = []
    for output in result.outputs:
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def value_of(result):
    """The value a cell's last expression showed, evaluated back into Python."""
    assert result.status == "ok", result.outputs
    import ast

    # Output a child process wrote to its file descriptors may arrive after the value.
    shown = [o for o in result.outputs if o["output_type"] == "execute_result"]
    assert shown, result.outputs
    return ast.literal_eval(shown[-1]["data"]["text/plain"])


def sandbox_processes(kernel) -> list[dict[str, str]]:
    """Every process of the kernel's sandbox as the host sees it (its /proc status lines)."""
    table = limits._processes()
    found = []
    for proc in limits._tree(kernel.pid, table):
        try:
            text = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            continue  # it ended meanwhile
        status = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        status["pid"] = str(proc.pid)
        found.append(status)
    return found


def rss_mb() -> float:
    """This process's resident memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

"""Spare kernels, the setup cell in a used kernel, and time limits under load (real kernels).

Slow: real Jupyter kernels; the spare and the setup cell load the real bundled model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbook.config import Settings
from workbook.kernels.pool import KernelPool
from workbook.service import Workbook

pytestmark = pytest.mark.slow


def printed(result) -> str:
    assert result.status == "ok", (result.message, result.outputs)
    return "".join(o.get("text", "") for o in result.outputs if o["output_type"] == "stream")


def test_a_spare_becomes_the_students_kernel_in_their_own_folder(tmp_path):
    folder = tmp_path / "zoe"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    pool = KernelPool(Settings(work_dir=tmp_path, spare_kernels=1, max_kernels=2))
    try:
        assert pool._spares.fill_one()
        assert not pool._spares.fill_one()  # one spare is all the settings ask for
        kernel = pool.kernel_for("zoe")
        assert pool.spares_ready() == 0
        text = printed(
            kernel.execute(
                "import os, sys\n"
                "print(os.getcwd(), open('notes.txt').read(), 'transformers' in sys.modules,"
                " 'model' in globals(), 'tokenizer' in globals())"
            )
        )
        # Warmed up (transformers imported) yet as empty as a fresh kernel, in zoe's folder.
        assert text.split() == [str(folder.resolve()), "mine", "True", "False", "False"]
        assert kernel.user_id == "zoe" and kernel.cwd == folder.resolve()
        assert [p.name for p in tmp_path.iterdir()] == ["zoe"]

        # Restart takes the next spare; the student's files move along, variables do not.
        kernel.execute("gone = 1\nopen('later.txt', 'w').write('kept')")
        assert pool._spares.fill_one()
        restarted = pool.restart("zoe")
        assert restarted is not kernel and pool.current("zoe") is restarted
        assert not kernel.is_alive()
        text = printed(
            restarted.execute(
                "import os\nprint('gone' in globals(), open('later.txt').read(), os.getcwd())"
            )
        )
        assert text.split() == ["False", "kept", str(folder.resolve())]
        # The student's kernel plus a spare fill max_kernels=2: no second spare starts.
        assert pool._spares.fill_one()
        assert not pool._spares.fill_one()
    finally:
        pool.shutdown_all()
    assert pool.spares_ready() == 0


def test_restart_without_a_spare_restarts_the_same_kernel(tmp_path):
    pool = KernelPool(Settings(work_dir=tmp_path, spare_kernels=0))
    try:
        kernel = pool.kernel_for("ann")
        kernel.execute("gone = 1")
        assert pool.restart("ann") is kernel
        assert printed(kernel.execute("print('gone' in globals())")).strip() == "False"
    finally:
        pool.shutdown_all()


def test_setup_runs_again_in_a_used_kernel_and_keeps_the_loaded_model(tmp_path):
    # The default memory limit, under which loading a second copy of the model failed.
    settings = Settings(db_path=tmp_path / "wb.db", work_dir=tmp_path / "k", spare_kernels=0)
    wb = Workbook(settings)
    user = wb.register("Ray", "ray@example.org", "a long password")
    try:
        for step in wb.steps():
            run = wb.run_step(user.id, step.id, code=None if step.given else step.solution)
            assert run.result.status == "ok", (step.id, run.result.message)
            assert run.check is None or run.check.passed, (step.id, run.check.message)
        kernel = wb.kernels.current(str(user.id))
        model_id = printed(kernel.execute("print(id(model))"))
        runs = wb.run_all_above(user.id, "step6")
        assert [r.step_id for r in runs] == [s.id for s in wb.steps()[:-1]]
        for run in runs:
            assert run.result.status == "ok", (run.step_id, run.result.message)
            assert run.check is None or run.check.passed, (run.step_id, run.check.message)
        assert printed(kernel.execute("print(id(model))")) == model_id
        # A model replaced by something else is loaded again.
        kernel.execute("model = None")
        assert wb.run_step(user.id, "setup").result.status == "ok"
        assert (
            printed(kernel.execute("print(type(model).__name__)")).strip().endswith("ForCausalLM")
        )
    finally:
        wb.kernels.shutdown_all()


@pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="needs Linux schedstat")
def test_waiting_for_a_busy_cpu_does_not_count_against_a_cells_limit(tmp_path):
    cpu = min(os.sched_getaffinity(0))
    pool = KernelPool(Settings(work_dir=tmp_path, spare_kernels=0))
    spin = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(3)]
    try:
        kernel = pool.kernel_for("busy")
        # The cell runs on the kernel's main thread: put it on the CPU the hogs spin on, so
        # it gets about a quarter of it and needs several times its own time in wall time.
        os.sched_setaffinity(kernel.pid, {cpu})
        result = kernel.execute(
            "import time\nstart = time.thread_time()\n"
            "while time.thread_time() - start < 1.5:\n    pass\nprint('done')",
            timeout=2.5,
        )
        assert result.status == "ok", result.message
        assert printed(result).strip() == "done"
        # A cell that really runs away is still stopped, and told which limit it crossed.
        result = kernel.execute("while True:\n    pass", timeout=1)
        assert result.status == "timeout"
        assert "limit of 1 s" in result.message and "busy server" in result.message
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        pool.shutdown_all()


def _sandbox_problem() -> str | None:
    from workbook.kernels import sandbox

    try:
        sandbox.check_available(Settings().sandbox_uid)
    except sandbox.SandboxUnavailable as exc:
        return str(exc)
    return None


SANDBOX_PROBLEM = _sandbox_problem()


@pytest.mark.skipif(SANDBOX_PROBLEM is not None, reason=SANDBOX_PROBLEM or "")
def test_a_sandboxed_spare_gets_the_students_home_and_keeps_every_sandbox_rule(tmp_path):
    from workbook.kernels.cell_clock import kernel_process

    work = tmp_path / "kernels"
    (work / "zoe").mkdir(parents=True)
    (work / "zoe" / "notes.txt").write_text("mine")
    (work / "other").mkdir()
    (work / "other" / "marker-of-another-student.txt").write_text("not zoe's")
    # The probe below walks the sandbox's whole filesystem: on a loaded machine that can take
    # longer than the default 30 s cell limit, which is not what this test is about.
    pool = KernelPool(Settings(work_dir=work, sandbox=True, spare_kernels=1, cell_timeout_s=180))
    try:
        assert pool._spares.fill_one()
        kernel = pool.kernel_for("zoe")
        text = printed(
            kernel.execute(
                "import os, sys\n"
                "print(os.getcwd(), os.environ['HOME'], open('/home/student/notes.txt').read(),"
                " sorted(f for f in os.listdir('/home/student') if not f.startswith('.')),"
                " 'torch' in sys.modules)"
            )
        )
        assert text.split() == ["/home/student", "/home/student", "mine", "['notes.txt']", "True"]
        # What the kernel writes at home lands in zoe's folder on the server.
        kernel.execute("open('/home/student/new.txt', 'w').write('written')")
        assert (work / "zoe" / "new.txt").read_text() == "written"
        # Still sandboxed: no other student's folder, no network.
        probe = kernel.execute(
            "import socket\n"
            "print(any('marker-of-another' in f for d, _, fs in os.walk('/') for f in fs"
            " if not d.startswith('/proc')), end=' ')\n"
            "try:\n    socket.create_connection(('127.0.0.1', 8501), timeout=1)\n"
            "except OSError:\n    print('no-network')\n"
        )
        assert printed(probe).split() == ["False", "no-network"]
        # The cell clock finds the kernel inside bubblewrap.
        inner = kernel_process(kernel.pid)
        assert inner is not None and inner != kernel.pid
    finally:
        pool.shutdown_all()

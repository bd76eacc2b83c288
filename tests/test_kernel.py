"""Real kernels (unsandboxed, as in a local run): outputs, errors, timeouts, restarts, limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from kernel_cases import assert_a_large_allocation_fails_inside_the_kernel

from workbook.config import Settings
from workbook.kernels.errors import KernelError
from workbook.kernels.pool import KernelPool
from workbook.kernels.result import ExecutionResult

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    settings = Settings(
        work_dir=tmp_path_factory.mktemp("kernels"), cell_timeout_s=10, kernel_memory_mb=2048
    )
    pool = KernelPool(settings)
    yield pool
    pool.shutdown_all()


@pytest.fixture(scope="module")
def kernel(pool):
    return pool.kernel_for("alice")


def test_cells_share_state_and_are_numbered_like_a_notebook(kernel):
    first = kernel.execute("x = 20\nprint('hello')")
    second = kernel.execute("x + 22")
    assert first.status == "ok" and first.message == ""
    assert first.outputs == [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    assert second.execution_count == first.execution_count + 1
    assert second.outputs[-1]["output_type"] == "execute_result"
    assert second.outputs[-1]["data"]["text/plain"] == "42"


def test_rich_output_includes_an_html_table_from_a_pandas_styler(kernel):
    result = kernel.execute(
        "import pandas as pd\npd.DataFrame({'token': ['a', 'b'], 'p': [0.7, 0.3]}).style"
    )
    assert result.status == "ok"
    html = result.outputs[-1]["data"]["text/html"]
    assert "<table" in html and "0.7" in html


def test_display_data_and_stderr_are_captured(kernel):
    result = kernel.execute(
        "import sys\nfrom IPython.display import display, HTML\n"
        "display(HTML('<b>bold</b>'))\nprint('warn', file=sys.stderr)"
    )
    kinds = [o["output_type"] for o in result.outputs]
    assert kinds == ["display_data", "stream"]
    assert result.outputs[0]["data"]["text/html"] == "<b>bold</b>"
    assert result.outputs[1]["name"] == "stderr"


def test_outputs_are_valid_nbformat(kernel):
    import nbformat

    result = kernel.execute("print(1)\n2")
    cell = nbformat.v4.new_code_cell(
        "print(1)\n2", outputs=[nbformat.v4.new_output(**o) for o in result.outputs]
    )
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.validate(nb)


def test_an_exception_is_an_error_output_with_traceback(kernel):
    result = kernel.execute("def f():\n    return 1 / 0\nf()")
    assert result.status == "error"
    error = result.outputs[-1]
    assert error["output_type"] == "error" and error["ename"] == "ZeroDivisionError"
    assert any("f()" in line for line in error["traceback"])


def test_a_syntax_error_shows_as_in_jupyter(kernel):
    result = kernel.execute("def broken(:\n    pass")
    assert result.status == "error"
    assert result.outputs[-1]["ename"] == "SyntaxError"


def test_a_long_cell_is_interrupted_and_variables_survive(kernel):
    kernel.execute("kept = 'yes'")
    result = kernel.execute("import time\nwhile True:\n    time.sleep(0.01)", timeout=2)
    assert result.status == "timeout"
    assert "2 s" in result.message and "interrupted" in result.message
    assert kernel.execute("kept").outputs[-1]["data"]["text/plain"] == "'yes'"


def test_a_cell_ignoring_the_interrupt_gets_the_kernel_restarted(kernel):
    code = (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    )
    result = kernel.execute(code, timeout=1)
    assert result.status == "timeout"
    assert "restarted" in result.message
    assert kernel.execute("1 + 1").outputs[-1]["data"]["text/plain"] == "2"


def test_a_large_allocation_fails_inside_the_kernel(kernel):
    assert_a_large_allocation_fails_inside_the_kernel(kernel, "memory")


def test_a_dead_kernel_is_restarted_with_a_clear_message(kernel):
    kernel.execute("doomed = 1")
    result = kernel.execute("import os\nos._exit(1)")
    assert result.status == "died"
    assert "restarted" in result.message
    assert kernel.is_alive()
    after = kernel.execute("'doomed' in globals()")
    assert after.outputs[-1]["data"]["text/plain"] == "False"


def test_restart_clears_variables(kernel):
    kernel.execute("gone = 1")
    kernel.restart()
    assert kernel.execute("'gone' in dir()").outputs[-1]["data"]["text/plain"] == "False"


def test_inspect_returns_json_silently_without_touching_the_count(kernel):
    before = kernel.execute("payload = 'ab' * 1_500_000").execution_count
    value = kernel.inspect("__workbook_result__ = {'n': len(payload), 'text': payload}")
    assert value["n"] == 3_000_000 and value["text"][:4] == "abab"
    after = kernel.execute("'__workbook_result__' in globals()")
    assert after.execution_count == before + 1
    assert after.outputs[-1]["data"]["text/plain"] == "False"


def test_inspect_raises_with_the_kernel_traceback(kernel):
    with pytest.raises(KernelError, match="NameError"):
        kernel.inspect("__workbook_result__ = undefined_name")
    with pytest.raises(KernelError, match="__workbook_result__"):
        kernel.inspect("x = 1")


def test_kernel_works_in_the_students_folder_and_sees_lm_engine(kernel):
    result = kernel.execute("import os, lm_engine\nos.getcwd(), os.environ['HF_HUB_OFFLINE']")
    assert result.status == "ok", result.outputs
    assert result.outputs[-1]["data"]["text/plain"] == repr((str(kernel.cwd), "1"))


def test_pool_reuses_kernels_and_lines_students_up_when_full(tmp_path):
    pool = KernelPool(
        Settings(work_dir=tmp_path, max_kernels=1, kernel_idle_s=3600, kernel_idle_when_full_s=3600)
    )
    try:
        first = pool.kernel_for("bob")
        assert pool.kernel_for("bob") is first
        carol = threading.Thread(target=pool.kernel_for, args=("carol",), daemon=True)
        carol.start()
        deadline = time.monotonic() + 30
        while pool.place_in_line("carol") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.place_in_line("carol") == 1 and pool.running() == ["bob"]
        first.last_used = -1e9  # Bob leaves: his idle kernel is culled, Carol gets the place
        assert pool.cull_idle() == ["bob"]
        carol.join(60)
        assert pool.running() == ["carol"] and pool.current("carol").is_alive()
    finally:
        pool.shutdown_all()


def test_idle_kernels_are_culled_to_make_room(tmp_path):
    pool = KernelPool(Settings(work_dir=tmp_path, max_kernels=1, kernel_idle_s=1))
    try:
        bob = pool.kernel_for("bob")
        time.sleep(1.5)
        carol = pool.kernel_for("carol")
        assert not bob.is_alive() and carol.is_alive()
        assert pool.running() == ["carol"]
        time.sleep(1.5)
        assert pool.cull_idle() == ["carol"]
    finally:
        pool.shutdown_all()


def test_the_kernel_process_is_found_once_per_start_not_on_every_run(tmp_path, monkeypatch):
    from workbook.kernels import cell_clock, threads
    from workbook.kernels.kernel import StudentKernel

    found: list[int | None] = []
    real = cell_clock.kernel_process

    def counting(pid: int | None) -> int | None:
        found.append(real(pid))
        return found[-1]

    monkeypatch.setattr(cell_clock, "kernel_process", counting)
    kernel = StudentKernel("kim", Settings(work_dir=tmp_path), cwd=tmp_path / "kim")
    try:
        kernel.start()
        for code in ("1", "2", "3"):
            assert kernel.execute(code).status == "ok"
        assert kernel.inspect("__workbook_result__ = 7") == 7
        threads.grant(kernel, 1)
        # Unsandboxed, the process the app started is the kernel itself.
        assert found == [kernel.pid]
        kernel.restart()
        assert kernel.execute("4").status == "ok"
        assert len(found) == 2 and found[1] == kernel.pid != found[0]
    finally:
        kernel.shutdown()


def test_bad_user_ids_are_refused(pool):
    with pytest.raises(KernelError):
        pool.kernel_for("../etc")


def test_kernels_die_when_the_app_dies(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from workbook.config import Settings
        from workbook.kernels.pool import KernelPool
        pool = KernelPool(Settings(work_dir=Path({str(tmp_path)!r})))
        kernel = pool.kernel_for("dave")
        print(kernel.pid, flush=True)
        time.sleep(600)
        """
    )
    app = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    kernel_pid = int(app.stdout.readline())
    os.kill(kernel_pid, 0)  # running
    app.send_signal(signal.SIGKILL)
    app.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(kernel_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(kernel_pid, signal.SIGKILL)
        pytest.fail("the kernel outlived the app")


def test_execution_result_is_a_frozen_value():
    result = ExecutionResult(outputs=[], execution_count=None, status="ok", message="")
    with pytest.raises(AttributeError):
        result.status = "error"  # type: ignore[misc]


def test_a_cell_over_its_cpu_budget_is_stopped_and_the_next_cell_runs(tmp_path):
    pool = KernelPool(Settings(work_dir=tmp_path, kernel_cell_cpu_s=1, cell_timeout_s=30))
    try:
        kernel = pool.kernel_for("erin")
        kernel.execute("kept = 1")
        result = kernel.execute("while True:\n    pass")
        assert result.status == "error"
        assert result.outputs[-1]["ename"] == "CellCPUTimeExceeded"
        assert "CPU time" in result.message
        # The budget is per cell: a cheap cell afterwards runs, variables intact.
        assert kernel.execute("kept + 1").outputs[-1]["data"]["text/plain"] == "2"
        # Each cell gets its whole second, whatever fraction of a second the kernel had
        # used before it (RLIMIT_CPU counts whole seconds; the used time is rounded up, so
        # a cell starting at 2.9 s used is not stopped at 3 s). Cells that burn 0.8 s of
        # the kernel's own CPU time start at ever different fractions.
        burn = (
            "import time\nt0 = time.process_time()\nwhile time.process_time() - t0 < 0.8:\n    pass"
        )
        for _ in range(4):
            burnt = kernel.execute(burn)
            assert burnt.status == "ok", burnt.outputs
    finally:
        pool.shutdown_all()

"""Student kernels on a real Jupyter Kernel Gateway (a process on 127.0.0.1, real kernels).

The gateway serves the workbook's kernelspec (``workbook.kernels.gateway_local``): our launchers, the
memory and CPU limits, ``lm_engine`` and this machine's model cache. The first half drives a
``GatewayKernel`` the way ``tests/test_kernel.py`` drives a local one; the second half points a
whole ``Workbook`` at the gateway and does the homework: setup and steps 1-6 with their checks,
a runaway cell, a restart, and the gateway killed mid-cell and brought back.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from kernel_cases import assert_a_large_allocation_fails_inside_the_kernel

from workbook.config import Settings
from workbook.errors import WorkbookError
from workbook.exercise import content
from workbook.kernels.errors import KernelDied, KernelError, ServerBusy
from workbook.kernels.gateway import GatewayKernel
from workbook.kernels.gateway_local import LocalGateway
from workbook.kernels.kernel import StudentKernel
from workbook.kernels.notices import CUT_OFF, LOST_WHILE_IDLE, MODEL_MISSING
from workbook.kernels.pool import KernelPool
from workbook.service import Workbook

pytest.importorskip("kernel_gateway")
pytestmark = pytest.mark.slow

TOKEN = "a-test-token"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    gw = LocalGateway(token=TOKEN, root=tmp_path_factory.mktemp("gateway"), memory_mb=4096)
    gw.start()
    yield gw
    gw.close()


def gateway_settings(gw: LocalGateway, tmp_path, **overrides) -> Settings:
    return Settings(
        db_path=tmp_path / "workbook.db",
        work_dir=tmp_path / "kernels",
        kernel_gateway=gw.url,
        kernel_gateway_token=TOKEN,
        kernel_memory_mb=4096,
        **overrides,
    )


@pytest.fixture(scope="module")
def kernel(gateway, tmp_path_factory):
    pool = KernelPool(gateway_settings(gateway, tmp_path_factory.mktemp("k"), cell_timeout_s=10))
    yield pool.kernel_for("alice")
    pool.shutdown_all()


def plain(result) -> str:
    return result.outputs[-1]["data"]["text/plain"]


# --- one kernel through the gateway, as tests/test_kernel.py does locally ----------------


def test_the_kernel_runs_on_the_gateway_in_the_students_folder(kernel, gateway):
    assert isinstance(kernel, GatewayKernel) and kernel.kernel_id
    result = kernel.execute("import os, lm_engine\nos.getcwd(), os.environ['HF_HUB_OFFLINE']")
    assert result.status == "ok", result.outputs
    assert plain(result) == repr((str(gateway.root / "homes" / "alice"), "1"))


def test_the_gateways_own_environment_does_not_reach_the_kernel(kernel, gateway):
    # pytest sets PYTEST_CURRENT_TEST, so the gateway process inherited it.
    gateway_env = Path(f"/proc/{gateway.pid}/environ").read_bytes().split(b"\0")
    assert any(item.startswith(b"PYTEST_CURRENT_TEST=") for item in gateway_env)
    result = kernel.execute("import os\nsorted(k for k in os.environ if k.startswith('PYTEST'))")
    assert plain(result) == "[]"


def test_outputs_are_exactly_those_of_a_local_kernel(kernel, tmp_path):
    code = (
        "import sys\nfrom IPython.display import display, HTML\n"
        "print('out')\ndisplay(HTML('<b>bold</b>'))\nprint('warn', file=sys.stderr)\n"
        "import pandas as pd\npd.DataFrame({'token': ['a', 'b'], 'p': [0.7, 0.3]})"
    )
    local = StudentKernel("bob", Settings(work_dir=tmp_path), cwd=tmp_path / "bob")
    local.start()
    try:
        expected = local.execute(code)
    finally:
        local.shutdown()
    remote = kernel.execute(code)
    assert remote.status == expected.status == "ok"
    strip = [{k: v for k, v in o.items() if k != "execution_count"} for o in remote.outputs]
    assert strip == [
        {k: v for k, v in o.items() if k != "execution_count"} for o in expected.outputs
    ]
    kinds = [o["output_type"] for o in remote.outputs]
    assert kinds == ["stream", "display_data", "stream", "execute_result"]


def test_cells_share_state_and_are_numbered_like_a_notebook(kernel):
    first = kernel.execute("x = 20\nprint('hello')")
    second = kernel.execute("x + 22")
    assert first.outputs == [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    assert second.execution_count == first.execution_count + 1
    assert plain(second) == "42"


def test_an_exception_is_an_error_output_with_traceback(kernel):
    result = kernel.execute("def f():\n    return 1 / 0\nf()")
    assert result.status == "error" and result.message == ""
    error = result.outputs[-1]
    assert error["ename"] == "ZeroDivisionError"
    assert any("f()" in line for line in error["traceback"])


def test_a_long_cell_is_interrupted_through_the_gateway_and_variables_survive(kernel):
    kernel.execute("kept = 'yes'")
    result = kernel.execute("import time\nwhile True:\n    time.sleep(0.01)", timeout=2)
    assert result.status == "timeout"
    assert "2 s" in result.message and "interrupted" in result.message
    assert result.outputs[-1]["ename"] == "KeyboardInterrupt"
    assert plain(kernel.execute("kept")) == "'yes'"


def test_a_cell_ignoring_the_interrupt_gets_a_new_kernel(kernel):
    before = kernel.kernel_id
    code = (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    )
    result = kernel.execute(code, timeout=1)
    assert result.status == "timeout" and "restarted" in result.message
    assert kernel.kernel_id != before
    assert plain(kernel.execute("1 + 1")) == "2"


def test_a_dead_kernel_is_restarted_with_a_clear_message(kernel):
    kernel.execute("doomed = 1")
    result = kernel.execute("import os\nos._exit(1)")
    assert result.status == "died"
    assert "stopped unexpectedly" in result.message and "restarted" in result.message
    assert kernel.is_alive()
    assert plain(kernel.execute("'doomed' in globals()")) == "False"


def test_a_kernel_that_dies_while_idle_is_replaced_and_the_next_run_says_so(kernel):
    kernel.execute("gone = 1")
    # Kill it from outside (as an out-of-memory kill would), between two runs.
    kernel.execute("import os, threading\nthreading.Timer(0.3, os._exit, (1,)).start()")
    deadline = time.monotonic() + 30
    while kernel.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not kernel.is_alive()
    result = kernel.execute("'gone' in globals()")
    assert result.status == "ok" and plain(result) == "False"
    assert result.message == LOST_WHILE_IDLE


def test_restart_goes_through_the_gateway_and_clears_variables(kernel):
    kernel.execute("gone = 1")
    before = kernel.kernel_id
    kernel.restart()
    assert kernel.kernel_id == before  # restarted in place, not a new kernel
    assert plain(kernel.execute("'gone' in dir()")) == "False"


def test_memory_limit_of_the_kernelspec_applies(kernel):
    assert_a_large_allocation_fails_inside_the_kernel(kernel, "4096 MB")


def test_inspect_returns_large_json_silently_without_touching_the_count(kernel):
    before = kernel.execute("payload = 'ab' * 1_500_000").execution_count
    value = kernel.inspect("__workbook_result__ = {'n': len(payload), 'text': payload}")
    assert value["n"] == 3_000_000 and value["text"] == "ab" * 1_500_000
    after = kernel.execute("'__workbook_result__' in globals()")
    assert after.execution_count == before + 1
    assert plain(after) == "False"


def test_inspect_raises_with_the_kernel_traceback(kernel):
    with pytest.raises(KernelError, match="NameError"):
        kernel.inspect("__workbook_result__ = undefined_name")
    with pytest.raises(KernelError, match="__workbook_result__"):
        kernel.inspect("x = 1")


def test_shutdown_removes_the_kernel_from_the_gateway(gateway, tmp_path):
    pool = KernelPool(gateway_settings(gateway, tmp_path))
    kernel = pool.kernel_for("carol")
    kernel_id = kernel.kernel_id
    assert kernel._rest.call("GET", f"/api/kernels/{kernel_id}")[0] == 200
    pool.shutdown_all()
    assert kernel._rest.call("GET", f"/api/kernels/{kernel_id}")[0] == 404
    assert not kernel.is_alive()


def test_idle_gateway_kernels_are_culled_and_shut_down_on_the_gateway(gateway, tmp_path):
    pool = KernelPool(gateway_settings(gateway, tmp_path, kernel_idle_s=1))
    try:
        kernel = pool.kernel_for("gina")
        kernel_id = kernel.kernel_id
        time.sleep(1.5)
        assert pool.cull_idle() == ["gina"]
        assert kernel._rest.call("GET", f"/api/kernels/{kernel_id}")[0] == 404
    finally:
        pool.shutdown_all()


def test_a_wrong_token_is_refused_with_a_message_for_the_instructor(gateway, tmp_path):
    settings = replace(gateway_settings(gateway, tmp_path), kernel_gateway_token="wrong")
    pool = KernelPool(settings)
    with pytest.raises(KernelDied, match="WORKBOOK_KERNEL_GATEWAY_TOKEN"):
        pool.kernel_for("dave")
    assert pool.running() == []


def test_an_unknown_kernelspec_names_itself_in_the_message(gateway, tmp_path):
    settings = replace(gateway_settings(gateway, tmp_path), kernel_gateway_kernel="nonesuch")
    with pytest.raises(KernelDied, match="could not start a kernel.*'nonesuch'.*instructor"):
        KernelPool(settings).kernel_for("hana")


# --- a gateway at its limit, on a host without the model --------------------------------


@pytest.fixture(scope="module")
def bare_host(tmp_path_factory):
    """A gateway allowing one kernel, whose kernel host has no usable model cache."""
    root = tmp_path_factory.mktemp("bare")
    (root / "not-a-folder").write_text("the cache volume is not mounted here\n")
    gw = LocalGateway(
        token=TOKEN, root=root, max_kernels=1, model_cache=root / "not-a-folder" / "cache"
    )
    gw.start()
    pool = KernelPool(gateway_settings(gw, root / "app"))
    yield pool
    pool.shutdown_all()
    gw.close()


def test_a_full_gateway_gives_the_usual_busy_message(bare_host):
    bare_host.kernel_for("erin")
    with pytest.raises(ServerBusy, match="busy.*try again in a minute"):
        bare_host.kernel_for("frank")


def test_setup_cell_on_a_host_without_the_model_says_what_is_wrong(bare_host):
    kernel = bare_host.kernel_for("erin")
    result = kernel.execute(content.setup_code(content.DEFAULT_MODEL), timeout=300)
    assert result.status == "error"
    assert result.message == MODEL_MISSING.format(
        why="its model cache is missing or cannot be read"
    )
    assert any("lm_engine" in line for line in result.outputs[-1]["traceback"])


# --- the whole homework through the gateway -------------------------------------------


@pytest.fixture(scope="module")
def workbook(gateway, tmp_path_factory):
    wb = Workbook(gateway_settings(gateway, tmp_path_factory.mktemp("wb"), cell_timeout_s=300))
    user = wb.register("Ada Lovelace", "ada@example.org", "correct horse battery")
    yield wb, user.id
    wb.kernels.shutdown_all()


def solution(step_id: str) -> str:
    return content.step(step_id).solution


def test_setup_and_steps_1_to_6_pass_their_checks_through_the_gateway(workbook, gateway):
    wb, uid = workbook
    setup = wb.run_step(uid, "setup")
    assert setup.result.status == "ok", setup.result.outputs
    lm = wb.engine()
    printed = "".join(o.get("text", "") for o in setup.result.outputs)
    assert f"{len(lm.tokenizer):,}" in printed and f"{lm.num_parameters:,}" in printed
    assert isinstance(wb.kernels.kernel_for(str(uid)), GatewayKernel)
    for step in content.steps()[1:]:
        run = wb.run_step(uid, step.id, step.solution)
        assert run.result.status == "ok", (step.id, run.result.outputs)
        assert run.check is not None and run.check.passed, (step.id, run.check.message)
        assert wb.cells(uid)[step.id].passed


def test_a_runaway_cell_is_interrupted_and_earlier_variables_survive(workbook):
    wb, uid = workbook
    patient = wb.settings
    wb.settings = replace(patient, cell_timeout_s=3)
    try:
        run = wb.run_step(uid, "step4", "while True:\n    pass")
    finally:
        wb.settings = patient
    assert run.result.status == "timeout" and "interrupted" in run.result.message
    again = wb.run_step(uid, "step4", solution("step4"))
    assert again.check.passed, again.check.message


def test_restart_then_run_all_above_rebuilds_the_variables(workbook):
    wb, uid = workbook
    wb.restart_kernel(uid)
    lost = wb.run_step(uid, "step3", solution("step3"))
    assert lost.result.status == "error" and lost.result.outputs[-1]["ename"] == "NameError"
    runs = wb.run_all_above(uid, "step3")
    assert [r.step_id for r in runs] == ["setup", "step1", "step2"]
    assert all(r.result.status == "ok" for r in runs)
    assert wb.run_step(uid, "step3", solution("step3")).check.passed


def test_killing_the_gateway_mid_cell_is_explained_and_recovers_when_it_returns(workbook, gateway):
    wb, uid = workbook
    kernel = wb.kernels.kernel_for(str(uid))
    slow_code = "import time\ntime.sleep(120)"
    outcome: dict = {}

    def run_slow_cell() -> None:
        try:
            outcome["run"] = wb.run_step(uid, "step5", slow_code)
        except WorkbookError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run_slow_cell)
    worker.start()
    path = f"/api/kernels/{kernel.kernel_id}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the gateway says the cell is running
        if kernel._rest.call("GET", path)[1].get("execution_state") == "busy":
            break
        time.sleep(0.2)
    gateway.stop(kill=True)
    worker.join(60)
    assert str(outcome.get("error")) == CUT_OFF, outcome
    with pytest.raises(WorkbookError, match="not reachable right now.*code is saved"):
        wb.run_step(uid, "step4", solution("step4"))
    # Nothing the student typed is lost, even the cell that never ran.
    assert wb.cells(uid)["step4"].code == solution("step4")
    assert wb.cells(uid)["step5"].code == slow_code

    gateway.start()
    back = wb.run_step(uid, "step1", solution("step1"))
    assert back.result.message.startswith(LOST_WHILE_IDLE)
    assert back.result.status == "error"  # the tokenizer from the setup cell is gone
    runs = wb.run_all_above(uid, "step3")
    assert all(r.result.status == "ok" for r in runs), [r.result.outputs for r in runs]
    assert all(r.result.message == "" for r in runs)
    assert wb.run_step(uid, "step3", solution("step3")).check.passed


# --- the same through Jupyter Enterprise Gateway (when one is installed) -------------------

ENTERPRISE = os.environ.get("WORKBOOK_TEST_ENTERPRISE_GATEWAY", "")


@pytest.mark.skipif(
    not ENTERPRISE,
    reason="set WORKBOOK_TEST_ENTERPRISE_GATEWAY to the `jupyter` of a separate venv holding "
    "jupyter-enterprise-gateway==3.3.0 (it pins jupyter_client 6, which conflicts with ours)",
)
def test_enterprise_gateway_runs_the_homework_too(tmp_path):
    with LocalGateway(token=TOKEN, root=tmp_path / "eg", enterprise=ENTERPRISE) as eg:
        wb = Workbook(gateway_settings(eg, tmp_path, cell_timeout_s=300))
        try:
            uid = wb.register("Eve", "eve@example.org", "correct horse battery").id
            setup = wb.run_step(uid, "setup")
            assert setup.result.status == "ok", setup.result.outputs
            for step in content.steps()[1:]:
                run = wb.run_step(uid, step.id, step.solution)
                assert run.check is not None and run.check.passed, (step.id, run.check.message)
            patient = wb.settings
            wb.settings = replace(patient, cell_timeout_s=3)
            try:
                runaway = wb.run_step(uid, "step4", "while True:\n    pass")
            finally:
                wb.settings = patient
            assert runaway.result.status == "timeout"
            assert wb.run_step(uid, "step4", solution("step4")).check.passed
            wb.restart_kernel(uid)
            lost = wb.run_step(uid, "step3", solution("step3"))
            assert lost.result.outputs[-1]["ename"] == "NameError"
        finally:
            wb.kernels.shutdown_all()

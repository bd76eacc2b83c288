"""The kernel template: local kernels forked from one warm process, with a plain start behind.

Real template, real fork, real kernels: the module's pool has its own template (a marker in
its kernels' environment gives it one of its own), shared by every test here.
"""

from __future__ import annotations

import os
import resource
import signal
import time
import uuid

import pytest
from kernel_cases import assert_a_large_allocation_fails_inside_the_kernel

from workbook.config import Settings
from workbook.exercise.setup_cell import setup_code
from workbook.kernels import cell_clock, template
from workbook.kernels.pool import KernelPool

pytestmark = pytest.mark.slow

_APP_ONLY = "WORKBOOK_TEST_TEMPLATE_ONLY"  # in the app's environment while the template starts
_MARK = "WORKBOOK_TEST_TEMPLATE_MARK"  # this pool's extra_env: a template of its own


def _value(kernel, code: str):
    result = kernel.execute(code)
    assert result.status == "ok", result.message
    return result.outputs[-1]["data"]["text/plain"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    settings = Settings(
        work_dir=tmp_path_factory.mktemp("template"),
        cell_timeout_s=30,
        kernel_memory_mb=3072,
        cell_max_output_kb=4,
        spare_kernels=0,
    )
    pool = KernelPool(settings, extra_env={_MARK: uuid.uuid4().hex})
    os.environ[_APP_ONLY] = "the template's"
    try:
        # A student's kernel never waits for the template: it starts as before while the
        # template starts in the background, with the variable set.
        first = pool.kernel_for("first")
    finally:
        del os.environ[_APP_ONLY]
    assert int(_value(first, "__import__('os').getppid()")) == os.getpid()  # a plain start
    assert template.wait_until_started()
    pool.restart("first")  # now forked
    yield pool
    pool.shutdown_all()


def _template_pid(pool) -> int:
    kernel = pool.kernel_for("first")
    return int(_value(kernel, "__import__('os').getppid()"))


def test_a_forked_kernel_has_the_requested_folder_and_environment(pool):
    parent = _template_pid(pool)
    assert parent in template.pids() and parent != os.getpid()
    kernel = pool.kernel_for("bob")
    assert int(_value(kernel, "import os\nos.getppid()")) == parent  # forked, not started
    assert _value(kernel, "os.getcwd()") == repr(str(pool.settings.work_dir.resolve() / "bob"))
    assert _value(kernel, f"os.environ.get({_MARK!r})") == repr(pool.extra_env[_MARK])
    # The template's own environment had this variable; the kernel's replaces it wholly.
    assert _value(kernel, f"{_APP_ONLY!r} in os.environ") == "False"
    assert _value(kernel, "os.getpgid(0) == os.getpid() == os.getsid(0)") == "True"
    assert cell_clock.kernel_process(kernel.pid) == kernel.pid


def test_the_launchers_limits_bind_a_forked_kernel(pool):
    kernel = pool.kernel_for("bob")
    limit = 3072 * 1024 * 1024
    code = "import resource\nresource.getrlimit(resource.RLIMIT_AS)"
    assert _value(kernel, code) == repr((limit, limit))
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != limit  # not the app's own
    assert _value(kernel, "import signal\nsignal.getsignal(signal.SIGXCPU).__name__") == "'on_xcpu'"
    assert_a_large_allocation_fails_inside_the_kernel(kernel, "memory")
    # The launcher's cap, inside IPython's own wrapper of the stream.
    code = "import sys\n[getattr(c.cell_contents, '__name__', '') for c in sys.stdout.write.__closure__]"
    assert "write_capped" in _value(kernel, code)
    printed = kernel.execute("print('x' * 100_000)")
    text = "".join(o.get("text", "") for o in printed.outputs if o["output_type"] == "stream")
    assert text.count("x") < 100_000


def test_interrupt_reaches_a_forked_kernel(pool):
    kernel = pool.kernel_for("bob")
    kernel.execute("kept = 'yes'")
    result = kernel.execute("import time\nwhile True:\n    time.sleep(0.01)", timeout=2)
    assert result.status == "timeout" and "interrupted" in result.message
    assert _value(kernel, "kept") == "'yes'"


def test_a_forked_kernel_may_use_two_torch_threads_after_the_template_used_one(pool):
    kernel = pool.kernel_for("carol")
    parent = _template_pid(pool)
    # The template forks with no thread besides its own: no pool is copied half-alive.
    assert len(os.listdir(f"/proc/{parent}/task")) == 1
    setup = kernel.execute(setup_code(pool.settings.model_name), timeout=120)
    assert setup.status == "ok", setup.message
    code = (
        "torch.set_num_threads(2)\n"
        "a = torch.randn(512, 512)\n"
        "with torch.no_grad():\n"
        "    logits = model(tokenizer('The cat sat', return_tensors='pt')['input_ids']).logits\n"
        "(torch.get_num_threads(), float((a @ a).sum()) == float((a @ a).sum()),"
        " logits.shape[-1] == model.config.vocab_size)"
    )
    assert _value(kernel, code) == "(2, True, True)"


def test_closing_the_lifeline_ends_a_forked_kernel_and_its_status_is_reported(pool):
    kernel = pool.kernel_for("dora")
    proc = kernel._proc
    assert isinstance(proc, template.ForkedKernel)
    os.close(kernel._lifeline_w)
    kernel._lifeline_w = None
    assert proc.wait(timeout=30) == 3  # the launcher's lifeline exit, reaped by the template
    assert not kernel.is_alive()


def test_a_killed_template_means_a_plain_start_then_a_new_template(pool):
    old = _template_pid(pool)
    others = set(template.pids()) - {old}  # other modules' pools' templates
    os.kill(old, signal.SIGKILL)
    while old in template.pids():
        time.sleep(0.1)
    kernel = pool.kernel_for("erin")  # the template is gone: started as before
    assert int(_value(kernel, "__import__('os').getppid()")) == os.getpid()
    assert _value(kernel, "1 + 1") == "2"
    # Asking for a kernel saw the template gone and started a new one in the background.
    assert template.wait_until_started(), "the template's new start did not end"
    assert set(template.pids()) - others, "the template was not started again"
    fresh = pool.kernel_for("fay")
    assert int(_value(fresh, "__import__('os').getppid()")) in template.pids()


def test_the_setting_turns_the_template_off():
    assert Settings.from_env({}).kernel_template is True
    assert Settings.from_env({"WORKBOOK_KERNEL_TEMPLATE": "0"}).kernel_template is False


def test_a_kernel_whose_torch_may_start_more_threads_is_not_forked():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    popen = {"env": env, "cwd": "/", "stderr": 2}
    assert template.start_kernel(["-f", "unused.json"], popen, -1, "smollm2-135m") is None

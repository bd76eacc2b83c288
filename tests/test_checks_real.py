"""Step checks end to end: a real Jupyter kernel, the real setup cell and the bundled model.

The student's side runs exactly what the page runs (the given setup cell, then each step's
code) in a ``workbook.kernels.kernel`` kernel; the reference comes from ``lm_engine.load_model`` on
the same weights. Expected verdicts come from the engine, never from hard-coded numbers.
"""

from __future__ import annotations

import pytest

from lm_engine import load_model
from workbook.config import Settings
from workbook.exercise import content
from workbook.exercise.checks import run_check
from workbook.kernels.pool import KernelPool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lm():
    return load_model(content.DEFAULT_MODEL, device="cpu")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, lm):
    settings = Settings(
        work_dir=tmp_path_factory.mktemp("kernels"), cell_timeout_s=120, kernel_memory_mb=4096
    )
    pool = KernelPool(settings)
    k = pool.kernel_for("checks")
    setup = k.execute(content.setup_code(content.DEFAULT_MODEL), timeout=300)
    assert setup.status == "ok", setup.outputs
    yield k
    pool.shutdown_all()


def run(kernel, code: str):
    result = kernel.execute(code, timeout=120)
    assert result.status == "ok", result.outputs
    return result.outputs


def test_setup_cell_prints_the_sizes_of_the_bundled_model(kernel, lm):
    text = run(
        kernel, "print(f'{len(tokenizer):,}', f'{sum(p.numel() for p in model.parameters()):,}')"
    )
    assert text[0]["text"].split() == [f"{len(lm.tokenizer):,}", f"{lm.num_parameters:,}"]


def test_reference_solutions_pass_every_check_in_a_real_kernel(kernel, lm):
    for step in content.steps()[1:]:
        outputs = run(kernel, step.solution)
        result = run_check(step, kernel, lm, outputs=outputs)
        assert result.passed, (step.id, result.message)


def test_wrong_index_is_caught_in_a_real_kernel(kernel, lm):
    for number in (1, 2):
        run(kernel, content.step(f"step{number}").solution)
    run(kernel, "last_token_logits = model_output.logits[0, -2]")
    n = lm.encode(content.START_PHRASE).shape[1]
    result = run_check("step3", kernel, lm)
    assert not result.passed
    assert f"token position {n - 2} of {n}" in result.message


def test_function_that_prints_or_displays_is_caught_in_a_real_kernel(kernel, lm):
    code = content.step("step6").solution.split("\n\ncheck_global_vars")[0]
    noisy = code.replace(
        "    return pd.DataFrame",
        "    print('debug')\n    display(tokens)\n    return pd.DataFrame",
    )
    run(kernel, noisy)
    result = run_check("step6", kernel, lm)
    assert not result.passed
    assert any("printed 'debug'" in d for d in result.details)
    assert any("displayed output itself" in d for d in result.details)
    # Inspection leaves the kernel as it was: the display hook works again afterwards.
    after = run(kernel, "display('shown')")
    assert any(o["output_type"] == "display_data" for o in after)


def test_check_of_a_long_phrase_works_in_a_real_kernel(kernel, lm):
    run(kernel, f"phrase = {content.ALTERNATIVE_PHRASE!r}")
    for number in range(1, 6):
        code = content.step(f"step{number}").solution.replace(
            f'phrase = "{content.START_PHRASE}"\n', ""
        )
        outputs = run(kernel, code)
        result = run_check(f"step{number}", kernel, lm, outputs=outputs)
        assert result.passed, (number, result.message)

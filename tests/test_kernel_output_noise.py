"""Students see only what their own code printed, never the server's warnings or paths."""

from __future__ import annotations

import sys

import pytest

from workbook.config import Settings
from workbook.kernels.pool import KernelPool
from workbook.web.outputs import joined_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    pool = KernelPool(Settings(work_dir=tmp_path_factory.mktemp("kernels"), cell_timeout_s=60))
    yield pool.kernel_for("noise")
    pool.shutdown_all()


def _stderr(result) -> str:
    return "".join(joined_text(o["text"]) for o in result.outputs if o.get("name") == "stderr")


def test_importing_tqdm_as_transformers_does_shows_no_server_warning(kernel):
    # transformers imports tqdm.auto, which warns about ipywidgets with its own file path.
    result = kernel.execute("from tqdm.auto import tqdm\nprint('imported')")
    assert result.status == "ok", result.outputs
    assert "IProgress" not in _stderr(result)
    assert sys.prefix not in str(result.outputs)
    assert joined_text(result.outputs[0]["text"]) == "imported\n"


def test_a_students_own_warning_is_still_shown(kernel):
    result = kernel.execute("import warnings\nwarnings.warn('check your shapes')")
    assert "UserWarning: check your shapes" in _stderr(result)

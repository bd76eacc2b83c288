"""What ``Workbook.run_step`` saves when a run ends (with stand-in kernels: no model needed)."""

from __future__ import annotations

import threading

from workbook.config import Settings
from workbook.kernels.result import ExecutionResult
from workbook.service import Workbook

PRINTED = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]


class FakeKernel:
    """Stands in for a student's kernel: ``during`` runs while the cell runs."""

    def __init__(self, status: str = "ok", during=None) -> None:
        self.lock = threading.RLock()
        self.status = status
        self.during = during or (lambda: None)

    def inspect(self, code: str, timeout=None):
        return None  # the thread grant: torch "not imported"

    def execute(self, code: str, timeout=None) -> ExecutionResult:
        self.during()
        return ExecutionResult(outputs=PRINTED, execution_count=1, status=self.status)


class FakePool:
    def __init__(self, kernel: FakeKernel) -> None:
        self.kernel = kernel

    def kernel_for(self, user_id: str) -> FakeKernel:
        return self.kernel

    def current(self, user_id: str) -> FakeKernel:
        return self.kernel

    def place_in_line(self, user_id: str) -> None:
        return None  # never full


def _workbook(tmp_path, kernel: FakeKernel) -> tuple[Workbook, int]:
    wb = Workbook(Settings(db_path=tmp_path / "wb.db", work_dir=tmp_path / "k"))
    wb._kernels = FakePool(kernel)
    return wb, wb.register("Ada", "ada@example.org", "a long password").id


def test_code_typed_while_its_cell_ran_stays_the_latest_revision(tmp_path):
    typed = "ran = 1  # typed while it ran"
    kernel = FakeKernel(status="error")  # an error: run_step checks nothing
    wb, uid = _workbook(tmp_path, kernel)
    kernel.during = lambda: wb.save_code(uid, "step1", typed)  # the autosave

    run = wb.run_step(uid, "step1", "ran = 1")
    assert run.result.outputs == PRINTED
    assert wb.cells(uid)["step1"].code == typed
    history = wb.store.cell_history(uid, "step1")
    # The run's revision (what ran, with its outputs) comes right before the typed text.
    assert [(r.code, r.ran_at is not None) for r in history] == [
        ("ran = 1", False),
        (typed, False),
        ("ran = 1", True),
        (typed, False),
    ]
    assert history[2].outputs == PRINTED


def test_a_run_without_edits_meanwhile_adds_only_its_own_revision(tmp_path):
    wb, uid = _workbook(tmp_path, FakeKernel(status="error"))
    wb.save_code(uid, "step1", "ran = 1")
    wb.run_step(uid, "step1", "ran = 1")
    history = wb.store.cell_history(uid, "step1")
    assert [(r.code, r.ran_at is not None) for r in history] == [
        ("ran = 1", False),
        ("ran = 1", True),
    ]
    assert wb.cells(uid)["step1"].outputs == PRINTED


def test_a_cell_that_ran_keeps_its_outputs_when_the_model_for_its_check_cannot_load(
    tmp_path, monkeypatch
):
    from workbook import WorkbookError

    wb, uid = _workbook(tmp_path, FakeKernel(status="ok"))

    def no_model():
        raise WorkbookError("the model could not be downloaded")

    monkeypatch.setattr(wb, "engine", no_model)
    run = wb.run_step(uid, "step1", "ran = 1")
    assert run.check is None
    assert run.result.status == "ok" and run.result.outputs == PRINTED
    assert "could not be checked: the model could not be downloaded" in run.result.message
    saved = wb.cells(uid)["step1"]
    assert saved.code == "ran = 1" and saved.outputs == PRINTED
    assert saved.ran_at is not None and saved.passed is None

"""What the notebook shows at a running cell (``pages/cell_runs.describe``)."""

from __future__ import annotations

from pages.cell_runs import Job, describe, spoken, verdict
from workbook.service import RunState

TITLES = {"setup": "Setup", "step1": "Step 1", "step2": "Step 2"}
NOTES = {"setup": "loading the model…"}


def test_a_running_cell_shows_for_how_long_and_what_a_long_given_cell_does():
    job = Job(id=1, user_id=7, step_ids=["setup"], started=100.0)
    job.current = "setup"
    step, text = describe(job, RunState("running", 0, 112.0), TITLES, NOTES, now=130.0)
    assert step == "setup"
    assert "**Running** · 18 s" in text and "loading the model…" in text


def test_a_queued_cell_shows_its_place_in_line():
    job = Job(id=2, user_id=7, step_ids=["step1"], started=100.0)
    for position, place in ((1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th")):
        _, text = describe(job, RunState("queued", position, 101.0), TITLES, NOTES, now=106.0)
        assert f"**{place} in line**" in text and "5 s" in text


def test_run_all_above_says_which_cell_of_how_many_runs_now():
    job = Job(id=3, user_id=7, step_ids=["setup", "step1", "step2"], started=100.0)
    job.current = "step1"
    step, text = describe(job, RunState("idle", None, None), TITLES, NOTES, now=104.0)
    assert step == "step1"
    assert "cell 2 of 3 (Step 1)" in text
    assert "4 s" in text  # from the job's own start while the workbook reports no state


def test_what_is_spoken_changes_with_the_state_and_place_not_with_the_seconds():
    job = Job(id=4, user_id=7, step_ids=["step1"], started=100.0)
    queued = [spoken(job, RunState("queued", n, 101.0), TITLES) for n in (2, 2, 1)]
    assert queued[0] == queued[1]  # the same place in line: nothing new to say
    assert queued[0][0] == "Step 1 is waiting for a free slot, 2nd in line."
    assert queued[2][0] == "Step 1 is waiting for a free slot, 1st in line."
    assert queued[2][1] != queued[0][1]
    job.current = "step1"
    sentence, said_id = spoken(job, RunState("running", 0, 105.0), TITLES)
    assert sentence == "Step 1 is running."
    later = Job(id=5, user_id=7, step_ids=["step1"], started=200.0)
    later.current = "step1"
    # The same cell running again in a later job is said again (a new id).
    assert spoken(later, RunState("running", 0, 201.0), TITLES) == (
        sentence,
        said_id.replace("job4", "job5"),
    )


def test_the_verdict_spoken_after_a_run_is_the_check_or_the_failure():
    from workbook.exercise.checks import CheckResult
    from workbook.service import CellRun

    class Result:
        def __init__(self, status: str, message: str = "") -> None:
            self.status, self.message, self.outputs = status, message, []

    job = Job(id=6, user_id=7, step_ids=["step1"])
    failed = CheckResult(False, "input_ids should be a tensor: use return_tensors.")
    job.runs.append(CellRun("step1", Result("ok"), failed))
    assert verdict(job, TITLES) == "Step 1: input_ids should be a tensor: use return_tensors."
    job.runs[-1] = CellRun("step1", Result("ok"), CheckResult(True, ""))
    assert verdict(job, TITLES) == "Step 1: Check passed."
    job.runs[-1] = CellRun("setup", Result("timeout", "The cell ran out of time."), None)
    assert verdict(job, TITLES) == "Setup: The cell ran out of time."
    job.runs[-1] = CellRun("setup", Result("ok"), None)
    assert verdict(job, TITLES) == "Setup has finished running."
    job.error = "Your kernel could not start. Try again."
    assert verdict(job, TITLES) == job.error


def test_run_state_says_running_since_while_a_cell_runs(tmp_path, monkeypatch):
    import threading
    import time

    from workbook import Settings, Workbook

    wb = Workbook(Settings(db_path=tmp_path / "w.db", work_dir=tmp_path / "k"))
    assert wb.run_state(7).state == "idle"
    inside = threading.Event()
    release = threading.Event()

    class _Kernel:
        lock = threading.RLock()

        def inspect(self, code, timeout=None):
            return None  # as a kernel that has not imported torch yet

        def execute(self, code, timeout=None):
            from workbook.kernels.result import ExecutionResult

            inside.set()
            assert release.wait(10)
            return ExecutionResult(outputs=[], execution_count=1)

    kernel = _Kernel()

    class _Pool:
        def kernel_for(self, user_id):
            return kernel

        def current(self, user_id):
            return kernel

    monkeypatch.setattr(Workbook, "kernels", property(lambda self: _Pool()))
    user = wb.store.create_user("s@example.org", "S", "long enough password")
    before = time.time()
    worker = threading.Thread(target=wb.run_step, args=(user.id, "setup"))
    worker.start()
    assert inside.wait(10)
    state = wb.run_state(user.id)
    assert state.state == "running" and state.position == 0
    assert before <= state.since <= time.time()
    release.set()
    worker.join(10)
    assert wb.run_state(user.id).state == "idle"


def test_a_cell_waiting_for_a_kernel_shows_its_place_and_why():
    job = Job(id=4, user_id=7, step_ids=["setup"], started=100.0)
    state = RunState("waiting_for_kernel", 2, 101.0)
    _, text = describe(job, state, TITLES, NOTES, now=109.0)
    assert "Waiting for a kernel: **2nd in line**" in text and "8 s" in text
    assert "try again" not in text


def test_a_wait_for_a_kernel_is_spoken_as_a_wait_not_as_running():
    job = Job(id=6, user_id=7, step_ids=["step1"], started=100.0)
    sentence, said_id = spoken(job, RunState("waiting_for_kernel", 3, 101.0), TITLES)
    assert sentence == "Step 1 is waiting for a kernel, 3rd in line."
    running, running_id = spoken(job, RunState("running", 0, 102.0), TITLES)
    assert running == "Step 1 is running." and running_id != said_id

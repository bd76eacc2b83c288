"""Home (sign in, register, sign out, throttling) and the Logits notebook page via AppTest."""

from __future__ import annotations

import datetime
import threading
import time

import pytest
from app_support import APP, code_cell, open_app, open_store
from streamlit.testing.v1 import AppTest

from db import AuthenticationError, SignInPolicy
from workbook import Settings, Workbook, WorkbookError
from workbook.exercise import content
from workbook.kernels import sandbox

PASSWORD = "long enough password"


def fill_form(at: AppTest, prefix: str, **values: str) -> None:
    for field, value in values.items():
        at.text_input(key=f"{prefix}:{field}").input(value)


# --- Home -----------------------------------------------------------------------------
def test_register_signs_the_student_in_and_shows_progress(db_path):
    at = AppTest.from_file(APP, default_timeout=30).run()
    fill_form(at, "home:register", name="Grace", email="Grace@Example.org", password=PASSWORD)
    at.button[1].click().run()  # the register form's submit button
    assert not at.exception
    assert at.session_state["auth:user_id"] is not None
    assert any("Welcome, Grace" in h.value for h in at.subheader)
    assert [m.label for m in at.metric] == [
        "Notebook steps passing",
        "Tutorial reflections",
        "Analysis answers",
    ]
    with open_store(db_path) as store:
        assert store.user_by_email("grace@example.org").name == "Grace"


def test_short_password_is_refused_with_a_message_and_no_account(db_path):
    at = AppTest.from_file(APP, default_timeout=30).run()
    fill_form(at, "home:register", name="Grace", email="grace@example.org", password="short")
    at.button[1].click().run()
    assert "at least 8 characters" in at.error[0].value
    assert "auth:user_id" not in at.session_state
    with open_store(db_path) as store:
        assert store.list_users() == []


def test_wrong_password_is_refused_and_right_one_signs_in(student_id):
    at = AppTest.from_file(APP, default_timeout=30).run()
    fill_form(at, "home:sign_in", email="ada@example.org", password="not the password")
    at.button[0].click().run()
    assert at.error[0].value == "Wrong email or password."
    assert "auth:user_id" not in at.session_state
    fill_form(at, "home:sign_in", email="ada@example.org", password=PASSWORD)
    at.button[0].click().run()
    assert at.session_state["auth:user_id"] == student_id


def test_many_failed_sign_ins_are_refused_before_checking_the_password(db_path, student_id):
    with open_store(db_path) as store:
        # A botnet's worth of addresses: the account-wide allowance is used up.
        for n in range(SignInPolicy().free_per_account):
            with pytest.raises(AuthenticationError):
                store.authenticate("ada@example.org", "wrong", client=f"198.51.100.{n}")
    at = AppTest.from_file(APP, default_timeout=30).run()
    fill_form(at, "home:sign_in", email="ada@example.org", password=PASSWORD)
    at.button[0].click().run()
    assert "Too many failed sign-ins" in at.error[0].value
    assert "Try again in" in at.error[0].value
    assert "auth:user_id" not in at.session_state


def test_sign_out_forgets_the_user(student_id):
    at = open_app(student_id)
    at.sidebar.button(key="sidebar:sign_out").click().run()
    assert "auth:user_id" not in at.session_state
    assert any(tab.label == "Sign in" for tab in at.tabs)


def test_signing_in_remembers_the_session_for_a_reload(db_path, student_id):
    at = AppTest.from_file(APP, default_timeout=30).run()
    fill_form(at, "home:sign_in", email="ada@example.org", password=PASSWORD)
    at.button[0].click().run()
    token = at.session_state["auth:token"]
    # The token the browser keeps in its cookie signs the same student in again.
    assert Workbook(Settings.from_env()).session_user(token).id == student_id


def test_signing_out_ends_the_remembered_session(db_path, student_id):
    with open_store(db_path) as store:
        token = store.start_session(student_id)
    at = open_app(student_id)
    at.session_state["auth:token"] = token
    at.sidebar.button(key="sidebar:sign_out").click().run()
    assert Workbook(Settings.from_env()).session_user(token) is None


def test_idle_session_expires(student_id, monkeypatch):
    monkeypatch.setenv("WORKBOOK_SESSION_IDLE_MIN", "1")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["auth:user_id"] = student_id
    at.session_state["auth:last_active"] = time.time() - 120
    at.run()
    assert "auth:user_id" not in at.session_state


# --- Logits notebook ------------------------------------------------------------------
NOTEBOOK = "pages/notebook.py"


def test_notebook_shows_setup_and_every_step_with_starter_code(student_id):
    at = open_app(student_id, NOTEBOOK)
    assert not at.exception
    graded = [s for s in content.steps() if not s.given]
    assert [h.value for h in at.subheader] == [s.title for s in content.steps()]
    for step in graded:
        cell = code_cell(at, step.id)
        assert cell.value == step.starter_code
        assert cell.data["label"] == f"Your code for {step.title}"


def test_code_typed_in_a_step_is_saved_and_shown_in_a_new_session(db_path, student_id):
    at = open_app(student_id, NOTEBOOK)
    code_cell(at, "step1").input("batch = tokenizer(phrase)  # my attempt")
    at.run()
    assert not at.exception
    assert any(c.value.startswith("✓ Saved at") for c in at.caption)
    with open_store(db_path) as store:
        assert store.cells_for(student_id)["step1"].code.endswith("# my attempt")
    again = open_app(student_id, NOTEBOOK)
    assert code_cell(again, "step1").value.endswith("# my attempt")


class _SlowWorkbook:
    """Stands in for ``Workbook.run_step``: holds a run until the test lets it finish."""

    def __init__(self, wb) -> None:
        self.wb = wb
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[tuple[str, str | None]] = []

    def run_step(self, user_id, step_id, code=None):
        from workbook.kernels.result import ExecutionResult
        from workbook.service import CellRun

        self.calls.append((step_id, code))
        self.wb.save_code(user_id, step_id, code or "")
        self.started.set()
        assert self.release.wait(30)
        result = ExecutionResult(
            outputs=[{"output_type": "stream", "name": "stdout", "text": f"ran {step_id}\n"}],
            execution_count=1,
        )
        return CellRun(step_id=step_id, result=result, check=None)


def test_shift_enter_runs_the_cell_and_a_second_run_waits_for_the_first(
    db_path, student_id, monkeypatch
):
    from pages import cell_runs

    jobs = cell_runs.Jobs()
    slow = _SlowWorkbook(Workbook(Settings.from_env()))
    real_start = jobs.start
    # The page's runs go to the held stand-in instead of a real kernel.
    monkeypatch.setattr(jobs, "start", lambda _wb, *a, **k: real_start(slow, *a, **k))
    monkeypatch.setattr(cell_runs, "jobs", lambda: jobs)
    at = open_app(student_id, NOTEBOOK)
    code = "print('hello')  # run with Shift+Enter"
    # The first run is held for a second; the page polls it until it ends.
    threading.Timer(1.0, slow.release.set).start()
    code_cell(at, "step1").run_with(code)
    at.run(timeout=60)
    assert not at.exception
    assert slow.calls == [("step1", code)]
    assert any("ran step1" in c.value for c in at.code)
    assert code_cell(at, "step1").value == code
    with open_store(db_path) as store:
        assert store.cells_for(student_id)["step1"].code == code

    # While a run goes on, another Run of the same student is refused, not queued.
    slow.release.clear()
    slow.started.clear()
    assert jobs.start(slow, student_id, ["step2"]) is not None
    assert slow.started.wait(10)
    assert jobs.start(slow, student_id, ["step3"]) is None
    slow.release.set()
    jobs.latest(student_id).done.wait(10)
    assert [c[0] for c in slow.calls] == ["step1", "step2"]


def test_shift_enter_refused_while_another_cell_runs_still_saves_the_text(
    db_path, student_id, monkeypatch
):
    from pages import cell_runs

    jobs = cell_runs.Jobs()
    slow = _SlowWorkbook(Workbook(Settings.from_env()))
    monkeypatch.setattr(cell_runs, "jobs", lambda: jobs)
    at = open_app(student_id, NOTEBOOK)
    typed = "print('not run')  # Shift+Enter while step 2 runs"
    real_save_code = Workbook.save_code

    def save_code(self, user_id, step_id, code):
        real_save_code(self, user_id, step_id, code)
        if code == typed:
            slow.release.set()  # the held run ends once the refused run's text is saved

    monkeypatch.setattr(Workbook, "save_code", save_code)
    assert jobs.start(slow, student_id, ["step2"]) is not None
    assert slow.started.wait(10)
    code_cell(at, "step1").run_with(typed)
    at.run(timeout=60)
    assert not at.exception
    assert any("still running" in t.value for t in at.toast)
    assert [c[0] for c in slow.calls] == ["step2"]
    # The editor counts the text as sent: it must be saved, or a reload would lose it.
    with open_store(db_path) as store:
        assert store.cells_for(student_id)["step1"].code == typed
    assert code_cell(open_app(student_id, NOTEBOOK), "step1").value == typed


def test_a_signed_out_visitor_cannot_reach_a_student_page(db_path):
    at = AppTest.from_file(APP, default_timeout=30).run()
    # The page is not even registered in a signed-out session's navigation.
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(NOTEBOOK)
    assert not at.text_area
    assert "Logits in Causal" not in str([t.value for t in at.title])


@pytest.mark.slow
def test_running_setup_and_a_correct_step_passes_and_keeps_outputs(db_path, student_id):
    at = open_app(student_id, NOTEBOOK)
    step1 = content.step("step1")
    code_cell(at, "step1").input(step1.solution)
    at.run()
    # "Run all above" on step 2 runs setup then step 1 in the student's kernel.
    at.button(key="step2:run_above").click().run(timeout=300)
    assert not at.exception
    assert any("Check passed" in s.value for s in at.success), [w.value for w in at.warning]
    with open_store(db_path) as store:
        cell = store.cells_for(student_id)["step1"]
    assert cell.passed is True and cell.outputs is not None
    # A new session (refresh, another day) shows the saved verdict without running again.
    again = open_app(student_id, NOTEBOOK)
    assert any("Check passed" in s.value for s in again.success)
    at.button(key="step1:restart").click().run(timeout=120)


@pytest.fixture
def fresh_sandbox_probe():
    """The sandbox probe is cached per process: start and leave this test with a clean one."""
    sandbox._probe.cache_clear()
    yield
    sandbox._probe.cache_clear()


def test_hosted_mode_without_bubblewrap_refuses_to_start(
    db_path, monkeypatch, tmp_path, fresh_sandbox_probe
):
    # A PATH without bwrap, as on a server where the package is missing.
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("WORKBOOK_SANDBOX", "1")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert "Hosted mode cannot start" in at.error[0].value
    assert "bubblewrap" in at.error[0].value
    assert not at.text_input  # no sign-in form: nothing runs unsandboxed


def test_the_instructor_sets_a_due_date_that_students_see(db_path, student_id):
    with open_store(db_path) as store:
        prof = store.create_user("prof@example.org", "Prof", PASSWORD, role="instructor")
    due = datetime.date.today() + datetime.timedelta(days=3)
    at = open_app(prof.id)
    at.date_input(key="home:due_date").set_value(due).run()
    assert not at.exception
    student_home = open_app(student_id)
    assert any("in 3 days" in info.value for info in student_home.info)


def test_only_the_instructor_may_change_the_due_date(db_path, student_id):
    with open_store(db_path) as store:
        ta = store.create_user("ta@example.org", "Tess", PASSWORD, role="ta")
    wb = Workbook(Settings.from_env())
    with pytest.raises(WorkbookError, match="Only the instructor"):
        wb.set_due_date(wb.user(ta.id), datetime.date.today())
    assert open_app(ta.id).date_input.len == 0  # a TA gets no due-date field
    assert wb.due_date() is None


def test_home_progress_counts_what_the_ta_roster_counts(db_path, student_id):
    with open_store(db_path) as store:
        store.save_answer(student_id, "q1", "Batch, tokens, vocabulary.")
        store.save_answer(student_id, "q2", "   ")  # blank answers do not count
        store.save_cell(student_id, "step1", code="x", outputs=[], passed=True, message="ok")
        store.set_tutorial_path(student_id, "project")
        store.log_project(
            student_id,
            description="A classifier",
            link="https://example.org/nb",
            notebook_name=None,
            notebook_bytes=None,
            reflection="I learned about autograd.",
        )
    progress = Workbook(Settings.from_env()).progress(student_id)
    assert (progress.steps_passed, progress.reflections, progress.answers) == (1, 2, 1)
    assert (progress.steps_total, progress.answers_total) == (6, 3)
    metrics = [m.value for m in open_app(student_id).metric]
    assert metrics == ["1 / 6", "2 / 2", "1 / 3"]

"""Cells: code autosaves and run results are revisions; outputs round-trip as nbformat dicts."""

from __future__ import annotations

import pytest
from db_fixtures import make_student

from db import NotFoundError, Store, ValidationError

OUTPUTS = [
    {"output_type": "stream", "name": "stdout", "text": "tensor([1, 2])\n"},
    {
        "output_type": "execute_result",
        "execution_count": 3,
        "data": {"text/plain": "'ĠParis'", "text/html": "<b>Paris</b>"},
        "metadata": {},
    },
    {"output_type": "error", "ename": "NameError", "evalue": "x", "traceback": ["..."]},
]


def test_run_result_round_trips(fresh_db):
    student = make_student(fresh_db)
    saved = fresh_db.save_cell(
        student.id,
        "step3",
        code="print(probs[:2])",
        outputs=OUTPUTS,
        execution_count=3,
        passed=False,
        message="`probs` should sum to 1",
    )
    latest = fresh_db.cells_for(student.id)["step3"]
    assert latest == saved
    assert latest.outputs == OUTPUTS
    assert (latest.execution_count, latest.passed, latest.message) == (
        3,
        False,
        "`probs` should sum to 1",
    )
    assert latest.ran_at is not None


def test_code_autosave_is_a_revision_without_results(fresh_db):
    student = make_student(fresh_db)
    cell = fresh_db.save_cell(student.id, "step1", code="phrase = 'hi'")
    assert (cell.outputs, cell.passed, cell.execution_count, cell.ran_at) == ([], None, None, None)


def test_repeated_autosave_of_same_code_keeps_the_run_result(fresh_db):
    student = make_student(fresh_db)
    fresh_db.save_cell(student.id, "step1", code="x = 1")
    ran = fresh_db.save_cell(student.id, "step1", code="x = 1", outputs=[], passed=True)
    again = fresh_db.save_cell(student.id, "step1", code="x = 1")
    assert again == ran and again.passed is True
    assert len(fresh_db.cell_history(student.id, "step1")) == 2


def test_cell_history_keeps_every_edit_and_run(fresh_db):
    student = make_student(fresh_db)
    fresh_db.save_cell(student.id, "step2", code="a")
    fresh_db.save_cell(student.id, "step2", code="ab")
    fresh_db.save_cell(student.id, "step2", code="ab", execution_count=1, passed=False)
    fresh_db.save_cell(student.id, "step2", code="ab", execution_count=2, passed=True)
    history = fresh_db.cell_history(student.id, "step2")
    assert [(c.code, c.passed) for c in history] == [
        ("a", None),
        ("ab", None),
        ("ab", False),
        ("ab", True),
    ]
    # Editing the code after a passing run: the latest revision is not checked any more.
    fresh_db.save_cell(student.id, "step2", code="abc")
    assert fresh_db.cells_for(student.id)["step2"].passed is None


def test_cells_for_is_per_student_and_in_step_order(fresh_db):
    one, two = make_student(fresh_db, 1), make_student(fresh_db, 2)
    fresh_db.save_cell(one.id, "step6", code="six")
    fresh_db.save_cell(one.id, "setup", code="setup")
    fresh_db.save_cell(two.id, "step1", code="other")
    assert list(fresh_db.cells_for(one.id)) == ["setup", "step6"]
    assert list(fresh_db.cells_for(two.id)) == ["step1"]


def test_code_is_stored_exactly(store):
    student = make_student(store)
    code = "s = \"don't\"  # 😀\n\tprint(f'{s!r}')\r\n"
    store.save_cell(student.id, "step4", code=code)
    reopened = Store(store.path)
    assert reopened.cells_for(student.id)["step4"].code == code
    reopened.close()


@pytest.mark.parametrize("step_id", ["step7", "Step1", "", None])
def test_unknown_step_id_is_refused(fresh_db, step_id):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.save_cell(student.id, step_id, code="x")
    assert caught.value.field == "step_id"


def test_step_ids_are_configurable(tmp_path):
    custom = Store(tmp_path / "w.db", step_ids=("a", "b"))
    student = make_student(custom)
    custom.save_cell(student.id, "b", code="ok")
    with pytest.raises(ValidationError):
        custom.save_cell(student.id, "step1", code="no")
    custom.close()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"code": "x" * 200_001}, "code"),
        ({"code": None}, "code"),
        ({"code": "x", "outputs": "not a list"}, "outputs"),
        ({"code": "x", "outputs": [{"data": object()}]}, "outputs"),
        ({"code": "x", "execution_count": -1}, "execution_count"),
        ({"code": "x", "passed": "yes"}, "passed"),
        ({"code": "x", "message": "m" * 20_001}, "message"),
    ],
)
def test_bad_cell_input_is_refused(fresh_db, kwargs, field):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.save_cell(student.id, "step1", **kwargs)
    assert caught.value.field == field
    assert fresh_db.cell_history(student.id, "step1") == []


def test_cell_for_unknown_user_is_refused(fresh_db):
    with pytest.raises(NotFoundError):
        fresh_db.save_cell(404, "step1", code="x")


def test_a_checked_run_keeps_its_cause_id_and_a_pass_has_none(fresh_db):
    student = make_student(fresh_db)
    failed = fresh_db.save_cell(
        student.id, "step3", code="x", passed=False, message="softmax", cause="softmax_too_early"
    )
    passed = fresh_db.save_cell(student.id, "step3", code="y", passed=True, message="ok")
    history = fresh_db.cell_history(student.id, "step3")
    assert [c.cause for c in history] == ["softmax_too_early", None]
    assert (failed.cause, passed.cause) == ("softmax_too_early", None)
    with pytest.raises(ValidationError):
        fresh_db.save_cell(student.id, "step3", code="z", passed=False, cause="")


def test_rows_stored_before_cause_ids_read_as_unclassified(tmp_path):
    from sqlite_utils import Database

    from db.migrations import migrations

    old = Database(tmp_path / "old.db")
    migrations.apply(old, stop_before="m007_check_causes")
    old.execute(
        "INSERT INTO users (email, name, role, password_hash, created_at)"
        " VALUES ('s@example.org', 'S', 'student', 'x', '2026-01-01T00:00:00.000000+00:00')"
    )
    old.execute(
        "INSERT INTO cell_revisions (user_id, step_id, code, outputs, passed, message, ran_at,"
        " created_at) VALUES (1, 'step2', 'c', '[]', 0, 'Not yet', '2026-01-01T00:00:01',"
        " '2026-01-01T00:00:01')"
    )
    old.close()
    with Store(tmp_path / "old.db") as store:
        (cell,) = store.cell_history(1, "step2")
        assert cell.passed is False and cell.cause is None

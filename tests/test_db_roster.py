"""Roster rows, export records and course settings."""

from __future__ import annotations

import hashlib

import pytest
from db_fixtures import make_student, make_ta

from db import ValidationError

DIGEST = hashlib.sha256(b"bundle").hexdigest()


def test_record_export_and_exports_for(fresh_db):
    student = make_student(fresh_db)
    first = fresh_db.record_export(student.id, "submission.zip", DIGEST.upper())
    fresh_db.record_export(student.id, "submission-2.zip", DIGEST)
    exports = fresh_db.exports_for(student.id)
    assert [e.file_name for e in exports] == ["submission.zip", "submission-2.zip"]
    assert first.sha256 == DIGEST


@pytest.mark.parametrize(
    "file_name, sha, field",
    [("", DIGEST, "file_name"), ("x" * 201, DIGEST, "file_name"), ("a.zip", "abc", "sha256")],
)
def test_bad_export_record_is_refused(fresh_db, file_name, sha, field):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.record_export(student.id, file_name, sha)
    assert caught.value.field == field


def test_roster_counts_each_students_progress(fresh_db):
    ada, bob = make_student(fresh_db, 1), make_student(fresh_db, 2)
    ta = make_ta(fresh_db)
    fresh_db.save_cell(ada.id, "step1", code="a", passed=True)
    fresh_db.save_cell(ada.id, "step2", code="b", passed=True)
    fresh_db.save_cell(ada.id, "step2", code="b changed")  # latest not passed any more
    fresh_db.save_cell(ada.id, "step3", code="c", passed=False)
    fresh_db.save_answer(ada.id, "q1", "tokens")
    fresh_db.save_answer(ada.id, "q2", "   ")
    fresh_db.log_tutorial(ada.id, "1", reflection="learned autograd")
    fresh_db.log_tutorial(ada.id, "2", reflection="")
    fresh_db.set_tutorial_path(ada.id, "tutorials")
    fresh_db.record_export(ada.id, "a.zip", DIGEST)
    fresh_db.save_feedback(ada.id, ta.id, grade=9, released=True)
    fresh_db.save_feedback(bob.id, ta.id, grade=3)
    fresh_db.set_tutorial_path(bob.id, "project")
    fresh_db.log_project(bob.id, reflection="built an MLP")

    rows = {row.user_id: row for row in fresh_db.roster()}
    assert set(rows) == {ada.id, bob.id}, "only students are on the roster"
    a, b = rows[ada.id], rows[bob.id]
    assert (a.steps_passed, a.steps_total) == (1, 7)
    assert (a.answers_nonempty, a.questions_total) == (1, 3)
    assert (a.reflections, a.project_reflection, a.tutorial_path) == (1, False, "tutorials")
    assert a.last_export_at is not None and a.last_activity_at is not None
    assert a.feedback_status == "released"
    assert (b.tutorial_path, b.project_reflection, b.reflections) == ("project", True, 0)
    assert b.feedback_status == "draft"
    assert b.last_export_at is None


def test_roster_hides_archived_students_unless_asked(fresh_db):
    student = make_student(fresh_db)
    fresh_db.archive_user(student.id)
    assert fresh_db.roster() == []
    assert fresh_db.roster(include_archived=True)[0].feedback_status == "none"


def test_settings_round_trip_json_values(fresh_db):
    assert fresh_db.setting("due_date", "unset") == "unset"
    fresh_db.set_setting("due_date", "2026-12-01T23:59:00+01:00")
    fresh_db.set_setting("max_points", 10)
    fresh_db.set_setting("max_points", 12)
    assert fresh_db.setting("due_date") == "2026-12-01T23:59:00+01:00"
    assert fresh_db.setting("max_points") == 12
    with pytest.raises(ValidationError):
        fresh_db.set_setting("", "x")
    with pytest.raises(ValidationError):
        fresh_db.set_setting("bad", object())

"""Feedback: drafts and releases are kept as versions; only TAs/instructors grade students."""

from __future__ import annotations

import pytest
from db_fixtures import make_student, make_ta

from db import NotFoundError, ValidationError


def test_feedback_for_returns_latest_draft_and_released_feedback_for_latest_release(fresh_db):
    student, ta = make_student(fresh_db), make_ta(fresh_db)
    with pytest.raises(NotFoundError):
        fresh_db.feedback_for(student.id)
    fresh_db.save_feedback(student.id, ta.id, grade=7, comment="draft")
    with pytest.raises(NotFoundError, match="released"):
        fresh_db.released_feedback_for(student.id)
    released = fresh_db.save_feedback(
        student.id,
        ta.id,
        grade="8.5",
        comment="Good work.",
        item_comments={"step3": "Nice softmax", "q1": "Say tokens 🙂"},
        released=True,
    )
    fresh_db.save_feedback(student.id, ta.id, grade=9, comment="regrade in progress")
    assert fresh_db.feedback_for(student.id).comment == "regrade in progress"
    seen = fresh_db.released_feedback_for(student.id)
    assert seen == released
    assert seen.grade == 8.5
    assert seen.item_comments == {"step3": "Nice softmax", "q1": "Say tokens 🙂"}
    assert [f.comment for f in fresh_db.feedback_history(student.id)] == [
        "draft",
        "Good work.",
        "regrade in progress",
    ]


def test_instructor_may_give_feedback_but_a_student_may_not(fresh_db):
    student, other = make_student(fresh_db, 1), make_student(fresh_db, 2)
    prof = fresh_db.create_user("prof@example.org", "Prof", "correct horse battery", "instructor")
    assert fresh_db.save_feedback(student.id, prof.id, grade=None).grade is None
    with pytest.raises(ValidationError) as caught:
        fresh_db.save_feedback(student.id, other.id, grade=10)
    assert caught.value.field == "grader_id"
    with pytest.raises(ValidationError) as caught:
        fresh_db.save_feedback(prof.id, prof.id, grade=10)
    assert caught.value.field == "student_id"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"grade": "A+"}, "grade"),
        ({"grade": -1}, "grade"),
        ({"grade": float("nan")}, "grade"),
        ({"grade": True}, "grade"),
        ({"comment": "c" * 20_001}, "comment"),
        ({"item_comments": {"q1": "c" * 20_001}}, "item_comments['q1']"),
        ({"item_comments": {"": "empty key"}}, "item_comments key"),
    ],
)
def test_bad_feedback_is_refused(fresh_db, kwargs, field):
    student, ta = make_student(fresh_db), make_ta(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.save_feedback(student.id, ta.id, **kwargs)
    assert caught.value.field == field
    assert fresh_db.feedback_history(student.id) == []


def test_feedback_for_unknown_student_is_refused(fresh_db):
    ta = make_ta(fresh_db)
    with pytest.raises(NotFoundError):
        fresh_db.save_feedback(999, ta.id, grade=1)


def test_snippets_are_kept_in_order(fresh_db):
    ta = make_ta(fresh_db)
    fresh_db.add_snippet("Say *tokens*, not words.", ta.id)
    fresh_db.add_snippet("Sampling can pick less likely tokens.", ta.id)
    assert [s.text for s in fresh_db.snippets()] == [
        "Say *tokens*, not words.",
        "Sampling can pick less likely tokens.",
    ]
    assert fresh_db.snippets()[0].author_id == ta.id
    with pytest.raises(ValidationError):
        fresh_db.add_snippet("   ", ta.id)

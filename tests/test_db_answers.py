"""Answers: every save is a revision, text is kept exactly, limits are enforced."""

from __future__ import annotations

import pytest
from db_fixtures import make_student

from db import NotFoundError, Store, ValidationError


def test_answer_history_keeps_every_revision(fresh_db):
    student = make_student(fresh_db)
    for text in ("first", "second", "third"):
        fresh_db.save_answer(student.id, "q2", text)
    history = fresh_db.answer_history(student.id, "q2")
    assert [rev.text for rev in history] == ["first", "second", "third"]
    assert [rev.id for rev in history] == sorted(rev.id for rev in history)
    assert fresh_db.answer(student.id, "q2").text == "third"


def test_saving_the_same_text_twice_does_not_add_a_revision(fresh_db):
    student = make_student(fresh_db)
    first = fresh_db.save_answer(student.id, "q1", "same")
    again = fresh_db.save_answer(student.id, "q1", "same")
    assert again == first
    fresh_db.save_answer(student.id, "q1", "changed")
    back = fresh_db.save_answer(student.id, "q1", "same")
    assert [r.text for r in fresh_db.answer_history(student.id, "q1")] == [
        "same",
        "changed",
        "same",
    ]
    assert back.id != first.id


def test_clearing_an_answer_is_a_revision_and_the_old_text_stays(fresh_db):
    student = make_student(fresh_db)
    fresh_db.save_answer(student.id, "q1", "a long careful answer")
    fresh_db.save_answer(student.id, "q1", "")
    assert fresh_db.answer(student.id, "q1").text == ""
    assert fresh_db.answer_history(student.id, "q1")[0].text == "a long careful answer"


@pytest.mark.parametrize(
    "text",
    [
        "Tokens ≠ words: “Ġthe” → 😀🧠 日本語",
        "<script>alert('x')</script> & <b>bold</b> &amp;",
        "Robert'); DROP TABLE answer_revisions;--",
        "  leading and trailing spaces \n\n\ttabs\r\nCRLF  ",
        "quotes \" and ' and `back`",
        "nul\x00inside",
        "a" * 20_000,
    ],
)
def test_text_is_stored_exactly_as_typed(store, text):
    student = make_student(store)
    store.save_answer(student.id, "q3", text)
    reopened = Store(store.path)
    assert reopened.answer(student.id, "q3").text == text
    reopened.close()


def test_answer_over_20000_characters_is_refused_and_nothing_saved(fresh_db):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.save_answer(student.id, "q1", "a" * 20_001)
    assert caught.value.field == "text"
    assert caught.value.limit == 20_000
    assert "20,000" in str(caught.value)
    assert fresh_db.answer_history(student.id, "q1") == []


def test_unpaired_surrogate_is_refused_with_a_clear_error(fresh_db):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError, match="not valid text"):
        fresh_db.save_answer(student.id, "q1", "broken \ud800 text")


@pytest.mark.parametrize("question_id", ["q4", "Q1", "", None])
def test_unknown_question_id_is_refused(fresh_db, question_id):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.save_answer(student.id, question_id, "text")
    assert caught.value.field == "question_id"


def test_question_ids_are_configurable(tmp_path):
    custom = Store(tmp_path / "w.db", question_ids=("Q1", "Q2", "Q3", "Q4"))
    student = make_student(custom)
    assert custom.save_answer(student.id, "Q4", "later question").question_id == "Q4"
    custom.close()


def test_non_text_answer_is_refused(fresh_db):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError, match="must be text"):
        fresh_db.save_answer(student.id, "q1", 42)


def test_answer_for_unknown_user_is_refused(fresh_db):
    with pytest.raises(NotFoundError):
        fresh_db.save_answer(12345, "q1", "orphan")


def test_answer_not_saved_yet_raises_not_found(fresh_db):
    student = make_student(fresh_db)
    with pytest.raises(NotFoundError, match="q2"):
        fresh_db.answer(student.id, "q2")


def test_answers_for_returns_latest_per_question_in_order(fresh_db):
    student, other = make_student(fresh_db, 1), make_student(fresh_db, 2)
    fresh_db.save_answer(student.id, "q3", "three")
    fresh_db.save_answer(student.id, "q1", "one")
    fresh_db.save_answer(student.id, "q1", "one, revised")
    fresh_db.save_answer(other.id, "q2", "someone else's")
    answers = fresh_db.answers_for(student.id)
    assert list(answers) == ["q1", "q3"]
    assert answers["q1"].text == "one, revised"
    assert fresh_db.answers_for(other.id)["q2"].user_id == other.id

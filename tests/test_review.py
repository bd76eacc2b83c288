"""TA review data: drafts vs released feedback, roster records, student review, responses CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest

from db import Store
from workbook import review
from workbook.config import Settings
from workbook.exercise import content
from workbook.service import Workbook

PASSWORD = "long enough password"
HTML_TEXT = '<script>alert("x")</script><b>bold</b>'


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    opened = Store(
        tmp_path / "workbook.db",
        question_ids=content.question_ids(),
        step_ids=content.step_ids(),
    )
    yield opened
    opened.close()


@pytest.fixture
def people(store):
    ada = store.create_user("ada@example.org", "Ada Lovelace", PASSWORD)
    bob = store.create_user("bob@example.org", "Bob Babbage", PASSWORD)
    ta = store.create_user("ta@example.org", "Tess TA", PASSWORD, role="ta")
    return ada, bob, ta


def draft(store, student, ta, **changes):
    values = {"grade": "Progressing", "comment": "Keep going", "item_comments": {}}
    values.update(changes)
    return review.save_feedback_draft(store, student.id, ta.id, **values)


def release(store, student, ta, **changes):
    values = {"grade": "Excellent", "comment": "Well done", "item_comments": {}}
    values.update(changes)
    return review.release_feedback(store, student.id, ta.id, **values)


def test_a_draft_is_saved_but_not_visible_to_the_student(store, people):
    ada, _, ta = people
    saved = draft(store, ada, ta, item_comments={"q1": "Say tokens", "q2": "  "})
    assert saved.released is False
    assert review.grade_label(saved.grade) == "Progressing"
    assert saved.item_comments == {"q1": "Say tokens"}  # blank item comments are dropped
    workbook = Workbook(Settings(db_path=store.path))  # the app's view of the same file
    assert workbook.released_feedback(ada.id) is None


def test_release_makes_the_feedback_visible_and_a_later_draft_keeps_it(store, people):
    ada, _, ta = people
    release(store, ada, ta, comment="Released text")
    draft(store, ada, ta, comment="Work in progress")
    workbook = Workbook(Settings(db_path=store.path))
    visible = workbook.released_feedback(ada.id)
    assert visible is not None and visible.comment == "Released text"
    assert review.grade_label(visible.grade) == "Excellent"
    assert store.feedback_for(ada.id).comment == "Work in progress"


def test_release_without_a_grade_is_refused_and_nothing_is_released(store, people):
    ada, _, ta = people
    with pytest.raises(review.ReviewError, match="Choose a grade"):
        release(store, ada, ta, grade=None)
    assert store.feedback_history(ada.id) == []


def test_a_student_cannot_be_saved_as_the_grader(store, people):
    ada, bob, _ = people
    with pytest.raises(review.ReviewError, match="not saved"):
        review.save_feedback_draft(
            store, ada.id, bob.id, grade="Beginning", comment="", item_comments={}
        )


def test_roster_records_show_progress_exports_and_feedback_status(store, people):
    ada, bob, ta = people
    store.save_cell(ada.id, "step1", code="x = 1", outputs=[], passed=True)
    store.save_answer(ada.id, "q1", "tokens")
    store.record_export(ada.id, "u9n1-lm-logits.zip", "a" * 64)
    release(store, ada, ta)
    draft(store, bob, ta)
    records = {r["email"]: r for r in review.roster_records(store.roster())}
    assert records["ada@example.org"]["steps"] == "1/6"
    assert records["ada@example.org"]["answers"] == 1
    assert records["ada@example.org"]["exported"] is True
    assert records["ada@example.org"]["feedback"] == "released"
    assert records["bob@example.org"]["exported"] is False
    assert records["bob@example.org"]["feedback"] == "draft"


def test_filter_roster_by_text_status_and_export_and_sort_missing_last(store, people):
    ada, bob, ta = people
    store.record_export(bob.id, "u9n1-lm-logits.zip", "b" * 64)
    release(store, ada, ta)
    records = review.roster_records(store.roster())
    assert [r["name"] for r in review.filter_roster(records, text="BABB")] == ["Bob Babbage"]
    assert [r["name"] for r in review.filter_roster(records, feedback=["released"])] == [
        "Ada Lovelace"
    ]
    assert [r["name"] for r in review.filter_roster(records, exported=False)] == ["Ada Lovelace"]
    by_export = review.filter_roster(records, sort_by="exported_at", descending=True)
    assert [r["name"] for r in by_export] == ["Bob Babbage", "Ada Lovelace"]
    with pytest.raises(review.ReviewError):
        review.filter_roster(records, sort_by="password")


def test_student_review_gathers_work_history_checklist_and_feedback(store, people):
    ada, _, ta = people
    store.save_answer(ada.id, "q1", "first try")
    store.save_answer(ada.id, "q1", HTML_TEXT)
    store.set_tutorial_path(ada.id, "tutorials")
    store.log_tutorial(ada.id, "1", title="Tensors", reflection=HTML_TEXT)
    draft(store, ada, ta)
    data = review.student_review(store, ada.id, model_name="smollm2-135m")
    assert data.answers["q1"].text == HTML_TEXT  # stored exactly as typed
    assert [r.text for r in data.answer_history["q1"]] == ["first try", HTML_TEXT]
    assert data.tutorial_log.entries["1"].reflection == HTML_TEXT
    assert data.feedback_status == "draft"
    assert "step_not_passing" in data.checklist.codes


def test_student_review_of_a_missing_or_staff_account_is_a_clear_error(store, people):
    _, _, ta = people
    with pytest.raises(review.ReviewError, match="does not exist"):
        review.student_review(store, 999, model_name="smollm2-135m")
    with pytest.raises(review.ReviewError, match="not a student"):
        review.student_review(store, ta.id, model_name="smollm2-135m")


def test_feedback_items_follow_the_chosen_path_and_cover_steps_and_questions():
    tutorial_ids = [item.id for item in review.feedback_items("tutorials")]
    assert tutorial_ids[:2] == ["tutorial1", "tutorial2"]
    assert [f"step{n}" for n in range(1, 7)] == [i for i in tutorial_ids if i.startswith("step")]
    assert tutorial_ids[-3:] == content.question_ids()
    project_ids = [item.id for item in review.feedback_items("project")]
    assert project_ids[0] == "project" and "tutorial1" not in project_ids


def test_worksheet_grades_export_released_feedback_only(store, people):
    ada, bob, ta = people
    release(store, ada, ta, comment="Good <work>", item_comments={"q1": "tokens!"})
    draft(store, bob, ta)
    grades = review.worksheet_grades(store)
    assert list(grades) == ["ada@example.org"]
    assert grades["ada@example.org"].label == "Excellent"
    assert "Good &lt;work&gt;" in grades["ada@example.org"].comment_html
    assert "tokens!" in grades["ada@example.org"].comment_html


def test_responses_csv_has_one_row_per_student_and_every_answer_as_text(store, people):
    ada, bob, ta = people
    store.save_answer(ada.id, "q2", HTML_TEXT)
    store.save_answer(ada.id, "q3", '=HYPERLINK("http://evil")')
    store.set_tutorial_path(ada.id, "tutorials")
    store.log_tutorial(ada.id, "2", title="Autograd", reflection="Learned backward()")
    release(store, ada, ta)
    data = review.responses_csv(store)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert [r["Email address"] for r in rows] == ["ada@example.org", "bob@example.org"]
    titles = {q.id: q.title for q in content.questions()}
    ada_row = rows[0]
    assert ada_row[titles["q2"]] == HTML_TEXT
    assert ada_row[titles["q3"]] == '\'=HYPERLINK("http://evil")'  # not run as a formula
    assert ada_row["Tutorial 2 reflection"] == "Learned backward()"
    assert ada_row["Released grade"] == "Excellent"
    assert rows[1]["Released grade"] == "" and rows[1]["Feedback status"] == "none"


def test_snippets_are_saved_for_every_ta_and_empty_ones_refused(store, people):
    _, _, ta = people
    review.add_snippet(store, "Mention tokens, not words.", ta.id)
    assert [s.text for s in store.snippets()] == ["Mention tokens, not words."]
    with pytest.raises(review.ReviewError, match="Write the snippet"):
        review.add_snippet(store, "   ", ta.id)

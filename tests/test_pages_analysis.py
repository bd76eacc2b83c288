"""The Analysis page: renders, autosaves answers, shows them again, hints and history."""

from __future__ import annotations

from app_support import open_app
from streamlit.testing.v1 import AppTest

from db import Store
from workbook.exercise import content

PAGE = "pages/analysis.py"


def open_page(student_id: int) -> AppTest:
    return open_app(student_id, PAGE)


def answer_area(at: AppTest, question_id: str):
    return at.text_area(key=f"analysis:{question_id}")


def saved_answers(db_path, student_id):
    with Store(db_path, question_ids=content.question_ids()) as store:
        return {qid: rev.text for qid, rev in store.answers_for(student_id).items()}


def test_page_renders_every_question_without_exception(student_id):
    at = open_page(student_id)
    assert not at.exception
    titles = [h.value for h in at.subheader]
    assert titles == [q.title for q in content.questions()]


def test_typed_answer_is_saved_and_shown_in_a_new_session(db_path, student_id):
    at = open_page(student_id)
    answer_area(at, "q1").input("The shape is batch, tokens and vocabulary size.").run()
    assert not at.exception
    assert saved_answers(db_path, student_id)["q1"].startswith("The shape is batch")

    again = open_page(student_id)
    assert answer_area(again, "q1").value == "The shape is batch, tokens and vocabulary size."


def test_q1_in_words_shows_the_tokens_hint_live(student_id):
    at = open_page(student_id)
    answer_area(at, "q1").input("One phrase, the number of words, the vocabulary.").run()
    assert any("words" in w.value and "model never sees" in w.value for w in at.warning)


def test_q3_greedy_only_shows_a_hint_and_word_count(student_id):
    at = open_page(student_id)
    answer_area(at, "q3").input("Always take the argmax and repeat.").run()
    assert any("most likely token" in w.value for w in at.warning)
    assert any(c.value == "6 words" for c in at.caption)


def test_edit_from_another_tab_is_announced_and_can_be_loaded(db_path, student_id):
    tab_a = open_page(student_id)
    answer_area(tab_a, "q2").input("tab A text").run()
    tab_b = open_page(student_id)
    answer_area(tab_b, "q2").input("tab B text").run()

    tab_a.run()  # tab A redraws (e.g. the student clicks anything)
    assert any("another tab" in i.value for i in tab_a.info)
    assert answer_area(tab_a, "q2").value == "tab A text"  # nothing replaced silently
    tab_a.button(key="analysis:q2:load_newer").click().run()
    assert answer_area(tab_a, "q2").value == "tab B text"


def test_later_save_wins_and_earlier_stays_restorable(db_path, student_id):
    at = open_page(student_id)
    answer_area(at, "q2").input("first").run()
    answer_area(at, "q2").input("second").run()
    assert saved_answers(db_path, student_id)["q2"] == "second"
    restore = [b for b in at.button if b.key and b.key.startswith("analysis:q2:restore:")]
    assert len(restore) == 1
    restore[0].click().run()
    assert answer_area(at, "q2").value == "first"
    assert saved_answers(db_path, student_id)["q2"] == "first"
    with Store(db_path, question_ids=content.question_ids()) as store:
        assert [r.text for r in store.answer_history(student_id, "q2")] == [
            "first",
            "second",
            "first",
        ]

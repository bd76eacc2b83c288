"""The TA review page through Streamlit's AppTest: access, roster, review, feedback, export."""

from __future__ import annotations

import time

import pytest
from app_support import APP, ROOT, open_store
from streamlit.testing.v1 import AppTest

from workbook import review
from workbook.exercise import content

PAGE = "pages/review.py"
PASSWORD = "long enough password"
HTML_TEXT = '<img src=x onerror="alert(1)"><script>alert("pwned")</script>'


@pytest.fixture
def people(db_path):
    with open_store(db_path) as store:
        ada = store.create_user("ada@example.org", "Ada Lovelace", PASSWORD)
        bob = store.create_user("bob@example.org", "Bob Babbage", PASSWORD)
        ta = store.create_user("ta@example.org", "Tess TA", PASSWORD, role="ta")
        store.save_answer(ada.id, "q1", HTML_TEXT)
        store.set_tutorial_path(ada.id, "tutorials")
        store.log_tutorial(ada.id, "1", title="Tensors", reflection=HTML_TEXT)
        store.save_cell(
            ada.id,
            "step1",
            code="batch = tokenizer(phrase)  # secret-marker",
            outputs=[{"output_type": "stream", "name": "stdout", "text": "printed-marker\n"}],
            passed=True,
            message="Check passed.",
        )
    return ada, bob, ta


def signed_in(user_id: int) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["auth:user_id"] = user_id
    at.session_state["auth:last_active"] = time.time()
    at.run()
    return at


def open_review(user_id: int) -> AppTest:
    return signed_in(user_id).switch_page(PAGE).run()


def open_student(at: AppTest, student_id: int) -> AppTest:
    at.selectbox(key="review:roster:open").set_value(student_id).run()
    return at.button(key="review:roster:open_button").click().run()


def all_text(at: AppTest) -> str:
    """Every element the page sent to the browser, as text (protos include all fields)."""
    parts: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def test_student_opening_the_review_page_is_refused_and_sees_no_ta_data(people):
    ada, bob, _ = people
    # The page hands over to app.py unless app.py has run in this process (a fresh server):
    # here it has, so the page itself runs, as a typed URL would make it.
    AppTest.from_file(APP, default_timeout=30).run()
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=30)
    at.session_state["auth:user_id"] = ada.id
    at.session_state["auth:last_active"] = time.time()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This page is for course staff only."]
    sent = all_text(at)
    assert "bob@example.org" not in sent and "Bob Babbage" not in sent
    assert not at.dataframe


def _hidden_stand_ins(at: AppTest) -> dict[str, str]:
    """url path -> title of the pages registered without a script (the stand-ins)."""
    return {
        info["url_pathname"]: info["page_name"]
        for info in at._registered_pages.values()
        if not info.get("script_path")
    }


def test_staff_and_student_urls_have_stand_ins_saying_who_the_page_is_for(people):
    # A stand-in answers at the URL of a page this user may not open, so a typed or shared
    # link says who the page is for instead of Streamlit's "Page not found" (the browser
    # test opens one); it is never in the sidebar.
    ada, _, ta = people
    student_urls = {"tutorials", "notebook", "analysis", "submit"}
    assert _hidden_stand_ins(signed_in(ada.id)) == {"review": "TA review", "class_view": "Class"}
    assert set(_hidden_stand_ins(signed_in(ta.id))) == student_urls
    visitor = AppTest.from_file(APP, default_timeout=30).run()
    assert set(_hidden_stand_ins(visitor)) == student_urls | {"review", "class_view"}


def test_students_do_not_get_the_review_page_in_their_navigation(people):
    ada, _, ta = people
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        signed_in(ada.id).switch_page(PAGE)
    staff = signed_in(ta.id).switch_page(PAGE).run()
    assert [t.value for t in staff.title] == ["TA review"]


def test_signed_out_visitor_is_asked_to_sign_in(people):
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=30).run()
    assert any("sign in" in w.value.lower() for w in at.warning)
    assert not at.dataframe


def test_roster_lists_every_student_with_progress(people):
    _, _, ta = people
    at = open_review(ta.id)
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Email"]) == ["ada@example.org", "bob@example.org"]
    ada_row = table[table["Email"] == "ada@example.org"].iloc[0]
    assert ada_row["Steps (of 6)"] == "1/6"
    assert ada_row["Reflections (of 2)"] == 1
    assert ada_row["Answers (of 3)"] == 1
    assert ada_row["Feedback"] == "none"
    assert "Bob Babbage" in all_text(at)  # the helper the refusal test relies on sees data


def test_roster_filter_by_text_narrows_the_table(people):
    _, _, ta = people
    at = open_review(ta.id)
    at.text_input(key="review:filter:text").input("babb").run()
    assert list(at.dataframe[0].value["Name"]) == ["Bob Babbage"]


def test_review_shows_student_text_as_text_never_as_html(people):
    ada, _, ta = people
    at = open_student(open_review(ta.id), ada.id)
    assert not at.exception
    texts = [t.value for t in at.text]
    assert texts.count(HTML_TEXT) >= 2  # the Q1 answer and the tutorial reflection
    for element in (*at.markdown, *at.caption):
        assert "onerror" not in element.value and "<script>" not in element.value
    codes = [c.value for c in at.code]
    assert any("secret-marker" in c for c in codes)
    assert any("printed-marker" in c for c in codes)


def test_feedback_autosaves_as_a_draft_then_release_shows_it_to_the_student(db_path, people):
    ada, _, ta = people
    at = open_student(open_review(ta.id), ada.id)
    at.selectbox(key=f"review:{ada.id}:grade").set_value("Meets expectations").run()
    at.text_area(key=f"review:{ada.id}:comment").input("Clear answers; say tokens.").run()
    at.text_area(key=f"review:{ada.id}:item:q1").input("Tokens, not words.").run()
    assert not at.exception
    with open_store(db_path) as store:
        saved = store.feedback_for(ada.id)
        assert saved.released is False
        assert review.grade_label(saved.grade) == "Meets expectations"
        assert saved.comment == "Clear answers; say tokens."
        assert saved.item_comments == {"q1": "Tokens, not words."}

    home = signed_in(ada.id)
    assert "Clear answers" not in [t.value for t in home.text]

    at.button(key=f"review:{ada.id}:release").click().run()
    assert not at.exception
    with open_store(db_path) as store:
        assert store.released_feedback_for(ada.id).comment == "Clear answers; say tokens."
    home = signed_in(ada.id)
    assert "Clear answers; say tokens." in [t.value for t in home.text]
    shown = [m.value for m in home.markdown]
    assert "**Grade:** Meets expectations" in shown
    assert f"**{content.question('q1').title}**" in shown


def test_release_without_grade_shows_an_error_and_releases_nothing(db_path, people):
    ada, _, ta = people
    at = open_student(open_review(ta.id), ada.id)
    at.button(key=f"review:{ada.id}:release").click().run()
    assert any("Choose a grade" in e.value for e in at.error)
    with open_store(db_path) as store:
        assert all(not f.released for f in store.feedback_history(ada.id))


def test_snippet_can_be_saved_and_inserted_into_the_comment(db_path, people):
    ada, _, ta = people
    at = open_student(open_review(ta.id), ada.id)
    comment_key = f"review:{ada.id}:comment"
    at.text_area(key=f"{comment_key}:new_snippet").input("Mention tokens.").run()
    at.button(key=f"{comment_key}:new_snippet:save").click().run()
    at.button(key=f"{comment_key}:snippet:insert").click().run()
    assert at.text_area(key=comment_key).value == "Mention tokens."
    with open_store(db_path) as store:
        assert store.feedback_for(ada.id).comment == "Mention tokens."


def test_a_snippet_that_cannot_be_saved_says_why_and_keeps_the_comment(db_path, people):
    from db.validation import MAX_TEXT

    ada, _, ta = people
    at = open_student(open_review(ta.id), ada.id)
    comment_key = f"review:{ada.id}:comment"
    typed = ("Careful work. " * MAX_TEXT)[: MAX_TEXT - 5]  # just under the limit: saved
    at.text_area(key=comment_key).input(typed).run()
    at.text_area(key=f"{comment_key}:new_snippet").input("Mention tokens.").run()
    at.button(key=f"{comment_key}:new_snippet:save").click().run()
    at.button(key=f"{comment_key}:snippet:insert").click().run()  # now over the limit

    assert not at.exception
    assert any(e.value.startswith("Not saved:") for e in at.error)
    assert at.text_area(key=comment_key).value == typed.rstrip("\n") + "\n\nMention tokens."
    with open_store(db_path) as store:
        assert store.feedback_for(ada.id).comment == typed  # the last text that fitted


def test_export_view_offers_worksheet_and_responses_downloads(people):
    _, _, ta = people
    at = open_review(ta.id)
    at.radio(key="review:view").set_value("Export for Moodle").run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download a new worksheet", "Download responses CSV"]

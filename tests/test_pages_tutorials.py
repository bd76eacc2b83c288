"""The Tutorial log page: renders, saves every field, shows it again, enforces the rules."""

from __future__ import annotations

import datetime as dt

from app_support import open_app
from streamlit.testing.v1 import AppTest

from db import Store
from tests.test_quality import SPECIFIC
from workbook.exercise import content
from workbook.tutorials.catalog import load_catalog

PAGE = "pages/tutorials.py"


def open_page(student_id: int) -> AppTest:
    return open_app(student_id, PAGE)


def saved_log(db_path, student_id):
    with Store(db_path, question_ids=content.question_ids()) as store:
        return store.tutorial_log(student_id)


def choose_path(at: AppTest, path: str) -> AppTest:
    at.radio(key="tut:path").set_value(path).run()
    assert not at.exception
    return at


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_page_renders_and_asks_for_a_path(student_id):
    at = open_page(student_id)
    assert not at.exception
    assert at.radio(key="tut:path").value is None
    assert "Recipes" in markdown_text(at)  # the course's advice per section is on the page


def test_choosing_a_catalog_tutorial_and_writing_persists_across_sessions(db_path, student_id):
    at = choose_path(open_page(student_id), "tutorials")
    at.text_input(key="tut1:search").input("TensorBoard").run()
    picked = at.selectbox(key="tut1:result").value
    assert "tensorboard" in f"{picked.title} {picked.description}".lower()
    at.button(key="tut1:choose").click().run()
    at.text_input(key="tut1:minutes").input("1h 30").run()
    at.date_input(key="tut1:dates:first").set_value(dt.date(2026, 11, 20)).run()
    # Each end is saved on its own, the moment it is chosen.
    assert saved_log(db_path, student_id).entries["1"].dates == ("2026-11-20",)
    at.date_input(key="tut1:dates:last").set_value(dt.date(2026, 11, 22)).run()
    at.text_area(key="tut1:notes").input("remember add_scalar").run()
    at.text_area(key="tut1:reflection").input(SPECIFIC).run()
    assert not at.exception

    entry = saved_log(db_path, student_id).entries["1"]
    assert (entry.title, entry.url, entry.category, entry.from_catalog) == (
        picked.title,
        picked.url,
        picked.category,
        True,
    )
    assert entry.minutes == 90
    assert entry.dates == ("2026-11-20", "2026-11-22")
    assert entry.notes == "remember add_scalar"
    assert entry.reflection == SPECIFIC

    again = open_page(student_id)
    assert again.radio(key="tut:path").value == "tutorials"
    assert again.text_area(key="tut1:reflection").value == SPECIFIC
    assert again.text_area(key="tut1:notes").value == "remember add_scalar"
    assert again.text_input(key="tut1:minutes").value == "90"
    assert again.date_input(key="tut1:dates:first").value == dt.date(2026, 11, 20)
    assert again.date_input(key="tut1:dates:last").value == dt.date(2026, 11, 22)
    assert picked.title in markdown_text(again)


def test_resource_not_in_the_catalog_is_saved_with_its_section(db_path, student_id):
    at = choose_path(open_page(student_id), "tutorials")
    at.radio(key="tut2:source").set_value("custom").run()
    at.text_input(key="tut2:title").input("My own find").run()
    at.text_input(key="tut2:url").input("https://example.org/tutorial").run()
    at.selectbox(key="tut2:category").set_value("Audio").run()
    assert not at.exception
    entry = saved_log(db_path, student_id).entries["2"]
    assert (entry.title, entry.url, entry.category, entry.from_catalog) == (
        "My own find",
        "https://example.org/tutorial",
        "Audio",
        False,
    )


def test_a_bad_link_is_explained_and_the_typed_text_stays(db_path, student_id):
    at = choose_path(open_page(student_id), "tutorials")
    at.radio(key="tut2:source").set_value("custom").run()
    at.text_input(key="tut2:url").input("example.org/tutorial").run()
    assert any("http" in e.value for e in at.error)
    assert at.text_input(key="tut2:url").value == "example.org/tutorial"


def test_minutes_that_are_not_a_time_get_a_friendly_message(student_id):
    at = choose_path(open_page(student_id), "tutorials")
    at.text_input(key="tut1:minutes").input("an hour or so").run()
    assert any("not a time" in e.value for e in at.error)


def test_two_tutorials_from_one_section_are_refused_on_the_page(db_path, student_id):
    recipes = load_catalog().in_category("PyTorch Recipes")[:2]
    with Store(db_path, question_ids=content.question_ids()) as store:
        store.set_tutorial_path(student_id, "tutorials")
        for slot, tutorial in zip(("1", "2"), recipes, strict=True):
            store.log_tutorial(
                student_id,
                slot,
                category=tutorial.category,
                title=tutorial.title,
                url=tutorial.url,
                from_catalog=True,
            )
    at = open_page(student_id)
    assert "Both resources are from 'PyTorch Recipes'" in markdown_text(at)


def test_youtube_choice_reminds_to_type_the_code(db_path, student_id):
    youtube = next(t for t in load_catalog().tutorials if t.youtube)
    with Store(db_path, question_ids=content.question_ids()) as store:
        store.set_tutorial_path(student_id, "tutorials")
        store.log_tutorial(
            student_id, "1", category=youtube.category, title=youtube.title, url=youtube.url
        )
    at = open_page(student_id)
    assert any("type the code out" in i.value for i in at.info)


def test_short_reflection_shows_word_count_and_hint(student_id):
    at = choose_path(open_page(student_id), "tutorials")
    at.text_area(key="tut1:reflection").input("It was nice.").run()
    assert any(c.value.startswith("3 words") for c in at.caption)
    assert any("Name the concrete concepts" in w.value for w in at.warning)


def test_project_path_saves_description_link_and_reflection(db_path, student_id):
    at = choose_path(open_page(student_id), "project")
    at.text_area(key="project:description").input("A CNN for CIFAR-10, 71% accuracy").run()
    at.text_input(key="project:link").input("https://github.com/ada/cnn").run()
    at.text_area(key="project:reflection").input(SPECIFIC).run()
    assert not at.exception
    log = saved_log(db_path, student_id)
    assert log.path == "project"
    assert (log.project.description, log.project.link, log.project.reflection) == (
        "A CNN for CIFAR-10, 71% accuracy",
        "https://github.com/ada/cnn",
        SPECIFIC,
    )
    again = open_page(student_id)
    assert again.text_input(key="project:link").value == "https://github.com/ada/cnn"
    assert "This part is complete." in [s.value for s in again.success]


def test_edit_from_another_tab_is_announced_not_dropped(db_path, student_id):
    tab_a = choose_path(open_page(student_id), "tutorials")
    tab_a.text_area(key="tut1:reflection").input("tab A").run()
    tab_b = open_page(student_id)
    tab_b.text_area(key="tut1:reflection").input("tab B").run()
    tab_a.run()
    assert any("another tab" in i.value for i in tab_a.info)
    assert tab_a.text_area(key="tut1:reflection").value == "tab A"
    with Store(db_path, question_ids=content.question_ids()) as store:
        history = [e.reflection for e in store.tutorial_history(student_id, "1")]
    assert history[-2:] == ["tab A", "tab B"]


def test_card_of_unknown_section_needs_the_student_to_name_the_section(db_path, student_id):
    at = choose_path(open_page(student_id), "tutorials")
    at.text_input(key="tut1:search").input("Classifying Names").run()
    assert at.selectbox(key="tut1:result").value.category == "Other"
    assert at.button(key="tut1:choose").disabled
    at.selectbox(key="tut1:other_section").set_value("Text").run()
    at.button(key="tut1:choose").click().run()
    entry = saved_log(db_path, student_id).entries["1"]
    assert entry.category == "Text"
    assert any("Hugging Face" in i.value for i in at.info)  # the course's caution for Text


def test_a_last_day_before_the_first_is_refused_with_a_message(db_path, student_id):
    at = choose_path(open_page(student_id), "tutorials")
    at.text_input(key="tut1:search").input("TensorBoard").run()
    at.button(key="tut1:choose").click().run()
    # A fresh entry has no dates yet (not today's by default).
    assert at.date_input(key="tut1:dates:first").value is None
    at.date_input(key="tut1:dates:first").set_value(dt.date(2026, 11, 22)).run()
    at.date_input(key="tut1:dates:last").set_value(dt.date(2026, 11, 20)).run()
    assert any("last day is before the first" in e.value for e in at.error)
    assert saved_log(db_path, student_id).entries["1"].dates == ("2026-11-22",)

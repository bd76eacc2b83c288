"""Tutorial-log rules and field-by-field saving."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.test_quality import SPECIFIC
from workbook.tutorials.catalog import INTRO_CATEGORY, load_catalog
from workbook.tutorials.rules import (
    TutorialLogError,
    check_log,
    effective_category,
    is_complete,
    parse_minutes,
    set_path,
    update_entry,
    update_project,
)

CATEGORIES = load_catalog().categories


def entry(slot="1", **fields):
    values = dict(
        slot=slot,
        category="PyTorch Recipes",
        title="Saving and loading models",
        url="https://pytorch.org/tutorials/recipes/a.html",
        dates=("2026-11-20",),
        minutes=60,
        notes="",
        reflection=SPECIFIC,
    )
    values.update(fields)
    return SimpleNamespace(**values)


def log(*entries, path="tutorials", project=None):
    return SimpleNamespace(path=path, entries={e.slot: e for e in entries}, project=project)


def codes(issues, level=None):
    return {i.code for i in issues if level is None or i.level == level}


@pytest.fixture
def student(store):
    return store.create_user("ada@example.org", "Ada", "long enough password")


def test_no_path_chosen_asks_to_choose():
    assert codes(check_log(log(path=None))) == {"path_missing"}


def test_two_good_entries_from_different_sections_are_complete():
    good = log(entry("1"), entry("2", category="Image and Video", url="https://e.org/iv"))
    assert codes(check_log(good, CATEGORIES), "error") == set()
    assert is_complete(good, CATEGORIES)


def test_missing_second_entry_is_an_error():
    issues = check_log(log(entry("1")))
    assert ("entry_missing", "2") in {(i.code, i.slot) for i in issues}


def test_two_entries_from_one_section_are_refused_with_the_section_named():
    issues = check_log(log(entry("1"), entry("2", title="Another recipe")))
    same = [i for i in issues if i.code == "same_category"]
    assert same and same[0].level == "error"
    assert "PyTorch Recipes" in same[0].message


def test_intro_section_twice_explains_it_counts_as_one_resource():
    issues = check_log(
        log(entry("1", category=INTRO_CATEGORY), entry("2", category=INTRO_CATEGORY))
    )
    same = [i for i in issues if i.code == "same_category"]
    assert same and "one resource" in same[0].message
    assert "intro_whole_category" in codes(issues, "tip")


def test_youtube_series_counts_as_its_own_section_and_reminds_to_type_code():
    youtube = entry(
        "2",
        category=INTRO_CATEGORY,
        title="Introduction to PyTorch on YouTube",
        url="https://pytorch.org/tutorials/beginner/introyt/introyt_index.html",
    )
    issues = check_log(log(entry("1", category=INTRO_CATEGORY), youtube), CATEGORIES)
    assert "same_category" not in codes(issues)
    assert "youtube_type_code" in codes(issues, "tip")
    assert effective_category(youtube.category, youtube.title, youtube.url) != INTRO_CATEGORY


def test_missing_reflection_is_an_error_and_vague_one_a_warning():
    issues = check_log(
        log(entry("1", reflection=""), entry("2", category="Audio", reflection="Nice."))
    )
    assert ("reflection_missing", "1", "error") in {(i.code, i.slot, i.level) for i in issues}
    assert {"reflection_short", "reflection_vague"} <= codes(issues, "warning")


def test_other_or_unknown_section_must_be_picked_from_the_menu():
    issues = check_log(
        log(entry("1", category="Other"), entry("2", category="Made up")), CATEGORIES
    )
    assert {"category_missing", "category_unknown"} <= codes(issues, "error")


def test_text_section_carries_the_courses_caution():
    assert "category_caution" in codes(check_log(log(entry("1", category="Text"))), "tip")


def test_errors_come_before_warnings_and_tips():
    levels = [i.level for i in check_log(log(entry("1", category=INTRO_CATEGORY, reflection="")))]
    assert levels == sorted(levels, key=["error", "warning", "tip"].index)


def test_project_needs_description_link_or_notebook_and_reflection():
    empty = SimpleNamespace(description="", link="", notebook_name=None, reflection="")
    issues = check_log(log(path="project", project=empty))
    assert {"project_description_missing", "project_link_missing", "reflection_missing"} <= codes(
        issues, "error"
    )
    done = SimpleNamespace(
        description="A CNN on CIFAR-10", link="", notebook_name="cnn.ipynb", reflection=SPECIFIC
    )
    assert is_complete(log(path="project", project=done))


def test_project_path_ignores_tutorial_entries():
    assert codes(check_log(log(path="project"))) == {"project_missing"}


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [
        ("90", 90),
        ("1h 30", 90),
        ("1:30", 90),
        ("2h", 120),
        ("45 min", 45),
        ("", None),
        (None, None),
    ],
)
def test_parse_minutes_understands_common_forms(raw, minutes):
    assert parse_minutes(raw) == minutes


@pytest.mark.parametrize("raw", ["an hour", "-5"])
def test_parse_minutes_refuses_nonsense_with_a_hint(raw):
    with pytest.raises(ValueError, match="(not a time|negative)"):
        parse_minutes(raw)


def test_update_entry_keeps_fields_saved_from_another_tab(store, student):
    update_entry(store, student.id, "1", title="Learn the Basics")
    # Another tab saves the reflection; this tab then saves the notes.
    update_entry(store, student.id, "1", reflection="From tab B")
    update_entry(store, student.id, "1", notes="From tab A")
    latest = store.tutorial_log(student.id).entries["1"]
    assert (latest.title, latest.reflection, latest.notes) == (
        "Learn the Basics",
        "From tab B",
        "From tab A",
    )


def test_same_field_from_two_tabs_later_wins_and_earlier_stays_in_history(store, student):
    update_entry(store, student.id, "2", reflection="first tab")
    update_entry(store, student.id, "2", reflection="second tab")
    assert store.tutorial_log(student.id).entries["2"].reflection == "second tab"
    history = [e.reflection for e in store.tutorial_history(student.id, "2")]
    assert history == ["first tab", "second tab"]


def test_update_entry_refusal_is_a_friendly_tutorial_log_error(store, student):
    with pytest.raises(TutorialLogError, match="http"):
        update_entry(store, student.id, "1", url="pytorch.org")
    assert "1" not in store.tutorial_log(student.id).entries


def test_update_project_keeps_the_uploaded_notebook_when_text_changes(store, student):
    update_project(store, student.id, notebook_name="cnn.ipynb", notebook_bytes=b"{}")
    update_project(store, student.id, description="A small CNN")
    project = store.tutorial_log(student.id).project
    assert (project.description, project.notebook_name, project.notebook_bytes) == (
        "A small CNN",
        "cnn.ipynb",
        b"{}",
    )


def test_switching_path_keeps_the_other_paths_entries(store, student):
    set_path(store, student.id, "tutorials")
    update_entry(store, student.id, "1", title="Kept")
    set_path(store, student.id, "project")
    set_path(store, student.id, "tutorials")
    tutorial_log = store.tutorial_log(student.id)
    assert tutorial_log.path == "tutorials"
    assert tutorial_log.entries["1"].title == "Kept"


def test_set_path_refuses_an_unknown_path(store, student):
    with pytest.raises(TutorialLogError):
        set_path(store, student.id, "both")

"""Tutorial log: the chosen path, two tutorial entries with history, the mini-project."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from db_fixtures import make_student

from db import NotFoundError, ValidationError

ENTRY = {
    "category": "Learning PyTorch",
    "title": "Learn the Basics",
    "url": "https://pytorch.org/tutorials/beginner/basics/intro.html",
    "from_catalog": True,
    "dates": [date(2026, 11, 2), "2026-11-03"],
    "minutes": 95,
    "notes": "tensors, autograd",
    "reflection": "I learned how autograd records operations.",
}


def test_log_tutorial_round_trips_every_field(fresh_db):
    student = make_student(fresh_db)
    entry = fresh_db.log_tutorial(student.id, "1", **ENTRY)
    assert entry.slot == "1"
    assert entry.dates == ("2026-11-02", "2026-11-03")
    assert (entry.category, entry.title, entry.url) == (
        ENTRY["category"],
        ENTRY["title"],
        ENTRY["url"],
    )
    assert (entry.from_catalog, entry.minutes, entry.notes, entry.reflection) == (
        True,
        95,
        ENTRY["notes"],
        ENTRY["reflection"],
    )
    log = fresh_db.tutorial_log(student.id)
    assert log.entries == {"1": entry}
    assert log.path is None and log.project is None


def test_tutorial_history_keeps_every_reflection(fresh_db):
    student = make_student(fresh_db)
    for reflection in ("draft", "better draft", "final"):
        fresh_db.log_tutorial(student.id, "2", **{**ENTRY, "reflection": reflection})
    fresh_db.log_tutorial(student.id, "2", **{**ENTRY, "reflection": "final"})  # no change
    history = fresh_db.tutorial_history(student.id, "2")
    assert [e.reflection for e in history] == ["draft", "better draft", "final"]
    assert fresh_db.tutorial_log(student.id).entries["2"].reflection == "final"


def test_partial_entries_are_saved(fresh_db):
    student = make_student(fresh_db)
    entry = fresh_db.log_tutorial(student.id, "1", title="Not in the catalog", from_catalog=False)
    assert entry.url == "" and entry.dates == () and entry.minutes is None


def test_tutorial_path_is_recorded_and_other_path_kept(fresh_db):
    student = make_student(fresh_db)
    fresh_db.log_tutorial(student.id, "1", **ENTRY)
    fresh_db.set_tutorial_path(student.id, "project")
    fresh_db.log_project(student.id, description="MNIST MLP", reflection="It worked.")
    log = fresh_db.tutorial_log(student.id)
    assert log.path == "project"
    assert log.entries["1"].title == ENTRY["title"]
    assert log.project is not None and log.project.description == "MNIST MLP"
    fresh_db.set_tutorial_path(student.id, "tutorials")
    assert fresh_db.tutorial_log(student.id).path == "tutorials"


def test_project_notebook_upload_is_kept_when_text_is_autosaved(fresh_db):
    student = make_student(fresh_db)
    notebook = b'{"cells": [], "nbformat": 4}'
    first = fresh_db.log_project(
        student.id,
        description="classifier",
        notebook_name="mine.ipynb",
        notebook_bytes=notebook,
    )
    assert first.notebook_sha256 == hashlib.sha256(notebook).hexdigest()
    second = fresh_db.log_project(student.id, description="classifier", reflection="more text")
    assert second.id != first.id
    assert (second.notebook_name, second.notebook_bytes) == ("mine.ipynb", notebook)
    removed = fresh_db.log_project(
        student.id, description="classifier", reflection="more text", notebook_bytes=b""
    )
    assert removed.notebook_bytes is None and removed.notebook_name is None
    history = fresh_db.project_history(student.id)
    assert [p.notebook_bytes for p in history] == [notebook, notebook, None]


def test_identical_project_save_adds_no_revision(fresh_db):
    student = make_student(fresh_db)
    a = fresh_db.log_project(student.id, description="x", link="https://example.org/nb")
    b = fresh_db.log_project(student.id, description="x", link="https://example.org/nb")
    assert a == b and len(fresh_db.project_history(student.id)) == 1


@pytest.mark.parametrize(
    "change, field",
    [
        ({"reflection": "r" * 20_001}, "reflection"),
        ({"notes": "n" * 20_001}, "notes"),
        ({"title": "t" * 201}, "title"),
        ({"category": "c" * 201}, "category"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://" + "u" * 2_000}, "url"),
        ({"minutes": -5}, "minutes"),
        ({"minutes": "ninety"}, "minutes"),
        ({"minutes": 100_001}, "minutes"),
        ({"dates": ["yesterday"]}, "dates"),
        ({"dates": ["2026-02-30"]}, "dates"),
    ],
)
def test_bad_tutorial_fields_are_refused_naming_the_field(fresh_db, change, field):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.log_tutorial(student.id, "1", **{**ENTRY, **change})
    assert caught.value.field == field
    assert fresh_db.tutorial_history(student.id, "1") == []


def test_reflection_of_exactly_20000_characters_is_accepted(fresh_db):
    student = make_student(fresh_db)
    entry = fresh_db.log_tutorial(student.id, "1", reflection="é" * 20_000)
    assert len(entry.reflection) == 20_000


@pytest.mark.parametrize("slot", ["3", "0", 1, ""])
def test_unknown_slot_is_refused(fresh_db, slot):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.log_tutorial(student.id, slot, **ENTRY)
    assert caught.value.field == "slot"


def test_unknown_path_is_refused(fresh_db):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.set_tutorial_path(student.id, "both")
    assert caught.value.field == "path"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"description": "d" * 20_001}, "description"),
        ({"reflection": "r" * 20_001}, "reflection"),
        ({"link": "ftp://example.org/x"}, "link"),
        ({"notebook_name": "n" * 201, "notebook_bytes": b"{}"}, "notebook_name"),
        ({"notebook_bytes": "not bytes"}, "notebook_bytes"),
        ({"notebook_bytes": b"x" * (20 * 1024 * 1024 + 1)}, "notebook_bytes"),
    ],
)
def test_bad_project_fields_are_refused(fresh_db, change, field):
    student = make_student(fresh_db)
    with pytest.raises(ValidationError) as caught:
        fresh_db.log_project(student.id, **change)
    assert caught.value.field == field
    assert fresh_db.project_history(student.id) == []


def test_tutorial_log_for_unknown_user_is_refused(fresh_db):
    with pytest.raises(NotFoundError):
        fresh_db.log_tutorial(999, "1", **ENTRY)

"""Accounts: creation, passwords, sign-in attempts, archive and the refusal to delete work."""

from __future__ import annotations

import sqlite3

import pytest
from db_fixtures import PASSWORD, make_student, make_ta

from db import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)


def test_create_user_returns_frozen_user_with_lowercased_email(fresh_db):
    user = fresh_db.create_user("  Ada.Lovelace@Example.ORG ", "Ada", PASSWORD, role="ta")
    assert user.email == "ada.lovelace@example.org"
    assert (user.name, user.role, user.archived, user.last_seen_at) == ("Ada", "ta", False, None)
    assert fresh_db.user(user.id) == user
    with pytest.raises(AttributeError):
        user.name = "Eve"  # type: ignore[misc]


def test_email_is_unique_case_insensitively(fresh_db):
    fresh_db.create_user("ada@example.org", "Ada", PASSWORD)
    with pytest.raises(ConflictError, match="already exists"):
        fresh_db.create_user("ADA@example.org", "Another Ada", PASSWORD)
    assert fresh_db.user_by_email("Ada@Example.org").name == "Ada"


def test_password_is_stored_as_salted_argon2id_hash(store):
    first = make_student(store, 1)
    make_student(store, 2)  # same password
    conn = sqlite3.connect(store.path)
    hashes = [row[0] for row in conn.execute("SELECT password_hash FROM users ORDER BY id")]
    conn.close()
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert all(PASSWORD not in h for h in hashes)
    assert hashes[0] != hashes[1], "same password must hash differently (salt)"
    assert first.id == 1


def test_authenticate_accepts_the_right_password_and_updates_last_seen(fresh_db):
    user = make_student(fresh_db)
    signed_in = fresh_db.authenticate("STUDENT1@example.org", PASSWORD)
    assert signed_in.id == user.id
    assert signed_in.last_seen_at is not None


@pytest.mark.parametrize(
    "email, password",
    [("student1@example.org", "wrong password"), ("nobody@example.org", PASSWORD)],
)
def test_authenticate_refuses_wrong_password_or_unknown_email(fresh_db, email, password):
    make_student(fresh_db)
    with pytest.raises(AuthenticationError, match="wrong email or password"):
        fresh_db.authenticate(email, password)


def test_failed_logins_are_counted_per_email_within_the_window(fresh_db):
    make_student(fresh_db)
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            fresh_db.authenticate("student1@example.org", "nope-nope")
    fresh_db.authenticate("student1@example.org", PASSWORD)
    assert fresh_db.failed_logins_since("Student1@example.org", 60) == 3
    assert fresh_db.failed_logins_since("other@example.org", 60) == 0
    assert fresh_db.failed_logins_since("student1@example.org", 0) == 0


def test_archived_user_cannot_sign_in_and_is_hidden_from_lists(fresh_db):
    instructor = fresh_db.create_user("prof@example.org", "Prof", PASSWORD, role="instructor")
    student = make_student(fresh_db)
    assert fresh_db.archive_user(student.id, by=instructor.id).archived
    with pytest.raises(AuthenticationError):
        fresh_db.authenticate(student.email, PASSWORD)
    assert student.id not in [u.id for u in fresh_db.list_users()]
    assert student.id in [u.id for u in fresh_db.list_users(include_archived=True)]
    assert not fresh_db.archive_user(student.id, archived=False).archived
    assert fresh_db.authenticate(student.email, PASSWORD).id == student.id


def test_only_an_instructor_may_archive(fresh_db):
    ta = make_ta(fresh_db)
    student = make_student(fresh_db)
    with pytest.raises(PermissionDeniedError):
        fresh_db.archive_user(student.id, by=ta.id)
    assert not fresh_db.user(student.id).archived


def test_delete_user_is_refused_while_they_have_work(fresh_db):
    student = make_student(fresh_db)
    fresh_db.save_answer(student.id, "q1", "")
    with pytest.raises(ConflictError, match="archive"):
        fresh_db.delete_user(student.id)
    assert fresh_db.answer(student.id, "q1").text == ""


def test_delete_user_without_work_removes_the_account(fresh_db):
    student = make_student(fresh_db)
    fresh_db.delete_user(student.id)
    with pytest.raises(NotFoundError):
        fresh_db.user(student.id)
    with pytest.raises(NotFoundError):
        fresh_db.delete_user(student.id)


def test_delete_grader_with_feedback_is_refused(fresh_db):
    student, ta = make_student(fresh_db), make_ta(fresh_db)
    fresh_db.save_feedback(student.id, ta.id, grade=5, comment="ok")
    with pytest.raises(ConflictError):
        fresh_db.delete_user(ta.id)


def test_list_users_filters_by_role_and_sorts_by_name(fresh_db):
    fresh_db.create_user("b@example.org", "bob", PASSWORD)
    fresh_db.create_user("a@example.org", "Alice", PASSWORD)
    make_ta(fresh_db)
    assert [u.name for u in fresh_db.list_users(role="student")] == ["Alice", "bob"]
    assert [u.role for u in fresh_db.list_users(role="ta")] == ["ta"]
    with pytest.raises(ValidationError):
        fresh_db.list_users(role="admin")


def test_set_password_replaces_the_old_one(fresh_db):
    student = make_student(fresh_db)
    fresh_db.set_password(student.id, "a brand new secret")
    with pytest.raises(AuthenticationError):
        fresh_db.authenticate(student.email, PASSWORD)
    assert fresh_db.authenticate(student.email, "a brand new secret").id == student.id


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "two@@example.org"}, "email"),
        ({"email": "a b@example.org"}, "email"),
        ({"email": "x" * 250 + "@example.org"}, "email"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"password": "short"}, "password"),
        ({"password": "p" * 1025}, "password"),
        ({"role": "admin"}, "role"),
    ],
)
def test_create_user_refuses_bad_input_naming_the_field(fresh_db, kwargs, field):
    args = {"email": "ok@example.org", "name": "Ok", "password": PASSWORD, "role": "student"}
    args.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        fresh_db.create_user(**args)
    assert caught.value.field == field
    assert fresh_db.list_users(include_archived=True) == []


def test_name_limit_is_200_characters(fresh_db):
    user = fresh_db.create_user("ok@example.org", "n" * 200, PASSWORD)
    assert len(user.name) == 200
    with pytest.raises(ValidationError) as caught:
        fresh_db.create_user("ok2@example.org", "n" * 201, PASSWORD)
    assert caught.value.limit == 200
    assert "200" in str(caught.value)

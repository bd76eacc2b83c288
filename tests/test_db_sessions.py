"""Remembered sign-ins: a token for the browser, stored only as a hash, ended on sign-out."""

from __future__ import annotations

import sqlite3

import pytest
from db_fixtures import make_student

from db import NotFoundError


def test_a_session_token_leads_back_to_its_user(store):
    student = make_student(store)
    token = store.start_session(student.id)
    assert store.session_user(token, idle_seconds=3600).id == student.id


def test_only_a_hash_of_the_token_is_stored(store):
    student = make_student(store)
    token = store.start_session(student.id)
    conn = sqlite3.connect(store.path)
    stored = [row[0] for row in conn.execute("SELECT token_hash FROM sign_in_sessions")]
    conn.close()
    assert len(stored) == 1 and token not in stored[0]


def test_unknown_or_ended_tokens_are_refused(store):
    student = make_student(store)
    token = store.start_session(student.id)
    with pytest.raises(NotFoundError):
        store.session_user("not-a-token", idle_seconds=3600)
    store.end_session(token)
    with pytest.raises(NotFoundError):
        store.session_user(token, idle_seconds=3600)
    store.end_session(token)  # ending twice is harmless


def test_an_idle_session_expires(store):
    student = make_student(store)
    token = store.start_session(student.id)
    with pytest.raises(NotFoundError, match="expired"):
        store.session_user(token, idle_seconds=-1)
    with pytest.raises(NotFoundError):  # and it is gone for good
        store.session_user(token, idle_seconds=3600)


def test_an_archived_user_cannot_come_back_through_a_session(store):
    student = make_student(store)
    token = store.start_session(student.id)
    store.archive_user(student.id)
    with pytest.raises(NotFoundError, match="archived"):
        store.session_user(token, idle_seconds=3600)


def test_deleting_a_user_without_work_also_forgets_their_sessions(store):
    student = make_student(store)
    token = store.start_session(student.id)
    store.delete_user(student.id)
    with pytest.raises(NotFoundError):
        store.session_user(token, idle_seconds=3600)

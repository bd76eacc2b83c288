"""Pages ask for a student's kernel when they arrive: at sign-in and on the notebook page."""

from __future__ import annotations

from app_support import APP, open_app
from streamlit.testing.v1 import AppTest

from workbook import Workbook

PASSWORD = "long enough password"


def _record(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(Workbook, "warm_kernel", lambda self, user_id: calls.append(user_id))
    return calls


def test_signing_in_asks_for_the_students_kernel(student_id, monkeypatch):
    calls = _record(monkeypatch)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="home:sign_in:email").input("ada@example.org")
    at.text_input(key="home:sign_in:password").input(PASSWORD)
    at.button[0].click().run()
    assert at.session_state["auth:user_id"] == student_id
    assert calls and set(calls) == {student_id}


def test_opening_the_notebook_asks_for_the_students_kernel(student_id, monkeypatch):
    calls = _record(monkeypatch)
    at = open_app(student_id, "pages/notebook.py")
    assert not at.exception
    assert calls == [student_id]


def test_an_instructor_signing_in_gets_no_kernel(db_path, monkeypatch):
    from app_support import open_store

    with open_store(db_path) as store:
        store.create_user("ta@example.org", "TA", PASSWORD, role="instructor")
    calls = _record(monkeypatch)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="home:sign_in:email").input("ta@example.org")
    at.text_input(key="home:sign_in:password").input(PASSWORD)
    at.button[0].click().run()
    assert at.session_state["auth:user_id"] is not None and calls == []

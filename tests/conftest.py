"""Shared pytest fixtures: the db's stores, and the fresh database the app's pages use."""

import pytest
from app_support import STUDENT_PASSWORD, open_store, use_fresh_database
from db_fixtures import fresh_db, store  # noqa: F401 - fixtures: `store` (a file), `fresh_db` (memory)
from export_data import fill_store, new_store


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    """A fresh database (and kernel folder) that the app under AppTest will use."""
    return use_fresh_database(tmp_path, monkeypatch)


@pytest.fixture
def student_id(db_path):
    """A registered student (ada@example.org) in the app's fresh database."""
    with open_store(db_path) as opened:
        return opened.create_user("ada@example.org", "Ada", STUDENT_PASSWORD).id


@pytest.fixture
def filled(tmp_path):
    """A store holding one student's complete, good submission: ``(store, user)``."""
    opened = new_store(tmp_path / "workbook.db")
    user = opened.create_user("ana@example.org", "Ana Núñez", "correct horse battery")
    fill_store(opened, user.id)
    yield opened, user
    opened.close()

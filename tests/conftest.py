"""Shared pytest fixtures. Each block belongs to the package whose tests use it."""

# --- db: `store` (file on tmp_path) and `fresh_db` (in memory) -----------------------
# --- pages: `db_path`, a fresh database the app under AppTest uses ---------------------
import pytest  # noqa: E402
from app_support import use_fresh_database  # noqa: E402
from db_fixtures import fresh_db, store  # noqa: F401


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    return use_fresh_database(tmp_path, monkeypatch)

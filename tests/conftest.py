"""Shared pytest fixtures. Each block belongs to the package whose tests use it."""

# --- db: `store` (file on tmp_path) and `fresh_db` (in memory) -----------------------
from db_fixtures import fresh_db, store  # noqa: F401

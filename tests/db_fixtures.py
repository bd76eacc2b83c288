"""Fixtures for the storage tests: a store on a real file and one in memory.

Imported by ``conftest.py``; use ``store`` when the test needs a file (WAL, processes,
backup) and ``fresh_db`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from db import Store, User

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store on a real SQLite file under ``tmp_path``."""
    opened = Store(tmp_path / "workbook.db")
    yield opened
    opened.close()


@pytest.fixture
def fresh_db() -> Iterator[Store]:
    """A fresh in-memory store (fast; no file)."""
    opened = Store(":memory:")
    yield opened
    opened.close()


def make_student(store: Store, n: int = 1) -> User:
    """Create student number ``n`` with the shared test password."""
    return store.create_user(f"student{n}@example.org", f"Student {n}", PASSWORD)


def make_ta(store: Store, n: int = 1) -> User:
    """Create TA number ``n`` with the shared test password."""
    return store.create_user(f"ta{n}@example.org", f"TA {n}", PASSWORD, role="ta")

"""Shared helpers for the page tests: the real app under AppTest, on a fresh database."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from db import Store
from workbook import exercises

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
STUDENT_PASSWORD = "long enough password"


def use_fresh_database(tmp_path: Path, monkeypatch) -> Path:
    """Point the app at a new database and kernel folder under ``tmp_path``."""
    path = tmp_path / "workbook.db"
    monkeypatch.setenv("WORKBOOK_DB", str(path))
    monkeypatch.setenv("WORKBOOK_WORK_DIR", str(tmp_path / "kernels"))
    monkeypatch.delenv("WORKBOOK_CATALOG", raising=False)
    # Page tests load the model and start kernels only when a test needs them: nothing in
    # the background (no reference model, no spare kernels).
    monkeypatch.setenv("WORKBOOK_PRELOAD", "0")
    return path


def open_store(path: Path) -> Store:
    """The store the app itself opens (the exercise's question and step ids)."""
    return Store(path, question_ids=exercises.question_ids(), step_ids=exercises.step_ids())


def open_app(user_id: int | None = None, page: str | None = None, timeout: float = 60) -> AppTest:
    """A fresh browser session of the real app, signed in as ``user_id``, on ``page``."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if user_id is not None:
        at.session_state["auth:user_id"] = user_id
        at.session_state["auth:last_active"] = time.time()
    at.run()
    return at.switch_page(page).run() if page else at

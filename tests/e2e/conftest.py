"""Fixtures of the end-to-end tests; the harness itself lives in ``harness.py``.

``app`` starts the real app on a free port with a fresh database and a TA account,
``browser`` is headless Debian Chromium through Playwright (never a downloaded browser),
``artifacts`` is ``tests/artifacts/`` for screenshots and downloads (git-ignored).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    TA_EMAIL,
    TA_NAME,
    TA_PASSWORD,
    RunningApp,
    start_app,
    stop_app,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every browser test, with the reason, when Debian's Chromium is not installed."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: install Debian's chromium (make test does, as root)"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def app() -> Iterator[RunningApp]:
    """The real app on a free port, a fresh database, and a TA account in it."""
    from db import Store

    with tempfile.TemporaryDirectory(prefix="workbook-e2e-") as tmp:
        folder = Path(tmp)
        # The TA is created before the app starts, as an admin would with `python -m db`.
        with Store(folder / "workbook.db") as store:
            store.create_user(TA_EMAIL, TA_NAME, TA_PASSWORD, role="ta")
        running = start_app(folder)
        try:
            yield running
        finally:
            stop_app(running.process)
            log = running.log_path.read_text(errors="replace")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "streamlit.log").write_text(log)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    """The folder for screenshots and downloads (kept after the run, git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

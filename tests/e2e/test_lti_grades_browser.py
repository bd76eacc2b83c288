"""A grade released in Chromium reaches the platform's gradebook: launch to score, across sites.

One platform on 127.0.0.12: lti-core's launch platform (``tests/lti_platform.py``) with the
score and NRPS endpoints of ``tests/lti_services_platform.py`` mounted beside it, both on
lti1p3platform. The launch platform's token endpoint verifies the tool's client assertion
against the key set the running app serves at ``/lti/jwks``. A student and a teacher launch from the same course;
the teacher, now a TA, releases a grade on the review page; the app's outbox posts it to the
line item's score service, and the review page then says it was sent.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness import start_app, stop_app
from lti_platform import CLIENT_ID, STUDENT, TEACHER, LaunchSpec, LocalPlatform
from lti_services_platform import ServicePlatform
from playwright.sync_api import Browser, expect

from db import Store
from workbook import review

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(300)]

UI_TIMEOUT_MS = 30_000
GRADE = "Progressing"


@pytest.fixture(scope="module")
def moodle() -> Iterator[tuple[LocalPlatform, ServicePlatform, str, Path]]:
    platform = LocalPlatform(host="127.0.0.12")
    services = ServicePlatform(client_id=CLIENT_ID, token_path="/token")
    tool: dict[str, str] = {}

    def tool_jwks() -> dict:
        # What the running tool publishes now: its real /lti/jwks.
        with urllib.request.urlopen(f"{tool['base']}/lti/jwks", timeout=10) as answer:
            return json.load(answer)

    # The launch platform's own /token (lti1p3platform checks the tool's assertion against
    # the tool's /lti/jwks) issues the tokens the score service accepts.
    for path, endpoint, methods in services.routes(tool_jwks, authorized=platform.authorized):
        platform.add_route(path, endpoint, methods=methods)
    with platform.serving(), tempfile.TemporaryDirectory(prefix="workbook-lti-grades-") as tmp:
        services.base_url = services.issuer = platform.issuer
        folder = Path(tmp)
        with Store(folder / "workbook.db") as store:
            platform.add_platform_to(store)
        running = start_app(folder, {"WORKBOOK_PRELOAD": "0", "WORKBOOK_SPARE_KERNELS": "0"})
        try:
            tool["base"] = f"http://localhost:{urlsplit(running.url).port}"
            platform.register_tool(tool["base"])
            yield platform, services, tool["base"], folder / "workbook.db"
        finally:
            stop_app(running.process)


def test_a_grade_released_in_the_browser_reaches_the_platforms_score_service(
    browser: Browser, moodle
):
    platform, services, base, db_path = moodle
    services.gradable["7"] = {STUDENT.sub}
    student = browser.new_context()
    ta = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = student.new_page()
        page.goto(
            platform.launch_page(
                LaunchSpec(user=STUDENT, ags_lineitem=services.lineitem_url("7", type_id=5))
            )
        )
        page.wait_for_url(f"{base}/", timeout=UI_TIMEOUT_MS)

        page = ta.new_page()
        page.goto(platform.launch_page(LaunchSpec(user=TEACHER, target=f"{base}/review")))
        page.wait_for_url(f"{base}/review", timeout=UI_TIMEOUT_MS)
        open_student(page)
        page.get_by_label("Grade", exact=True).click()
        page.get_by_role("option", name=GRADE, exact=True).click()
        expect(page.get_by_text("Draft saved.").first).to_be_visible(timeout=UI_TIMEOUT_MS)
        page.get_by_role("button", name="Release to student").click()
        expect(page.get_by_text("Released: the student sees this").first).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )

        # The app's outbox thread posts it in the background, then records that it was taken.
        deadline = time.monotonic() + 30
        with Store(db_path) as store:
            student_id = store.lti_user(platform.issuer, STUDENT.sub).id
            while time.monotonic() < deadline:
                sent = store.lti_score_status([student_id]).get(student_id)
                if sent is not None and sent.state == "sent":
                    break
                time.sleep(0.1)
        [score] = services.received
        assert score.query == "type_id=5"
        assert score.body["userId"] == STUDENT.sub
        assert score.body["scoreGiven"] == review.grade_points(GRADE)
        assert score.body["scoreMaximum"] == review.MAX_POINTS
        assert score.body["gradingProgress"] == "FullyGraded"

        page.reload()  # a fresh run of the page reads where the grade stands
        open_student(page)
        expect(page.get_by_text("Grade sent to Moodle at")).to_be_visible(timeout=UI_TIMEOUT_MS)
    finally:
        student.close()
        ta.close()


def open_student(page) -> None:
    """Open the roster's first student (the only one) in the review view."""
    button = page.locator(".st-key-review-roster-open_button button")
    expect(button).to_be_visible(timeout=UI_TIMEOUT_MS)
    button.click()
    expect(page.get_by_text(f"{STUDENT.name} <{STUDENT.email}>")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )

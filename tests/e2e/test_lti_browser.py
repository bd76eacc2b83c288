"""LTI 1.3 launches in real Chromium: a platform on 127.0.0.2, the app on localhost.

The platform (``tests/lti_platform.py``, built on lti1p3platform) and the app are different
sites, so the browser applies its cross-site cookie rules to the whole OIDC dance: the
login's state cookie must survive the platform's cross-site POST, and the app's
``SameSite=Strict`` session cookie must be set and sent after the launch. A student launch
ends signed in on Home, a TA launch on the page it deep-links to, and a launch inside the
platform's iframe offers "Open in a new window", which then signs in.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness import RunningApp, start_app, stop_app
from lti_platform import STUDENT, TEACHER, LaunchSpec, LocalPlatform
from playwright.sync_api import Browser, expect

from db import Store

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(300)]

UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    local = LocalPlatform(host="127.0.0.2")
    with local.serving():
        yield local


@pytest.fixture(scope="module")
def lti_app(platform) -> Iterator[tuple[RunningApp, str]]:
    """The app, with the platform registered from the shell's store API; ``(app, tool base)``."""
    with tempfile.TemporaryDirectory(prefix="workbook-lti-e2e-") as tmp:
        folder = Path(tmp)
        with Store(folder / "workbook.db") as store:
            platform.add_platform_to(store)
        # Nothing here needs the model or kernels: keep the shared machine's cores free.
        running = start_app(folder, {"WORKBOOK_PRELOAD": "0", "WORKBOOK_SPARE_KERNELS": "0"})
        try:
            base = f"http://localhost:{urlsplit(running.url).port}"
            platform.register_tool(base)
            yield running, base
        finally:
            stop_app(running.process)


def signed_in_as(page, name: str, role: str) -> None:
    expect(page.get_by_text(f"Signed in as {name} ({role})")).to_be_visible(timeout=UI_TIMEOUT_MS)


def session_cookie(context) -> dict:
    [cookie] = [c for c in context.cookies() if c["name"] == "lmwb_session"]
    return cookie


def test_a_student_launch_ends_signed_in_on_home(browser: Browser, lti_app, platform):
    _, base = lti_app
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(platform.launch_page(LaunchSpec(user=STUDENT)))
        page.wait_for_url(f"{base}/", timeout=UI_TIMEOUT_MS)
        signed_in_as(page, STUDENT.name, "student")
        cookie = session_cookie(context)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["domain"] == "localhost"
        page.reload()  # the cookie alone signs this browser in again
        signed_in_as(page, STUDENT.name, "student")
    finally:
        context.close()


def test_a_ta_launch_ends_signed_in_on_the_deep_linked_page(browser: Browser, lti_app, platform):
    _, base = lti_app
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(platform.launch_page(LaunchSpec(user=TEACHER, target=f"{base}/review")))
        page.wait_for_url(f"{base}/review", timeout=UI_TIMEOUT_MS)
        expect(page.get_by_role("heading", name="TA review")).to_be_visible(timeout=UI_TIMEOUT_MS)
        signed_in_as(page, TEACHER.name, "ta")
    finally:
        context.close()


def test_a_launch_inside_an_iframe_offers_a_new_window_that_signs_in(
    browser: Browser, lti_app, platform
):
    _, base = lti_app
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(platform.launch_page(LaunchSpec(user=STUDENT), framed=True))
        link = page.frame_locator("#tool").get_by_role("link", name="Open in a new window")
        expect(link).to_be_visible(timeout=UI_TIMEOUT_MS)
        assert not [c for c in context.cookies() if c["name"] == "lmwb_session"]
        with context.expect_page() as opened:
            link.click()
        window = opened.value
        window.wait_for_url(f"{base}/", timeout=UI_TIMEOUT_MS)
        signed_in_as(window, STUDENT.name, "student")
    finally:
        context.close()

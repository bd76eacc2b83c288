"""A student's outputs cannot run script or load anything in a TA's browser (issue 12.6).

The student's cell really runs in their own kernel and prints every kind of hostile output
(``<script>``, ``onerror``, remote images, ``javascript:`` links, ``<iframe>``,
``<meta refresh>``, forms, SVG with script, Markdown, a JavaScript output) next to a pandas
Styler table, as ``display(HTML(...))`` and friends produce them. A TA then opens the
student on the TA review page in headless Chromium, and the student opens their own
notebook page. Every payload, if it ran or loaded anything, would either:

* post a message to the top window (works from any frame, sandboxed or not), or set
  ``window.top.__pwned`` (works only from same-origin script), or
* send a request to a small HTTP server this test runs on 127.0.0.1 (the "attacker's").

The test asserts none of that happened, that the Styler table is readable, and that the
session cookie exists, is HttpOnly, still signs the TA in after a reload, and is not in
``document.cookie``.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import TA_EMAIL, TA_PASSWORD, RunningApp
from playwright.sync_api import Browser, Page, expect

from workbook import Settings, Workbook
from workbook.exercise import content

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

UI_TIMEOUT_MS = 60_000
STUDENT_EMAIL = "mallory@example.org"
STUDENT_NAME = "Mallory Student"
STUDENT_PASSWORD = "mallory-password-1"
STEP = "step5"  # the step whose output is the top-k table

# Runs in every frame as it is created; only the top window listens. A payload that runs
# anywhere, sandboxed or not, can reach it with top.postMessage.
LISTEN = """
if (window === window.top) {
  window.__messages = [];
  window.addEventListener("message", (event) => {
    if (String(event.data).startsWith("pwned")) { window.__messages.push(String(event.data)); }
  });
}
"""


class _Beacon(http.server.BaseHTTPRequestHandler):
    """The attacker's server: records every request it gets."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.hits.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"pwned")

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.hits.append(f"POST {self.path}")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def beacon() -> Iterator[tuple[str, list[str]]]:
    """``(base_url, hits)`` of the attacker's local HTTP server."""
    hits: list[str] = []
    handler = type("Beacon", (_Beacon,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def _hostile_code(base: str) -> str:
    """The student's cell: every way we know to get script or a request out of an output."""

    def run(tag: str) -> str:
        # Reports by message, by touching the TA's window, and by a request.
        return (
            f"top.postMessage('pwned:{tag}', '*'); try {{ top.__pwned = '{tag}'; }} catch (e) {{}}"
            f" fetch('{base}/{tag}').catch(() => {{}});"
        )

    html_payload = f"""
<p id="hello">Student HTML is shown.</p>
<script>{run("script")}</script>
<img src="missing.png" onerror="{run("onerror")}">
<img src="{base}/remote-image">
<a id="jslink" href="javascript:{run("javascript-link")}">click me</a>
<a id="link" href="{base}/clicked-link">a plain link</a>
<iframe src="{base}/iframe"></iframe>
<iframe srcdoc="<script>{run("nested-srcdoc")}</script>"></iframe>
<meta http-equiv="refresh" content="0;url={base}/meta-refresh">
<link rel="stylesheet" href="{base}/stylesheet">
<style>@import url("{base}/import"); .x {{ background: url("{base}/css-background") }}</style>
<div class="x">styled</div>
<form action="{base}/form" method="post"><button id="submit">send</button></form>
<object data="{base}/object"></object>
<video poster="{base}/poster"></video>
<svg onload="{run("svg-onload")}"><circle r="5"/></svg>
<body onload="{run("body-onload")}">
"""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        f' height="40"><script>{run("svg-script")}</script>'
        f'<image xlink:href="{base}/svg-image" width="10" height="10"/></svg>'
    )
    markdown = f"![remote]({base}/markdown-image) [click](javascript:{run('markdown-link')})"
    return f"""
import pandas as pd
from IPython.display import HTML, SVG, Javascript, Markdown, display

display(HTML({html_payload!r}))
display(SVG({svg!r}))
display(Markdown({markdown!r}))
display(Javascript({run("javascript-output")!r}))
print({f"<script>{run('stdout')}</script>"!r})
top = pd.DataFrame({{"tokens": [" Paris", " London", " Rome"], "probabilities": [0.61, 0.12, 0.05]}})
top.style.background_gradient(subset=["probabilities"]).format({{"probabilities": "{{:.2f}}"}})
"""


@pytest.fixture(scope="module")
def student_outputs(app: RunningApp, beacon: tuple[str, list[str]]) -> int:
    """A student whose step-5 cell really ran the hostile code in their kernel (saved)."""
    base, _hits = beacon
    settings = Settings(db_path=app.db_path, work_dir=app.work_dir / "test-kernels")
    wb = Workbook(settings)
    student = wb.store.create_user(STUDENT_EMAIL, STUDENT_NAME, STUDENT_PASSWORD)
    code = _hostile_code(base)
    try:
        kernel = wb.kernels.kernel_for(str(student.id))
        result = kernel.execute(code, timeout=120)
    finally:
        wb.kernels.shutdown_all()
    assert result.status == "ok", result.outputs
    types = [mime for output in result.outputs for mime in output.get("data", {})]
    assert {"text/html", "image/svg+xml", "text/markdown", "application/javascript"} <= set(types)
    # Saved exactly as the notebook page saves a run.
    wb.store.save_cell(
        student.id, STEP, code=code, outputs=result.outputs, execution_count=1, passed=None
    )
    wb.store.close()
    return student.id


def _sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url)
    panel = page.get_by_role("tabpanel")
    panel.get_by_label("Email").fill(email)
    panel.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Welcome,")).to_be_visible(timeout=UI_TIMEOUT_MS)


def _wait_idle(page: Page) -> None:
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stStatusWidget']\")", timeout=UI_TIMEOUT_MS
    )


def _nothing_ran_or_loaded(page: Page, hits: list[str]) -> None:
    page.wait_for_timeout(2_000)  # time for any load, refresh or script to have happened
    assert page.evaluate("window.__messages") == []
    assert page.evaluate("window.__pwned") is None
    assert hits == []


def _outputs_were_drawn_and_inert(
    page: Page, beacon: tuple[str, list[str]], folder: Path, name: str
) -> None:
    """The student's outputs are on screen, readable, and nothing in them ran or loaded."""
    _base, hits = beacon
    # The stdout "<script>" is shown as the characters printed (the last match: the review
    # page also shows the cell's code, which holds the same text).
    printed = page.get_by_text("<script>top.postMessage('pwned:stdout'", exact=False).last
    expect(printed).to_be_visible(timeout=UI_TIMEOUT_MS)
    _nothing_ran_or_loaded(page, hits)

    frames = page.frame_locator("iframe[title='Cell output']")
    html_frame = frames.nth(0).frame_locator("iframe")
    expect(html_frame.locator("#hello")).to_have_text("Student HTML is shown.")
    # The Styler table (the last output) is readable: its tokens and formatted numbers.
    table = frames.last.frame_locator("iframe")
    expect(table.get_by_role("cell", name="Paris")).to_be_visible()
    expect(table.get_by_role("cell", name="0.61")).to_be_visible()
    expect(page.get_by_text("A JavaScript output is never run here.")).to_be_visible()

    # Clicking what a TA might click: the form, the javascript: link, a plain link (last:
    # its navigation is blocked, which leaves an error page in the frame).
    html_frame.locator("#submit").click()
    html_frame.locator("#jslink").click()
    html_frame.locator("#link").click()
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    _nothing_ran_or_loaded(page, hits)


def test_ta_review_page_runs_nothing_a_student_output_holds(
    app: RunningApp,
    browser: Browser,
    beacon: tuple[str, list[str]],
    student_outputs: int,
    artifacts: Path,
):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(LISTEN)
    page = context.new_page()
    try:
        _sign_in(page, app.url, TA_EMAIL, TA_PASSWORD)
        page.get_by_test_id("stSidebar").get_by_role("link", name="TA review").click()
        search = page.get_by_label("Search name or email")
        search.fill("mallory")
        search.press("Enter")
        expect(page.get_by_text("1 of 1 students")).to_be_visible(timeout=UI_TIMEOUT_MS)
        _wait_idle(page)
        page.locator(".st-key-review-roster-open_button button").click()
        expect(page.get_by_text(f"{STUDENT_NAME} <{STUDENT_EMAIL}>")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        title = content.step(STEP).title
        page.locator("[data-testid='stExpander'] summary", has_text=title).click()
        _outputs_were_drawn_and_inert(page, beacon, artifacts, "ta-review-hostile-outputs")

        # The session cookie: set, HttpOnly, SameSite=Strict, invisible to page script...
        (session,) = [c for c in context.cookies() if c["name"] == "lmwb_session"]
        assert session["httpOnly"] is True
        assert session["sameSite"] == "Strict"
        assert len(session["value"]) >= 40
        page_cookies = page.evaluate("document.cookie")
        assert session["value"] not in page_cookies
        assert "lmwb_session" not in page_cookies
        # ...and it is the real thing: a reload (a new session) is still signed in.
        page.reload()
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text(re.compile(r"Signed in as .*\(ta\)"))).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        assert session["value"] not in page.evaluate("document.cookie")
        # Page script cannot overwrite it either (a fixation attempt leaves it unchanged).
        page.evaluate("document.cookie = 'lmwb_session=attacker; path=/'")
        (after,) = [c for c in context.cookies() if c["name"] == "lmwb_session"]
        assert after["value"] == session["value"]
    finally:
        context.close()


def test_students_own_notebook_page_runs_nothing_either(
    app: RunningApp,
    browser: Browser,
    beacon: tuple[str, list[str]],
    student_outputs: int,
    artifacts: Path,
):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(LISTEN)
    page = context.new_page()
    try:
        _sign_in(page, app.url, STUDENT_EMAIL, STUDENT_PASSWORD)
        page.get_by_test_id("stSidebar").get_by_role("link", name="Logits notebook").click()
        expect(page.get_by_text("Output from your last run (saved):")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        _outputs_were_drawn_and_inert(page, beacon, artifacts, "notebook-hostile-outputs")
        assert "lmwb_session" not in page.evaluate("document.cookie")
    finally:
        context.close()

"""Accessibility in the real app: axe-core on every page and state, the keyboard alone, 360 px.

One app and one browser for the module. A student and a TA walk the pages in sequence; at
each page and state ``axe.audit`` runs axe-core (WCAG 2.1 A and AA) and fails on any serious
or critical violation. On the way the student does the setup cell and step 1 with the
keyboard only (Tab, Enter, typing: no clicks), and the TA grades and releases feedback the
same way; what a screen reader is told (live regions, names, descriptions) is read from the
DOM. Last, the main pages are loaded 360 px wide (what 200 % zoom leaves of a small laptop
screen) and must not scroll sideways outside code and tables.
"""

from __future__ import annotations

import re

import pytest
from axe import TAGS, audit, axe_version, summary
from harness import TA_EMAIL, TA_PASSWORD, RunningApp
from playwright.sync_api import Browser, Page, expect

from db import Store
from workbook import review
from workbook.exercise import content
from workbook.lti import html as lti_html
from workbook.web import SESSION_COOKIE

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(600)]

UI_TIMEOUT_MS = 20_000
RUN_TIMEOUT_MS = 120_000
STUDENT = ("Alan Turing", "alan@example.org", "imitation-game-1950")
BUSY = "[data-testid='stStatusWidget']"
MAX_TABS = 120
COMMENT = "Clear work; name each tensor's shape."

# step 1 typed with a mistake: the ids as a Python list, not a tensor.
WRONG_STEP1 = 'phrase = "This weekend I plan to"\ninput_ids = tokenizer(phrase)["input_ids"]'


def settle(page: Page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait for the rerun just caused (if any) to end."""
    page.wait_for_timeout(300)
    page.wait_for_function(f"() => !document.querySelector({BUSY!r})", timeout=timeout_ms)


def open_page(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=heading).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    settle(page)


def wait_for_sign_in_cookie(page: Page) -> None:
    """Wait until the browser holds the sign-in cookie, so that loading a URL stays signed in."""
    for _ in range(100):
        if any(c["name"] == SESSION_COOKIE for c in page.context.cookies()):
            return
        page.wait_for_timeout(100)
    raise AssertionError("the sign-in cookie never arrived")


def sign_in_as_ta(page: Page, app: RunningApp) -> None:
    """Sign in with the TA account on Home, pressing Enter in the password field."""
    open_page(page, app.url, "LM Logits Workbook")
    panel = page.get_by_role("tabpanel")
    panel.get_by_label("Email").fill(TA_EMAIL)
    panel.get_by_label("Password", exact=True).fill(TA_PASSWORD)
    panel.get_by_label("Password", exact=True).press("Enter")
    expect(page.get_by_text("Welcome,")).to_be_visible(timeout=UI_TIMEOUT_MS)


def register(page: Page, app: RunningApp, name: str, email: str, password: str) -> None:
    """Create a student account on Home's Register tab; returns once the browser is signed in."""
    open_page(page, app.url, "LM Logits Workbook")
    page.get_by_role("tab", name="Register").click()
    page.get_by_label("Your name (as in Moodle)").fill(name)
    page.get_by_role("tabpanel").get_by_label("Email").fill(email)
    page.get_by_label("Password (at least 8 characters)").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text(f"Welcome, {name}")).to_be_visible(timeout=UI_TIMEOUT_MS)
    wait_for_sign_in_cookie(page)


def focused(page: Page) -> dict:
    """What has focus: its tag, accessible label or text, and whether a focus ring shows."""
    return page.evaluate(
        """() => {
      const e = document.activeElement;
      const ring = (el) => {
        for (let n = el, i = 0; n && i < 4; n = n.parentElement, i++) {
          const s = getComputedStyle(n);
          if ((s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
              || s.boxShadow !== 'none') { return true; }
        }
        return false;
      };
      return {tag: e.tagName, label: e.getAttribute('aria-label') || '',
              text: (e.innerText || e.value || '').trim().slice(0, 80), ring: ring(e)};
    }"""
    )


def tab_until(page: Page, wanted, what: str, key: str = "Tab") -> list[dict]:
    """Press Tab until ``wanted(focused)`` holds; every stop on the way shows a focus ring.

    Returns:
        The stops, one per press, the wanted one last (empty when it already has focus).
    """
    if wanted(focused(page)):
        return []
    stops = []
    for _ in range(MAX_TABS):
        page.keyboard.press(key)
        now = focused(page)
        stops.append(now)
        if now["tag"] != "BODY":
            assert now["ring"], f"no visible focus on {now} (on the way to {what})"
        if wanted(now):
            return stops
    raise AssertionError(f"{what} not reached with {MAX_TABS} presses of {key}: {stops}")


def is_skip_link(now: dict) -> bool:
    return now["tag"] == "A" and now["text"].startswith("Skip to the current step")


def type_lines(page: Page, code: str) -> None:
    """Replace the focused editor's text key by key (top-level lines only)."""
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    for number, line in enumerate(code.split("\n")):
        if number:
            page.keyboard.press("Enter")
        page.keyboard.type(line)


def editor_text(page: Page, step: content.Step) -> str:
    area = page.get_by_label(f"Your code for {step.title}", exact=True)
    return area.evaluate("e => e.closest('.cm-editor').workbookView.state.doc.toString()")


def overflow(page: Page) -> list[str]:
    """Elements sticking out to the right of the viewport, outside code, tables and charts."""
    return page.evaluate(
        """() => {
      const width = window.innerWidth;
      const skip = 'pre, code, table, canvas, svg, .stCode, [data-testid=stDataFrame], '
        + '[data-testid=stTable], [data-testid=stVegaLiteChart], .cm-editor, iframe';
      const out = [];
      if (document.documentElement.scrollWidth > width) {
        out.push('document scrollWidth ' + document.documentElement.scrollWidth);
      }
      const main = document.querySelector('[data-testid=stMain]');
      // Inside a box that fits and scrolls or clips on its own (a tab bar): not the page's.
      const contained = (e) => {
        for (let n = e.parentElement; n && n !== main; n = n.parentElement) {
          const x = getComputedStyle(n).overflowX;
          if (x !== 'visible' && n.getBoundingClientRect().right <= width + 1) return true;
        }
        return false;
      };
      for (const e of main.querySelectorAll('*')) {
        if (e.closest(skip)) continue;
        const r = e.getBoundingClientRect();
        if (r.width > 0 && r.right > width + 1 && getComputedStyle(e).visibility !== 'hidden'
            && !contained(e)) {
          const owner = e.closest('[data-testid]');
          out.push(e.tagName + ' in ' + (owner ? owner.dataset.testid : '?') + ' right='
            + Math.round(r.right) + ': ' + (e.innerText || '').slice(0, 40));
        }
      }
      return out.slice(0, 10);
    }"""
    )


@pytest.fixture(scope="module")
def student_page(app: RunningApp, browser: Browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    yield page
    context.close()


def test_axe_is_the_bundled_engine_with_the_wcag_21_aa_tags(student_page: Page) -> None:
    student_page.goto("about:blank")
    assert re.fullmatch(r"4\.\d+\.\d+", axe_version(student_page))
    assert TAGS == ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


def test_signed_out_pages_and_a_refused_sign_in(app: RunningApp, student_page: Page) -> None:
    page = student_page
    open_page(page, app.url, "LM Logits Workbook")
    audit(page, "home: signed out")
    panel = page.get_by_role("tabpanel")
    panel.get_by_label("Email").fill("nobody@example.org")
    panel.get_by_label("Password", exact=True).fill("not-the-password")
    panel.get_by_label("Password", exact=True).press("Enter")
    # The refusal is an alert: screen readers read it out as it appears.
    refusal = page.locator("[role=alert]").filter(has_text=re.compile("password", re.I))
    expect(refusal).to_be_visible(timeout=UI_TIMEOUT_MS)
    audit(page, "home: refused sign-in")

    open_page(page, f"{app.url}/explore", "Explore")
    for tab in ("Next-token distribution", "Build a sentence", "Compare strategies", "Logit lens"):
        page.get_by_role("tab", name=tab).click()
        settle(page)
        panel = page.get_by_role("tabpanel", name=tab)
        if tab == "Compare strategies":
            # One new token per strategy keeps it quick; the charts are drawn all the same.
            panel.get_by_role("slider", name="New tokens").focus()
            page.keyboard.press("Home")
            settle(page)
            panel.get_by_role("button", name="Run all strategies").click()
            settle(page)
            expect(panel.get_by_text("Stopped by").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
        if tab != "Build a sentence":
            # Every chart has its numbers as a table (the chart's text alternative).
            charts = panel.get_by_test_id("stVegaLiteChart")
            tables = panel.get_by_text("The numbers in this chart, as a table")
            expect(tables.first).to_be_visible(timeout=UI_TIMEOUT_MS)
            # Charts and tables arrive one after the other while the tab draws.
            for _ in range(100):
                if charts.count() == tables.count():
                    break
                page.wait_for_timeout(200)
            assert charts.count() == tables.count(), tab
        audit(page, f"explore: {tab}")


def test_student_pages_and_the_notebook_by_keyboard(app: RunningApp, student_page: Page) -> None:
    page = student_page
    register(page, app, *STUDENT)
    settle(page)
    audit(page, "home: student")
    # Our own menu in the sidebar (Streamlit's is hidden): the student's pages, no staff page.
    sidebar = page.get_by_test_id("stSidebar")
    for label in ("Home", "Tutorial log", "Logits notebook", "Analysis", "Submit", "Explore"):
        expect(sidebar.get_by_role("link", name=re.compile(label))).to_be_visible()
    expect(sidebar.get_by_role("link", name=re.compile("TA review"))).to_have_count(0)

    open_page(page, f"{app.url}/tutorials", "Tutorial log")
    audit(page, "tutorial log: no path yet")
    for path in ("Two PyTorch tutorials", "The classifier-from-scratch mini-project"):
        page.get_by_text(path).click()
        settle(page)
        audit(page, f"tutorial log: {path}")
    open_page(page, f"{app.url}/analysis", "Analysis")
    audit(page, "analysis")
    open_page(page, f"{app.url}/submit", "Submit to Moodle")
    expect(page.locator("[role=alert]").first).to_be_visible()
    audit(page, "submit: with warnings")
    page.goto(f"{app.url}/review")
    expect(page.get_by_text("This page is for course staff")).to_be_visible(timeout=UI_TIMEOUT_MS)
    audit(page, "TA review as a student: not for you")

    setup, step1 = content.step("setup"), content.step("step1")
    open_page(page, f"{app.url}/notebook", "Logits in Causal Language Models")
    audit(page, "notebook: before any run")
    # The editor has a name, and says on entry how to leave it.
    area = page.get_by_label(f"Your code for {step1.title}", exact=True)
    expect(area).to_have_attribute("role", "textbox")
    hint_id = area.get_attribute("aria-describedby")
    assert "Esc, then Tab" in page.locator(f"#{hint_id}").text_content()

    # From the top of the page: the skip link, then the setup cell's Run, by keyboard only.
    tab_until(page, is_skip_link, "skip link")
    assert focused(page)["text"].endswith(setup.title)
    page.keyboard.press("Enter")
    stops = tab_until(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "Run", "Run")
    # Before: 10 Tabs from the top to step 1's editor. Now: the heading's anchor, the given
    # code (Chromium lets the keyboard scroll it), its copy button, then Run.
    assert len(stops) <= 4, f"the setup cell's Run is {len(stops)} Tabs on: {stops}"
    assert page.locator(".st-key-setup-run button").evaluate("b => b === document.activeElement")
    page.keyboard.press("Enter")
    # On screen the cell counts the seconds; the live region says once that it runs.
    running = page.locator(".st-key-cell-setup").get_by_text(re.compile(r"Running · \d+ s"))
    expect(running).to_be_visible(timeout=UI_TIMEOUT_MS)
    audit(page, "notebook: a running cell")
    live = page.locator("#wb-live-status")
    expect(live).to_have_attribute("role", "status")
    # The pressed Run button stays enabled while its cell runs, so it keeps keyboard focus.
    assert page.locator(".st-key-setup-run button").evaluate("b => b === document.activeElement")
    expect(running).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    settle(page)
    # Focus is still on that Run button after the run and the page's reruns.
    assert page.locator(".st-key-setup-run button").evaluate("b => b === document.activeElement")
    # ...and, once it ends, that it has finished (the setup cell has no check).
    expect(live).to_have_text(f"{setup.title} has finished running.")
    expect(
        page.locator(".st-key-cell-setup").get_by_text(
            re.compile(r"^The model has [\d,]+ parameters")
        )
    ).to_be_visible()
    audit(page, "notebook: after the setup cell")

    # Step 1: after a reload (from the top again) the skip link leads there.
    page.reload()
    expect(page.get_by_role("heading", name=step1.title)).to_be_visible(timeout=UI_TIMEOUT_MS)
    settle(page)
    # The reload shows the setup cell's result but does not say again that it finished.
    expect(page.get_by_text(re.compile(r"^The model has [\d,]+ parameters"))).to_be_visible()
    page.wait_for_timeout(1000)  # what the rerun would have announced is in place by now
    said = page.evaluate("() => document.getElementById('wb-live-status')?.textContent ?? ''")
    assert "has finished running" not in said, said
    tab_until(page, is_skip_link, "skip link")
    assert focused(page)["text"].endswith(step1.title)
    page.keyboard.press("Enter")
    tab_until(page, lambda f: f["label"] == f"Your code for {step1.title}", "step 1's editor")
    type_lines(page, WRONG_STEP1)
    page.keyboard.press("Shift+Enter")
    settle(page)
    verdict = page.locator(".st-key-cell-step1 [role=alert]")
    expect(verdict).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(verdict).not_to_contain_text("Check passed")
    settle(page)
    expect(live).to_contain_text(f"{step1.title}: ")
    expect(live).not_to_contain_text("Check passed")
    audit(page, "notebook: a failed check")
    # Focus stayed in the editor through the run and its reruns.
    assert focused(page)["label"] == f"Your code for {step1.title}"
    type_lines(page, step1.solution.rstrip("\n"))
    # A pause saves the cell; the save is announced in the page's live region.
    expect(page.locator("#wb-live-status")).to_contain_text("Saved at", timeout=UI_TIMEOUT_MS)
    page.keyboard.press("Shift+Enter")
    settle(page)
    passed = page.locator(".st-key-cell-step1 [role=status]").filter(has_text="Check passed")
    expect(passed).to_be_visible(timeout=RUN_TIMEOUT_MS)
    settle(page)
    expect(live).to_have_text(re.compile(f"^{re.escape(step1.title)}: Check passed"))
    assert editor_text(page, step1) == step1.solution.rstrip("\n")
    audit(page, "notebook: a passed check")


def test_ta_releases_feedback_by_keyboard(app: RunningApp, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        sign_in_as_ta(page, app)
        settle(page)
        audit(page, "home: TA")
        open_page(page, f"{app.url}/review", "TA review")
        audit(page, "TA review: roster")

        # The student is the roster's only one: Open, grade, comment, release: keys only.
        tab_until(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "Open", "Open")
        page.keyboard.press("Enter")
        settle(page)
        expect(page.get_by_text(f"{STUDENT[0]} <{STUDENT[1]}>")).to_be_visible()
        audit(page, "TA review: one student")
        grade_box = page.get_by_label("Grade", exact=True)
        tab_until(page, lambda f: grade_box.evaluate("e => e === document.activeElement"), "Grade")
        grade = review.GRADE_SCALE[0]
        page.keyboard.type(grade)
        page.keyboard.press("Enter")
        settle(page)
        tab_until(page, lambda f: f["label"] == "Overall comment", "Overall comment")
        page.keyboard.type(COMMENT)
        page.keyboard.press("Tab")  # leaving the field commits (and saves) the comment
        settle(page)
        tab_until(page, lambda f: f["text"] == "Release to student", "Release")
        page.keyboard.press("Enter")
        settle(page)
        expect(page.get_by_text("Released: the student sees this").first).to_be_visible()
        # What the keys chose is what was released.
        with Store(app.db_path) as store:
            released = store.released_feedback_for(store.user_by_email(STUDENT[1]).id)
        assert review.grade_label(released.grade) == grade
        assert released.comment == COMMENT
        audit(page, "TA review: released")

        page.get_by_text("Export for Moodle").click()
        settle(page)
        audit(page, "TA review: worksheet export")

        open_page(page, f"{app.url}/class_view", "Class")
        expect(page.get_by_role("heading", name="Who is stuck, now")).to_be_visible()
        audit(page, "Class")
        page.get_by_text("Projection mode").click()
        settle(page)
        audit(page, "Class: projection mode")
    finally:
        context.close()


def test_the_lti_pages_a_launch_can_show(app: RunningApp, student_page: Page) -> None:
    """The plain pages of the LTI routes: a real refusal from the server, and the others."""
    page = student_page
    page.goto(f"{app.url}/lti/login")  # no platform's parameters: refused
    expect(page.get_by_role("heading", name="The workbook could not open")).to_be_visible()
    audit(page, "LTI: a refused launch")
    shown = {
        "LTI: open in a new window": lti_html.new_window_page(f"{app.url}/"),
        "LTI: confirm a password account": lti_html.link_pending_page(
            "ada@example.org", f"{app.url}/"
        ),
    }
    for label, lti_page in shown.items():
        page.set_content(lti_page.html)
        audit(page, label)


def test_main_pages_fit_360_px_without_sideways_scrolling(
    app: RunningApp, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 780})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        register(page, app, "Grace Narrow", "narrow@example.org", "small-screen-360")
        pages = {
            "": "LM Logits Workbook",
            "tutorials": "Tutorial log",
            "notebook": "Logits in Causal Language Models",
            "analysis": "Analysis",
            "submit": "Submit to Moodle",
            "explore": "Explore",
        }
        problems = {}
        for path, heading in pages.items():
            open_page(page, f"{app.url}/{path}", heading)
            if found := overflow(page):
                problems[path or "home"] = found
        assert not problems, problems
        # At this width Streamlit folds the sidebar away with an animation; while it moves, its
        # links are not yet hidden and axe sees a scrollable box with nothing to focus. Audit
        # the page as it stays, once the animation is over.
        page.wait_for_timeout(1500)
        audit(page, "explore at 360 px")
    finally:
        context.close()
    # The staff pages too, as a TA on the same narrow screen.
    context = browser.new_context(viewport={"width": 360, "height": 780})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        sign_in_as_ta(page, app)
        wait_for_sign_in_cookie(page)
        problems = {}
        for path, heading in {"review": "TA review", "class_view": "Class"}.items():
            open_page(page, f"{app.url}/{path}", heading)
            if found := overflow(page):
                problems[path] = found
        assert not problems, problems
    finally:
        context.close()
    print("\naxe-core results (elements per rule):\n" + summary())

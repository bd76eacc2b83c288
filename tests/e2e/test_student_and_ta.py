"""A student and a TA use the real app in headless Chromium, start to finish.

The student registers, runs the setup cell, fails one step with a wrong attempt and reads
the check's message, completes steps 1-6 with the course's reference solutions, logs two
tutorials with reflections, answers Q1-Q3, reloads and finds everything still there, and
exports the Moodle bundle; the zip's notebook must validate. A TA then signs in, finds the
student in the roster, writes feedback and releases it, and the student sees it on Home.

Screenshots of every page are written to ``tests/artifacts/``.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from harness import TA_EMAIL, TA_PASSWORD, RunningApp
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from workbook import quality, review
from workbook.exercise import content
from workbook.submission.bundle import NOTEBOOK_NAME
from workbook.submission.notebook import verbatim_markdown

PATH_LABELS = {"tutorials": "Two PyTorch tutorials (from two different sections)"}

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

STUDENT_NAME = "Ada Lovelace"
STUDENT_EMAIL = "ada@example.org"
STUDENT_PASSWORD = "analytical-engine-1843"
# A run of the real model in the student's kernel; the setup cell also loads the weights.
RUN_TIMEOUT_MS = 120_000
UI_TIMEOUT_MS = 20_000

# slot -> (catalog search, reflection); the two tutorials come from different sections.
TUTORIALS = {
    "1": (
        "Double Backward",
        "Working through the double backward tutorial I reviewed how autograd records a "
        "graph and learned that a custom Function must save its inputs with "
        "save_for_backward so that the backward pass can itself be differentiated. I tried "
        "gradcheck and gradgradcheck on a small tensor, which surprised me by catching a "
        "sign error in my own backward. Next I would like to look up how torch.compile "
        "handles custom Functions, because the tutorial only ran them eagerly and I am not "
        "sure whether the saved tensors change.",
    ),
    "2": (
        "Channels Last",
        "The channels-last tutorial showed me that memory format is separate from shape: "
        "a tensor keeps its NCHW shape while its strides change. I learned how to convert a "
        "model with to(memory_format=torch.channels_last) and tried printing the strides "
        "before and after, then timed a convolution both ways on my laptop. It was new to "
        "me that the speed-up depends on the hardware: on my CPU the difference was small. "
        "Next I would look up which operators keep the format and which silently convert.",
    ),
}
ANSWERS = {
    "q1": (
        "The logits have shape [1, 6, 49152]: one sequence in the batch, six tokens in "
        "the phrase, and one score per entry of the vocabulary for each position."
    ),
    "q2": (
        "Index -2 takes the scores computed at the second-to-last token, so they predict "
        "the last token of the phrase ('to') rather than the token after the phrase."
    ),
    "q3": (
        "Repeat the prediction: append a chosen token to the phrase and predict again. "
        "Greedy picks the most likely token each time; sampling with temperature or "
        "top-p, or beam search, gives more varied or more likely whole sentences."
    ),
}
TUTORIAL_DATES = {"1": ("2026-11-20", "2026-11-22"), "2": ("2026-11-23", "2026-11-23")}
TUTORIAL_NOTES = {"1": "gradgradcheck needs float64", "2": "strides change, shape does not"}
NOTES_LABEL = re.compile(r"^Private notes while you work")
GRADE = review.GRADE_SCALE[0]
STEP6_COMMENT = "Good comments; say which shape each line produces."
FEEDBACK = "Clear notebook and thoughtful reflections; in Q2 say which token -2 predicts."


# --- helpers ------------------------------------------------------------------------------
RUNNING = "[data-testid='stStatusWidget']"


def wait_idle(page: Page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until Streamlit has finished the current script run (its status widget is gone)."""
    page.wait_for_function(f"() => !document.querySelector({RUNNING!r})", timeout=timeout_ms)


def click_and_wait(page: Page, target) -> None:
    """Click and wait for the rerun it causes to finish."""
    target.click()
    wait_rerun(page)


def wait_rerun(page: Page) -> None:
    """Wait for a rerun that was just triggered to finish.

    The rerun starts a moment after the browser sends the change; a quick one may be over
    before we look, so seeing it start is optional, seeing it end is not.
    """
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_selector(RUNNING, state="attached", timeout=3_000)
    wait_idle(page)


def shot(page: Page, folder: Path, name: str, max_height: int = 4000) -> None:
    """Save a screenshot of the whole page (the viewport grows to the page's height)."""
    wait_idle(page)
    size = page.viewport_size
    # Streamlit scrolls inside its main container, so full_page alone would cut it off.
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
        "[data-testid=stAppViewContainer], section')].map(e => e.scrollHeight), 0)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(height, 600), max_height)})
    page.wait_for_timeout(300)  # let the layout settle at the new size
    page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size(size)


def go_to(page: Page, label: str, heading: str) -> None:
    """Open a page from the sidebar navigation and wait for its title."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=label).click()
    expect(page.get_by_role("heading", name=heading).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    wait_idle(page)


def commit_text(page: Page, area, text: str) -> None:
    """Type into a text field and commit it (Ctrl+Enter, Enter for one line), then wait."""
    area.fill(text)
    is_text_area = area.evaluate("e => e.tagName") == "TEXTAREA"
    area.press("Control+Enter" if is_text_area else "Enter")
    wait_rerun(page)
    expect(area).to_have_value(text)


def register(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Register").click()
    page.get_by_label("Your name (as in Moodle)").fill(STUDENT_NAME)
    page.get_by_role("tabpanel").get_by_label("Email").fill(STUDENT_EMAIL)
    # A too-short password is refused with a message saying what to do.
    page.get_by_label("Password (at least 8 characters)").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Choose a password of at least 8 characters.")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    page.get_by_label("Password (at least 8 characters)").fill(STUDENT_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text(f"Welcome, {STUDENT_NAME}")).to_be_visible(timeout=UI_TIMEOUT_MS)


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url)
    panel = page.get_by_role("tabpanel")
    panel.get_by_label("Email").fill(email)
    panel.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Welcome,")).to_be_visible(timeout=UI_TIMEOUT_MS)


PASSED = re.compile(r"^\s*Check passed")
RUNNING_INDICATOR = re.compile(r"Running · \d+ s")
INDENT = "    "


def editor(page: Page, step: content.Step):
    """The code editor of a step (its editable area, named by its label)."""
    return page.get_by_label(f"Your code for {step.title}", exact=True)


def editor_text(area) -> str:
    """The text in a code editor, as the editor itself holds it."""
    return area.evaluate("e => e.closest('.cm-editor').workbookView.state.doc.toString()")


def current_line_indent(area) -> int:
    """Spaces at the start of the line the cursor is on."""
    return area.evaluate(
        "e => { const s = e.closest('.cm-editor').workbookView.state;"
        " const line = s.doc.lineAt(s.selection.main.head);"
        " return line.text.length - line.text.trimStart().length; }"
    )


def paste_code(page: Page, area, code: str) -> None:
    """Replace a cell's code in one go, as a paste does (no auto-indent, no bracket closing)."""
    area.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(code)
    assert editor_text(area) == code


def type_code(page: Page, area, code: str) -> None:
    """Write ``code`` key by key, as a student does: Enter for a new line (the editor indents
    it), Tab / Shift+Tab to fix the indentation, then the line's text."""
    area.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    lines = code.split("\n")
    for number, line in enumerate(lines):
        text = line.lstrip(" ")
        if text:
            wanted = len(line) - len(text)
            assert wanted % len(INDENT) == 0, f"not a multiple of 4 spaces: {line!r}"
            # Auto-indent after Enter is usually right; otherwise a Tab or Shift+Tab moves it
            # by one level.
            for _ in range(8):
                have = current_line_indent(area)
                if have == wanted:
                    break
                page.keyboard.press("Tab" if have < wanted else "Shift+Tab")
            assert current_line_indent(area) == wanted, (number, line)
            page.keyboard.type(text)
        if number < len(lines) - 1:
            page.keyboard.press("Enter")
    assert editor_text(area) == code


def run_with_shift_enter(page: Page, area, step: content.Step) -> None:
    """Run a code cell from the keyboard and wait until the cell no longer says it runs."""
    area.click()
    page.keyboard.press("Shift+Enter")
    wait_rerun(page)
    running = page.locator(f".st-key-cell-{step.id}").get_by_text(RUNNING_INDICATOR)
    expect(running).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    wait_idle(page)


def run_step(
    page: Page,
    step: content.Step,
    code: str | None,
    *,
    passes: bool = True,
    by_keyboard: bool = False,
) -> str:
    """Put ``code`` in a step's cell (unless given), run it, and return the check's text.

    Args:
        page: the notebook page.
        step: the step to run.
        code: the cell's new code; ``None`` for the given setup cell.
        passes: whether the check is expected to pass (the wait is for that verdict, since
            an earlier verdict of the same step stays on screen until the rerun ends).
        by_keyboard: type the code key by key (else paste it); either way the cell is run
            with Shift+Enter. The given setup cell is run with its Run button.

    Returns:
        The text of the alert the step's run produced (the check verdict).
    """
    if step.given:
        click_and_wait(page, page.locator(f".st-key-{step.id}-run button"))
        return ""
    area = editor(page, step)
    (type_code if by_keyboard else paste_code)(page, area, code)
    run_with_shift_enter(page, area, step)
    # The verdict is the first alert below the step's Run button.
    verdict = page.locator(f".st-key-{step.id}-run").locator(
        "xpath=following::*[@data-testid='stAlert'][1]"
    )
    if passes:
        expect(verdict).to_have_text(PASSED, timeout=RUN_TIMEOUT_MS)
    else:
        expect(verdict).not_to_have_text(PASSED, timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    return verdict.inner_text()


def wrong_step3() -> str:
    """Step 3 with a classic mistake: the first position's logits instead of the last's."""
    solution = content.step("step3").solution
    wrong = solution.replace("logits[0, -1]", "logits[0, 0]")
    assert wrong != solution, "the reference solution of step 3 changed; update this mistake"
    return wrong


def date_value(panel, label: str) -> str:
    """What a date field shows, as YYYY-MM-DD (its year, month and day segments)."""
    return "".join(panel.get_by_role("group", name=label).inner_text().split())


def type_date(page: Page, panel, label: str, iso: str) -> None:
    """Type a date key by key into its field and pause, the cursor still in the field.

    Like any other field it is saved after the pause, without leaving the field (the reload
    at the end reads it back).
    """
    panel.get_by_role("spinbutton", name=f"year, {label}").click()
    page.keyboard.type(iso.replace("-", ""))
    page.wait_for_timeout(3_500)  # the autosave's pause in typing, then its save
    wait_idle(page)
    assert date_value(panel, label) == iso
    focused = page.evaluate("document.activeElement.getAttribute('aria-label') || ''")
    assert focused.endswith(label), focused


def do_tutorials(page: Page, folder: Path) -> None:
    """Choose the two-tutorials path and log two catalog tutorials with reflections."""
    go_to(page, "Tutorial log", "Tutorial log")
    click_and_wait(page, page.get_by_text(PATH_LABELS["tutorials"]))
    for slot, (query, reflection) in TUTORIALS.items():
        click_and_wait(page, page.get_by_role("tab", name=f"Tutorial {slot}"))
        panel = page.get_by_role("tabpanel", name=f"Tutorial {slot}")
        commit_text(page, panel.get_by_label("Search the catalog"), query)
        click_and_wait(page, panel.get_by_role("button", name="This is my tutorial"))
        expect(panel.get_by_text("Your choice:")).to_be_visible(timeout=UI_TIMEOUT_MS)
        commit_text(page, panel.get_by_label("Minutes spent"), "90")
        first, last = TUTORIAL_DATES[slot]
        type_date(page, panel, "First day worked", first)
        type_date(page, panel, "Last day worked", last)
        commit_text(page, panel.get_by_label(NOTES_LABEL), TUTORIAL_NOTES[slot])
        area = panel.get_by_label("Reflection: one paragraph on working through this resource")
        commit_text(page, area, reflection)
        # The word count under the field is computed from the saved, committed text.
        words = quality.word_count(reflection)
        expect(panel.get_by_text(f"{words} words (aim")).to_be_visible(timeout=UI_TIMEOUT_MS)
    shot(page, folder, "tutorial-log")


def do_analysis(page: Page, folder: Path) -> None:
    """Answer Q1-Q3; each answer is committed and saved."""
    go_to(page, "Analysis", "Analysis")
    answer_areas = page.get_by_label("Your answer")
    expect(answer_areas).to_have_count(len(ANSWERS))
    for index, text in enumerate(ANSWERS.values()):
        commit_text(page, answer_areas.nth(index), text)
        words = quality.word_count(text)
        expect(page.get_by_text(f"{words} words", exact=True)).to_have_count(1)
    shot(page, folder, "analysis")


def do_notebook(page: Page, folder: Path) -> None:
    """Setup, one wrong attempt with a helpful message, then steps 1-6 passing."""
    go_to(page, "Logits notebook", "Logits in Causal Language Models")
    steps = {step.id: step for step in content.steps()}
    # The setup cell loads the model (seconds to a minute): the cell itself shows that it
    # runs, for how long, and what it is doing, and Run is not offered twice meanwhile.
    page.locator(".st-key-setup-run button").click()
    indicator = page.locator(".st-key-cell-setup").get_by_text(RUNNING_INDICATOR)
    expect(indicator).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(indicator).to_contain_text("loading the model")
    expect(page.locator(".st-key-step1-run button")).to_be_disabled()
    indicator.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(folder / "notebook-setup-running.png"))
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"The model has [\d,]+ parameters"))).to_be_visible(
        timeout=RUN_TIMEOUT_MS
    )
    # Only what the setup cell printed: no warnings from the server's own libraries.
    setup_text = page.locator(".st-key-cell-setup").inner_text()
    assert "Warning" not in setup_text and sys.prefix not in setup_text, setup_text
    for number in (1, 2):
        step = steps[f"step{number}"]
        verdict = run_step(page, step, step.solution)
        assert verdict.startswith("Check passed"), f"{step.title}: {verdict}"
    verdict = run_step(page, steps["step3"], wrong_step3(), passes=False)
    assert not verdict.startswith("Check passed"), verdict
    assert "last" in verdict.lower(), f"the message should point at the last position: {verdict}"
    shot(page, folder, "notebook-wrong-attempt")
    # A close-up of the step and its message, as the student sees it on screen.
    page.get_by_role("heading", name=steps["step3"].title).evaluate(
        "e => e.scrollIntoView({block: 'start'})"
    )
    page.screenshot(path=str(folder / "notebook-step3-wrong.png"))
    for number in (3, 4, 5):
        step = steps[f"step{number}"]
        verdict = run_step(page, step, step.solution)
        assert verdict.startswith("Check passed"), f"{step.title}: {verdict}"
    # Step 6, a function with comments, is written with the keyboard only.
    step6 = steps["step6"]
    verdict = run_step(page, step6, step6.solution, by_keyboard=True)
    assert verdict.startswith("Check passed"), f"{step6.title}: {verdict}"
    page.get_by_role("heading", name=step6.title).evaluate(
        "e => e.scrollIntoView({block: 'start'})"
    )
    page.screenshot(path=str(folder / "notebook-step6-editor.png"))
    shot(page, folder, "notebook")


def check_everything_kept(page: Page, folder: Path) -> None:
    """After a reload (a new browser session), every page shows the saved work."""
    page.reload()
    # A reload starts a new Streamlit session; the sign-in cookie keeps the student signed
    # in, on the page they were on.
    expect(page.get_by_role("heading", name="Analysis").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Sign in")).to_have_count(0)
    go_to(page, "Home", f"Welcome, {STUDENT_NAME}")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("6 / 6", exact=True)).to_be_visible()
    expect(main.get_by_text("2 / 2", exact=True)).to_be_visible()
    expect(main.get_by_text("3 / 3", exact=True)).to_be_visible()
    shot(page, folder, "home-student")

    go_to(page, "Analysis", "Analysis")
    areas = page.get_by_label("Your answer")
    for index, text in enumerate(ANSWERS.values()):
        expect(areas.nth(index)).to_have_value(text)

    go_to(page, "Tutorial log", "Tutorial log")
    for slot, (_query, reflection) in TUTORIALS.items():
        page.get_by_role("tab", name=f"Tutorial {slot}").click()
        panel = page.get_by_role("tabpanel", name=f"Tutorial {slot}")
        expect(panel.get_by_text("Your choice:")).to_be_visible()
        expect(
            panel.get_by_label("Reflection: one paragraph on working through this resource")
        ).to_have_value(reflection)
        expect(panel.get_by_label("Minutes spent")).to_have_value("90")
        first, last = TUTORIAL_DATES[slot]
        expect(panel.get_by_role("group", name="First day worked")).to_be_visible()
        assert (date_value(panel, "First day worked"), date_value(panel, "Last day worked")) == (
            first,
            last,
        )
        expect(panel.get_by_label(NOTES_LABEL)).to_have_value(TUTORIAL_NOTES[slot])

    go_to(page, "Logits notebook", "Logits in Causal Language Models")
    for step in content.steps():
        if not step.given:
            area = editor(page, step)
            expect(area).to_be_visible()
            assert editor_text(area) == step.solution, step.title
    # Each graded step's saved verdict is shown again under its saved output.
    expect(page.get_by_text(re.compile(r"^Check passed"))).to_have_count(6)


def do_export(page: Page, folder: Path) -> nbformat.NotebookNode:
    """Download the bundle from Submit; return the notebook inside (validated)."""
    go_to(page, "Submit", "Submit to Moodle")
    shot(page, folder, "submit")
    button = page.get_by_role("button", name=re.compile(r"^Download .*\.zip"))
    with page.expect_download(timeout=UI_TIMEOUT_MS) as info:
        button.click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    wait_rerun(page)
    expect(page.get_by_text(re.compile(r"^Recorded: .*SHA-256"))).to_be_visible()
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
        notebook_name = next(n for n in names if n.endswith(".ipynb"))
        notebook_data = bundle.read(notebook_name)
        text = bundle.read(next(n for n in names if n.endswith(".txt") and "moodle" in n))
    assert notebook_name.endswith(NOTEBOOK_NAME), names
    notebook = nbformat.read(io.BytesIO(notebook_data), as_version=4)
    nbformat.validate(notebook)  # raises ValidationError when the notebook is not valid
    # The student's work is in it: the last step's code and every answer.
    sources = "\n".join(cell.source for cell in notebook.cells)
    assert content.step("step6").solution.strip() in sources
    # Outputs hold only what the student's code printed, nothing of the server's.
    outputs = str([cell.get("outputs", []) for cell in notebook.cells])
    assert sys.prefix not in outputs and "TqdmWarning" not in outputs
    for answer in ANSWERS.values():
        # The notebook holds each answer escaped so that Jupyter renders it as typed.
        assert verbatim_markdown(answer) in sources
        assert answer in text.decode("utf-8")
    return notebook


def do_ta_review(browser: Browser, url: str, folder: Path) -> None:
    """A TA finds the student in the roster, writes feedback and releases it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        sign_in(page, url, TA_EMAIL, TA_PASSWORD)
        go_to(page, "TA review", "TA review")
        commit_text(page, page.get_by_label("Search name or email"), "lovelace")
        expect(page.get_by_text("1 of 1 students")).to_be_visible(timeout=UI_TIMEOUT_MS)
        shot(page, folder, "ta-roster")
        click_and_wait(page, page.locator(".st-key-review-roster-open_button button"))
        expect(page.get_by_text(f"{STUDENT_NAME} <{STUDENT_EMAIL}>")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        # Releasing without a grade is refused with a message; nothing typed is lost.
        commit_text(page, page.get_by_label("Overall comment", exact=True), FEEDBACK)
        click_and_wait(page, page.get_by_role("button", name="Release to student"))
        expect(page.get_by_text("Choose a grade before releasing")).to_be_visible()
        page.get_by_label("Grade", exact=True).click()
        click_and_wait(page, page.get_by_role("option", name=GRADE, exact=True))
        expect(page.get_by_label("Overall comment", exact=True)).to_have_value(FEEDBACK)
        # A comment on one item sits beside it; the grade, the overall comment and Release
        # stay in view while the TA reads down to it.
        step6_comment = page.get_by_label(re.compile(r"^Your comment on Step 6"), exact=False)
        step6_comment.scroll_into_view_if_needed()
        commit_text(page, step6_comment, STEP6_COMMENT)
        expect(page.get_by_label("Overall comment", exact=True)).to_be_in_viewport()
        expect(page.get_by_label("Grade", exact=True)).to_be_in_viewport()
        release = page.get_by_role("button", name="Release to student")
        expect(release).to_be_in_viewport()
        click_and_wait(page, release)
        expect(page.get_by_text("Released: the student sees this").first).to_be_visible()
        expect(step6_comment).to_have_value(STEP6_COMMENT)
        page.screenshot(path=str(folder / "ta-review.png"))
        shot(page, folder, "ta-review-full")
    except BaseException:
        page.screenshot(path=str(folder / "failure-ta.png"))
        raise
    finally:
        context.close()


def test_student_completes_the_homework_and_sees_released_ta_feedback(
    app: RunningApp, browser: Browser, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        register(page, app.url)
        shot(page, artifacts, "home-new-student")
        do_notebook(page, artifacts)
        do_tutorials(page, artifacts)
        do_analysis(page, artifacts)
        check_everything_kept(page, artifacts)
        # A staff page's URL tells the student plainly who it is for.
        page.goto(f"{app.url}/review")
        expect(page.get_by_text("This page is for course staff")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        expect(page.get_by_text("Page not found")).to_have_count(0)
        do_export(page, artifacts)

        do_ta_review(browser, app.url, artifacts)

        # The student's Home shows the released feedback after the next page load
        # (still signed in through the cookie).
        page.goto(app.url)
        expect(page.get_by_text("Feedback from your TA")).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.get_by_text(FEEDBACK)).to_be_visible()
        expect(page.get_by_text(STEP6_COMMENT)).to_be_visible()
        expect(page.get_by_text(f"Grade: {GRADE}")).to_be_visible()
        shot(page, artifacts, "home-feedback")
    except BaseException:
        page.screenshot(path=str(artifacts / "failure.png"))
        raise
    finally:
        context.close()


def test_code_in_a_cell_is_saved_after_a_pause_and_when_the_tab_is_hidden(
    app: RunningApp, browser: Browser, artifacts: Path
) -> None:
    """The code editor saves at the same moments as every other field, without a Run."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    step1 = content.step("step1")
    try:
        page.goto(app.url)
        page.get_by_role("tab", name="Register").click()
        page.get_by_label("Your name (as in Moodle)").fill("Grace Hopper")
        page.get_by_role("tabpanel").get_by_label("Email").fill("grace@example.org")
        page.get_by_label("Password (at least 8 characters)").fill("cobol-1959-compiler")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_text("Welcome, Grace Hopper")).to_be_visible(timeout=UI_TIMEOUT_MS)
        go_to(page, "Logits notebook", "Logits in Causal Language Models")
        area = editor(page, step1)
        cell = page.locator(".st-key-cell-step1")

        # A pause in typing saves; the cursor stays in the cell.
        area.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\n# paused here")
        expect(cell.get_by_text(re.compile(r"^✓ Saved at"))).to_be_visible(timeout=UI_TIMEOUT_MS)
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
            f"Your code for {step1.title}"
        )

        # Typing, then the tab goes to the background at once (no pause, no leaving the cell).
        page.keyboard.type("\n# then hid the tab")
        page.evaluate(
            "() => { Object.defineProperty(document, 'visibilityState', "
            "{value: 'hidden', configurable: true}); "
            "document.dispatchEvent(new Event('visibilitychange')); }"
        )
        wait_rerun(page)
        # A second tab, opened while the first stays open (so nothing else could have
        # saved it), reads the saved code.
        other = context.new_page()
        other.goto(f"{app.url}/notebook")
        area = editor(other, step1)
        expect(area).to_be_visible(timeout=UI_TIMEOUT_MS)
        text = editor_text(area)
        assert text.endswith("# paused here\n# then hid the tab"), text

    except BaseException:
        for open_page in context.pages:
            open_page.screenshot(path=str(artifacts / "failure-autosave.png"))
        raise
    finally:
        context.close()

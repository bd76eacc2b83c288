"""Logits notebook: the setup cell and steps 1-6, each run in the student's own kernel.

Code cells are a real code editor (``pages/code_editor.py``). A run happens in the
background (``pages/cell_runs.py``) while the page shows, at the cell, that it runs, for how
long, and its place in line when the server is busy; once it ends the page shows the result.
"""

from __future__ import annotations

import time

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from pages import cell_runs, code_editor, common, widgets
from workbook import exercise

wb = common.get_workbook()
user = common.require_user("student")
wb.warm_kernel(user.id)  # returns at once; a kernel is started (or adopted) in the background

# What a long given cell is doing while it runs (its code prints only at the end).
RUNNING_NOTES = {
    "setup": "Importing torch and transformers, then loading the model and its tokenizer "
    "(the first run after a restart takes up to a minute)…",
}
POLL_S = 0.5

ANCHOR = "step-"  # each cell's heading is #step-<id>
skip_to = st.empty()  # the skip link, filled in once the current step is known
st.title("Logits in Causal Language Models")
st.markdown(exercise.INTRODUCTION)
st.caption(
    "In a code cell: **Shift+Enter** (or Ctrl/Cmd+Enter) runs it, **Tab** / **Shift+Tab** "
    "indent, **Esc** then **Tab** moves on to the next control. Your code is saved as you type."
)

saved = wb.cells(user.id)
RUNS_KEY = "notebook:runs"  # step id -> the last CellRun shown in this session
SEEN_KEY = "notebook:seen_job"  # id of the last job whose results this session took in
ERRORS_KEY = "notebook:errors"  # step id -> a message about a run that could not happen
PRESSED_KEY = "notebook:pressed"  # key of the button that started the running job, if any
WATCHED_KEY = "notebook:watched_job"  # id of the last job this session started or saw running
runs: dict = st.session_state.setdefault(RUNS_KEY, {})
errors: dict = st.session_state.setdefault(ERRORS_KEY, {})
jobs = cell_runs.jobs()
steps = wb.steps()
titles = {step.id: step.title for step in steps}


def _take_in_finished(job: cell_runs.Job | None) -> bool:
    """Show a finished job's results in this session (once); say whether it was new."""
    if job is None or job.alive or st.session_state.get(SEEN_KEY) == job.id:
        return False
    st.session_state[SEEN_KEY] = job.id
    for run in job.runs:
        runs[run.step_id] = run
        errors.pop(run.step_id, None)
    if job.error:
        errors[job.step_ids[len(job.runs)]] = job.error
    return True


def _start(step_ids: list[str], code: str | None = None, pressed: str | None = None) -> None:
    job = jobs.start(wb, user.id, step_ids, code)
    if job is None:
        running = jobs.latest(user.id)
        name = titles.get(running.current or "", "A cell") if running else "A cell"
        st.toast(f"{name} is still running: wait for it to finish, then run again.")
        return
    st.session_state[PRESSED_KEY] = pressed
    st.session_state[WATCHED_KEY] = job.id
    for step_id in step_ids:
        errors.pop(step_id, None)


def _run(step_id: str) -> None:
    _start([step_id], st.session_state.get(f"{step_id}:code"), pressed=f"{step_id}:run")


def _run_code(step_id: str, code: str) -> None:
    _start([step_id], code)


def _run_all_above(step_id: str) -> None:
    above = [step.id for step in steps]
    _start(above[: above.index(step_id)], pressed=f"{step_id}:run_above")


def _restart() -> None:
    with common.friendly_errors():
        wb.restart_kernel(user.id)
        runs.clear()
        st.toast(
            "Kernel restarted: run the setup cell (or 'Run all above') to rebuild your variables."
        )


job = jobs.latest(user.id)
just_finished = _take_in_finished(job)
busy = job is not None and job.alive
# While a job runs, the run buttons are disabled, except the one the student pressed: a
# disabled button loses keyboard focus, and the student's focus must stay where it was
# (pressing it again only says the cell is still running).
pressed = st.session_state.get(PRESSED_KEY) if busy else None
if busy:
    st.session_state[WATCHED_KEY] = job.id
indicators: dict[str, DeltaGenerator] = {}


def _current_step() -> exercise.Step:
    """Where the student is: the running cell, else the first cell not run or not passing."""
    if busy and job.current in titles:
        return next(step for step in steps if step.id == job.current)
    for step in steps:
        run = runs.get(step.id)
        cell = saved.get(step.id)
        if run is not None:
            done = run.check.passed if run.check is not None else run.result.status == "ok"
        elif cell is not None and cell.outputs is not None:
            done = cell.passed is not False
        else:
            done = False
        if not done:
            return step
    return steps[-1]


# Keyboard and screen-reader users jump over the introduction to the cell they are on; the
# browser moves focus there, so the next Tab reaches that cell's editor or Run button.
current = _current_step()
skip_to.markdown(f"[Skip to the current step: {current.title}](#{ANCHOR}{current.id})")

for step in steps:
    st.divider()
    cell_box = st.container(key=f"cell-{step.id}")
    with cell_box:
        st.subheader(step.title, anchor=f"{ANCHOR}{step.id}")
        st.markdown(step.instructions)
        cell = saved.get(step.id)
        if step.given:
            # Wrapped: a code block that scrolls sideways cannot be scrolled from the keyboard
            # (Streamlit's block takes no focus; docs/accessibility.md), and it reflows at zoom.
            st.code(step.starter_code, language="python", wrap_lines=True)
        else:
            code_editor.code_editor(
                f"Your code for {step.title}",
                key=f"{step.id}:code",
                saved_code=cell.code if cell is not None else step.starter_code,
                save=lambda text, step_id=step.id: wb.save_code(user.id, step_id, text),
                on_run=lambda text, step_id=step.id: _run_code(step_id, text),
                min_lines=step.starter_code.count("\n") + 2,
            )
        buttons = st.columns([1, 1.4, 1.4, 5])
        buttons[0].button(
            "Run",
            key=f"{step.id}:run",
            on_click=_run,
            args=(step.id,),
            type="primary",
            disabled=busy and pressed != f"{step.id}:run",
        )
        if step is not steps[0]:
            buttons[1].button(
                "Run all above",
                key=f"{step.id}:run_above",
                on_click=_run_all_above,
                args=(step.id,),
                disabled=busy and pressed != f"{step.id}:run_above",
            )
        buttons[2].button(
            "Restart kernel", key=f"{step.id}:restart", on_click=_restart, disabled=busy
        )
        indicators[step.id] = st.empty()
        if step.id in errors:
            st.error(errors[step.id])
        run = runs.get(step.id)
        if run is not None:
            widgets.render_run(run)
        elif cell is not None and cell.outputs is not None:
            st.caption("Output from your last run (saved):")
            widgets.render_outputs(cell.outputs)
            if cell.passed is not None:
                widgets.render_check(cell.passed, cell.message or "")


# Screen readers hear a run's verdict once it ends, and while it runs each change of state
# (running, or waiting and the place in line), once, through the page's live region. The
# seconds counter on screen is not a live region: it would be read out every second. A run
# that ended before this session saw it (a reload after it finished) is shown, not spoken again.
spoken = st.empty()
if just_finished and st.session_state.get(WATCHED_KEY) == job.id:
    with spoken:
        widgets.announce(
            cell_runs.verdict(job, titles), key=f"notebook:said:job{job.id}", once=f"job{job.id}"
        )

# While a run goes on, the page is fully drawn; only the running cell's indicator changes.
if busy:
    said = None
    while job.alive:
        state = wb.run_state(user.id)
        step_id, text = cell_runs.describe(job, state, titles, RUNNING_NOTES)
        if step_id in indicators:
            indicators[step_id].container(border=True).markdown(text)
        sentence, said_id = cell_runs.spoken(job, state, titles)
        if said_id != said:
            said = said_id
            with spoken:
                widgets.announce(sentence, key=f"notebook:said:{said_id}", once=said_id)
        time.sleep(POLL_S)
    st.rerun()

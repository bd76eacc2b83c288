"""Logits notebook: the setup cell and steps 1-6, each run in the student's own kernel."""

from __future__ import annotations

import streamlit as st

from pages import common, widgets
from workbook import exercises

wb = common.get_workbook()
user = common.require_user("student")
widgets.install_autosave()
# Code cells read better in a monospace font (this page's only text areas are code cells).
st.html("<style>textarea { font-family: 'Source Code Pro', monospace !important; }</style>")

st.title("Logits in Causal Language Models")
st.markdown(exercises.INTRODUCTION)

saved = wb.cells(user.id)
RUNS_KEY = "notebook:runs"  # step id -> the last CellRun shown in this session
runs: dict = st.session_state.setdefault(RUNS_KEY, {})


def _run(step_id: str) -> None:
    code = st.session_state.get(f"{step_id}:code")
    with common.friendly_errors():
        runs[step_id] = wb.run_step(user.id, step_id, code)


def _run_all_above(step_id: str) -> None:
    with common.friendly_errors():
        for run in wb.run_all_above(user.id, step_id):
            runs[run.step_id] = run


def _restart() -> None:
    with common.friendly_errors():
        wb.restart_kernel(user.id)
        runs.clear()
        st.toast(
            "Kernel restarted: run the setup cell (or 'Run all above') to rebuild your variables."
        )


steps = wb.steps()
for step in steps:
    st.divider()
    st.subheader(step.title)
    st.markdown(step.instructions)
    cell = saved.get(step.id)
    if step.given:
        st.code(step.starter_code, language="python")
    else:
        widgets.autosave_text_area(
            f"Your code for {step.title}",
            key=f"{step.id}:code",
            saved_value=cell.code if cell is not None else step.starter_code,
            save=lambda text, step_id=step.id: wb.save_code(user.id, step_id, text),
            height=max(160, 22 * (step.starter_code.count("\n") + 2)),
        )
    buttons = st.columns([1, 1.4, 1.4, 5])
    buttons[0].button("Run", key=f"{step.id}:run", on_click=_run, args=(step.id,), type="primary")
    if step is not steps[0]:
        buttons[1].button(
            "Run all above", key=f"{step.id}:run_above", on_click=_run_all_above, args=(step.id,)
        )
    buttons[2].button("Restart kernel", key=f"{step.id}:restart", on_click=_restart)

    run = runs.get(step.id)
    if run is not None:
        widgets.render_run(run)
    elif cell is not None and cell.outputs is not None:
        st.caption("Output from your last run (saved):")
        widgets.render_outputs(cell.outputs)
        if cell.passed is not None:
            widgets.render_check(cell.passed, cell.message or "")

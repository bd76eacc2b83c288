"""Analysis: the three free-text questions Q1-Q3, autosaved, with live hints and history."""

from __future__ import annotations

import streamlit as st

from pages import common, widgets
from workbook import exercise
from workbook.quality import answer_hints, word_count

wb = common.get_workbook()
user = common.require_user("student")
widgets.install_autosave()

st.title("Analysis")
st.markdown(
    "Answer the three questions in your own words. Everything you type is saved as you "
    "work; the **Submit** page later puts each question above your answer, so a TA can "
    "tell them apart when you paste them into Moodle. The hints below your answer are "
    "suggestions to look again, not a grade."
)

store = wb.store


def _seen_key(key: str) -> str:
    # The saved text this session last knew about, to notice a save from another tab.
    return f"{key}:seen"


def _save(question_id: str, key: str, text: str) -> None:
    store.save_answer(user.id, question_id, text)
    st.session_state[_seen_key(key)] = text


def _use_saved(key: str, text: str) -> None:
    st.session_state[key] = text
    st.session_state[_seen_key(key)] = text


def _restore(question_id: str, key: str, text: str) -> None:
    # Restoring appends the old text as a new revision: the current one stays in history.
    try:
        _save(question_id, key, text)
    except Exception as exc:  # noqa: BLE001 - shown to the student; nothing is lost
        st.session_state[f"{key}:status"] = ("error", f"Not restored: {exc}")
        return
    st.session_state[key] = text
    st.session_state[f"{key}:status"] = ("ok", "Earlier version restored")


answers = store.answers_for(user.id)
for question in exercise.questions():
    key = f"analysis:{question.id}"
    latest = answers.get(question.id)
    saved_text = latest.text if latest is not None else ""

    st.divider()
    st.subheader(question.title)
    st.markdown(question.prompt)
    with st.expander("Hint"):
        st.markdown(question.hint)

    seen = st.session_state.setdefault(_seen_key(key), saved_text)
    if saved_text != seen:
        if saved_text == st.session_state.get(key, saved_text):
            st.session_state[_seen_key(key)] = saved_text
        else:
            when = latest.created_at.astimezone().strftime("%H:%M:%S")
            st.info(
                f"A newer version of this answer was saved at {when}, in another tab or "
                "window. The text below is this tab's. Keep typing here and your next save "
                "wins (the other version stays in the history below), or load the newer one."
            )
            st.button(
                "Load the newer version",
                key=f"{key}:load_newer",
                on_click=_use_saved,
                args=(key, saved_text),
            )

    text = widgets.autosave_text_area(
        "Your answer",
        key=key,
        saved_value=saved_text,
        save=lambda value, qid=question.id, k=key: _save(qid, k, value),
        height=180,
    )
    st.caption(f"{word_count(text)} words")
    for hint in answer_hints(question.id, text):
        if hint.level == "missing":
            st.caption(f"○ {hint.message}")
        else:
            st.warning(hint.message, icon="💡")

    history = store.answer_history(user.id, question.id)
    if len(history) > 1:
        with st.expander(f"Earlier versions ({len(history) - 1})"):
            for revision in reversed(history[:-1]):
                stamp = revision.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
                st.caption(f"Saved {stamp} · {word_count(revision.text)} words")
                st.text(revision.text or "(empty)")
                st.button(
                    "Restore this version",
                    key=f"{key}:restore:{revision.id}",
                    on_click=_restore,
                    args=(question.id, key, revision.text),
                )

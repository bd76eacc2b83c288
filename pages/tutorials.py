"""Tutorial log (Part A): two PyTorch tutorials from two sections, or the mini-project.

Every field saves itself when it changes (no Save button); the rules in
``workbook.tutorials`` say what is still missing, in plain words.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import streamlit as st

from pages import common, widgets
from workbook import WorkbookError, tutorials
from workbook.quality import MIN_REFLECTION_WORDS, reflection_hints, word_count
from workbook.tutorials import OTHER_CATEGORY, Catalog, CatalogError, Tutorial, guidance_for
from workbook.tutorials import load_catalog as _load_catalog

wb = common.get_workbook()
user = common.require_user("student")
widgets.install_autosave()
store = wb.store

try:
    catalog: Catalog = _load_catalog(wb.settings.catalog_path)
except CatalogError as exc:
    st.error(f"The tutorial catalog cannot be shown: {exc}")
    st.stop()

LEVEL_ICONS = {"error": "❌", "warning": "⚠️", "tip": "💡"}
GUIDANCE_ICONS = {"recommended": "👍", "rule": "📌", "caution": "⚠️", "advanced": "🚀"}
PATH_LABELS = {
    "tutorials": "Two PyTorch tutorials (from two different sections)",
    "project": "The classifier-from-scratch mini-project instead",
}

st.title("Tutorial log")
st.markdown(
    "Pick **two** resources from the [PyTorch tutorials](https://pytorch.org/tutorials/) "
    "site, from **two different sections** of its left menu, work through them, and write "
    "**one paragraph** about each. The aim is to learn, not to get through: say which "
    "concepts you reviewed or learned. Everything you type here is saved as you work."
)


# --- saving ----------------------------------------------------------------------------
def _saving(key: str, action: Callable[[], object]) -> None:
    """Run a save from a widget callback; a refusal is shown under the field (``key``)."""
    widgets.note_save(action, f"{key}:status")


def _show_status(key: str) -> None:
    widgets.show_save_note(f"{key}:status")


def _save_entry(slot: str, key: str, **changes: object) -> None:
    _saving(key, lambda: tutorials.update_entry(store, user.id, slot, **changes))


def _save_field(slot: str, key: str, field: str) -> None:
    _save_entry(slot, key, **{field: st.session_state[key]})


def _save_minutes(slot: str, key: str) -> None:
    def action() -> None:
        tutorials.update_entry(
            store, user.id, slot, minutes=tutorials.parse_minutes(st.session_state[key])
        )

    _saving(key, action)


def _save_dates(slot: str, key: str) -> None:
    """Save the first and last day worked, each as soon as it is picked or typed."""

    def action() -> None:
        first = st.session_state.get(f"{key}:first")
        last = st.session_state.get(f"{key}:last")
        if first is not None and last is not None and last < first:
            raise WorkbookError("The last day is before the first day: change one of them.")
        chosen = [d for d in (first, last) if d is not None]
        if len(chosen) == 2 and chosen[0] == chosen[1]:
            chosen = chosen[:1]
        tutorials.update_entry(store, user.id, slot, dates=[d.isoformat() for d in chosen])

    _saving(key, action)


def _choose(slot: str, tutorial: Tutorial, section: str | None) -> None:
    category = section or tutorial.category
    key = f"tut{slot}:pick"
    _save_entry(
        slot, key, category=category, title=tutorial.title, url=tutorial.url, from_catalog=True
    )
    # The "not in the catalog" fields start again from the saved choice.
    for field in ("title", "url", "category"):
        st.session_state.pop(f"tut{slot}:{field}", None)


def _set_path() -> None:
    _saving("tut:path", lambda: tutorials.set_path(store, user.id, st.session_state["tut:path"]))


def _text_area(label: str, key: str, saved: str, save: Callable[[str], object], **kw) -> str:
    """An autosaving text area that also notices a newer save from another tab."""
    seen_key = f"{key}:seen"
    seen = st.session_state.setdefault(seen_key, saved)
    if saved != seen:
        if saved == st.session_state.get(key, saved):
            st.session_state[seen_key] = saved
        else:
            st.info(
                "A newer version of this text was saved in another tab or window. The text "
                "below is this tab's: keep typing and your next save wins (the other version "
                "stays in the history), or load the newer one."
            )

            def _load() -> None:
                st.session_state[key] = saved
                st.session_state[seen_key] = saved

            st.button("Load the newer version", key=f"{key}:load_newer", on_click=_load)

    def _save(text: str) -> None:
        save(text)
        st.session_state[seen_key] = text

    return widgets.autosave_text_area(label, key=key, saved_value=saved, save=_save, **kw)


def _reflection_feedback(text: str) -> None:
    words = word_count(text)
    st.caption(f"{words} words (aim for at least {MIN_REFLECTION_WORDS})")
    for hint in reflection_hints(text):
        if hint.level == "missing":
            st.caption(f"○ {hint.message}")
        else:
            st.warning(hint.message, icon="💡")


def _guidance(category: str, tutorial: Tutorial | None = None) -> None:
    advice = guidance_for(category, tutorial)
    if advice is not None:
        icon = GUIDANCE_ICONS.get(advice.kind, "ℹ️")
        st.markdown(f"{icon} **Course advice for {advice.category}:** {advice.text}")


# --- the two paths ------------------------------------------------------------------------
def _catalog_picker(slot: str, entry) -> None:
    query = st.text_input(
        "Search the catalog", key=f"tut{slot}:search", placeholder="e.g. autograd, images"
    )
    sections = st.multiselect(
        "Sections of the left menu",
        catalog.filter_categories(),
        key=f"tut{slot}:filter",
        placeholder="All sections",
    )
    for section in sections:
        _guidance(section)
    results = catalog.search(query, sections)
    if not results:
        st.info("No tutorial matches. Try fewer words, or add it under 'Not in the catalog'.")
        return
    current = next((i for i, t in enumerate(results) if entry and t.url == entry.url), 0)
    picked: Tutorial = st.selectbox(
        f"{len(results)} matching tutorial(s)",
        results,
        index=current,
        key=f"tut{slot}:result",
        format_func=lambda t: f"{t.title}  ·  {t.category}",
    )
    st.markdown(f"[{picked.title}]({picked.url})  \n{picked.description}")
    _guidance(picked.category, picked)
    section = None
    if picked.category == OTHER_CATEGORY:
        # The catalog could not tell which menu section this card is in; the rule about two
        # different sections needs it, so the student says where they found it.
        section = st.selectbox(
            "Which section of the left menu is it in?",
            catalog.categories,
            index=None,
            key=f"tut{slot}:other_section",
            placeholder="Pick the section",
        )
    is_current = entry is not None and entry.url == picked.url and entry.from_catalog
    st.button(
        "This is my tutorial" if not is_current else "✓ Your current choice",
        key=f"tut{slot}:choose",
        on_click=_choose,
        args=(slot, picked, section),
        disabled=is_current or (picked.category == OTHER_CATEGORY and section is None),
        type="primary",
    )
    _show_status(f"tut{slot}:pick")


def _custom_fields(slot: str, entry) -> None:
    for field, label, placeholder in (
        ("title", "Title", "The resource's title"),
        ("url", "Link", "https://…"),
    ):
        key = f"tut{slot}:{field}"
        st.session_state.setdefault(key, getattr(entry, field) if entry else "")
        st.text_input(
            label,
            key=key,
            placeholder=placeholder,
            on_change=lambda k=key, f=field: _save_entry(
                slot, k, **{f: st.session_state[k], "from_catalog": False}
            ),
        )
        _show_status(key)
    key = f"tut{slot}:category"
    saved_category = entry.category if entry else None
    st.selectbox(
        "Section of the left menu",
        catalog.categories,
        index=(
            catalog.categories.index(saved_category)
            if saved_category in catalog.categories
            else None
        ),
        key=key,
        placeholder="Pick the section",
        on_change=lambda: _save_entry(
            slot, key, category=st.session_state[key] or "", from_catalog=False
        ),
    )
    _show_status(key)
    if st.session_state.get(key):
        _guidance(st.session_state[key])


def _tutorial_slot(slot: str, entry, issues: list[tutorials.Issue]) -> None:
    if entry is not None and entry.title:
        st.markdown(
            f"**Your choice:** [{entry.title}]({entry.url or '#'})  ·  "
            f"{entry.category or 'section not chosen yet'}"
        )
    for issue in issues:
        if issue.slot == slot and issue.level == "tip":
            st.info(issue.message, icon="💡")

    source_key = f"tut{slot}:source"
    st.session_state.setdefault(
        source_key, "custom" if entry is not None and not entry.from_catalog else "catalog"
    )
    source = st.radio(
        "Where is it from?",
        ["catalog", "custom"],
        key=source_key,
        horizontal=True,
        format_func={"catalog": "From the catalog", "custom": "Not in the catalog"}.get,
    )
    with st.container(border=True):
        if source == "catalog":
            _catalog_picker(slot, entry)
        else:
            _custom_fields(slot, entry)

    left, right = st.columns(2)
    minutes_key = f"tut{slot}:minutes"
    st.session_state.setdefault(
        minutes_key, "" if entry is None or entry.minutes is None else str(entry.minutes)
    )
    with left:
        st.text_input(
            "Minutes spent",
            key=minutes_key,
            placeholder="e.g. 90, 1h 30 or 1:30",
            on_change=_save_minutes,
            args=(slot, minutes_key),
        )
        _show_status(minutes_key)
    dates_key = f"tut{slot}:dates"
    saved_dates = tuple(dt.date.fromisoformat(d) for d in (entry.dates if entry else ()))
    # Two single-date fields rather than one range: a range is sent to the server only
    # when both ends are chosen and the calendar closes, and a reload in between lost it.
    # A single date is sent the moment it is picked (or typed), like every other field.
    st.session_state.setdefault(f"{dates_key}:first", saved_dates[0] if saved_dates else None)
    st.session_state.setdefault(f"{dates_key}:last", saved_dates[-1] if saved_dates else None)
    with right:
        first_col, last_col = st.columns(2)
        for column, end, label in (
            (first_col, "first", "First day worked"),
            (last_col, "last", "Last day worked"),
        ):
            column.date_input(
                label,
                key=f"{dates_key}:{end}",
                on_change=_save_dates,
                args=(slot, dates_key),
                format="YYYY-MM-DD",
            )
        _show_status(dates_key)

    _text_area(
        "Private notes while you work (only you and your TA see them; not part of the reflection)",
        key=f"tut{slot}:notes",
        saved=entry.notes if entry else "",
        save=lambda text: tutorials.update_entry(store, user.id, slot, notes=text),
        height=120,
    )
    reflection = _text_area(
        "Reflection: one paragraph on working through this resource",
        key=f"tut{slot}:reflection",
        saved=entry.reflection if entry else "",
        save=lambda text: tutorials.update_entry(store, user.id, slot, reflection=text),
        height=220,
        placeholder=(
            "Which concepts did you review or learn? What was new, what surprised you, "
            "what did you try yourself, what would you look up next?"
        ),
    )
    _reflection_feedback(reflection)


def _project(project) -> None:
    st.markdown(
        "Instead of two tutorials you may log the optional **classifier from scratch** "
        "mini-project from the earlier unit: what you built, a link or the notebook, and "
        "one reflection paragraph."
    )
    _text_area(
        "What you built (data, model, how well it did)",
        key="project:description",
        saved=project.description if project else "",
        save=lambda text: tutorials.update_project(store, user.id, description=text),
        height=150,
    )
    key = "project:link"
    st.session_state.setdefault(key, project.link if project else "")
    st.text_input(
        "Link (Colab, GitHub, …)",
        key=key,
        placeholder="https://…",
        on_change=lambda: _saving(
            key, lambda: tutorials.update_project(store, user.id, link=st.session_state[key])
        ),
    )
    _show_status(key)

    def _upload() -> None:
        file = st.session_state.get("project:upload")
        if file is not None:
            _saving(
                "project:upload",
                lambda: tutorials.update_project(
                    store, user.id, notebook_name=file.name, notebook_bytes=file.getvalue()
                ),
            )

    st.file_uploader(
        "…or upload the notebook", type=["ipynb"], key="project:upload", on_change=_upload
    )
    _show_status("project:upload")
    if project is not None and project.notebook_name:
        cols = st.columns([3, 1])
        cols[0].download_button(
            f"📓 {project.notebook_name} (saved)",
            data=project.notebook_bytes or b"",
            file_name=project.notebook_name,
            key="project:download",
        )
        cols[1].button(
            "Remove",
            key="project:remove",
            on_click=lambda: _saving(
                "project:upload",
                lambda: tutorials.update_project(store, user.id, notebook_bytes=b""),
            ),
        )
    reflection = _text_area(
        "Reflection: one paragraph on the project",
        key="project:reflection",
        saved=project.reflection if project else "",
        save=lambda text: tutorials.update_project(store, user.id, reflection=text),
        height=220,
        placeholder="Which concepts did you practise or learn? What was hard, what surprised you?",
    )
    _reflection_feedback(reflection)


# --- the page -----------------------------------------------------------------------------
log = store.tutorial_log(user.id)
issues = tutorials.check_log(log, catalog.categories)

with st.expander("What the course says about each section"):
    for category in catalog.categories:
        advice = guidance_for(category)
        if advice is not None:
            st.markdown(f"{GUIDANCE_ICONS.get(advice.kind, 'ℹ️')} **{category}:** {advice.text}")
    st.caption("Sections not listed: any tutorial is fine if it teaches you something new.")

path = st.radio(
    "Your path",
    list(PATH_LABELS),
    key="tut:path",
    index=list(PATH_LABELS).index(log.path) if log.path in PATH_LABELS else None,
    format_func=PATH_LABELS.get,
    on_change=_set_path,
)
_show_status("tut:path")

if path == "tutorials":
    tabs = st.tabs([f"Tutorial {slot}" for slot in tutorials.SLOTS])
    for slot, tab in zip(tutorials.SLOTS, tabs, strict=True):
        with tab:
            _tutorial_slot(slot, log.entries.get(slot), issues)
elif path == "project":
    _project(log.project)

if path is not None:
    st.divider()
    st.subheader("Before you submit")
    blocking = [i for i in issues if i.level != "tip"]
    if not blocking:
        st.success("This part is complete.")
    for issue in blocking:
        st.markdown(f"{LEVEL_ICONS[issue.level]} {issue.message}")

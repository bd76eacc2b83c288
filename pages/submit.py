"""Submit: the pre-submission checklist, the online text for Moodle, the bundle download.

The work is gathered once per run (``workbook.submission.gather_submission``); the checklist,
the preview and the zip all describe that same snapshot. Only a notebook that would not
validate blocks the download; every other item is a warning with a link to where it is
fixed. Each download is recorded in the database with the notebook's SHA-256.
"""

from __future__ import annotations

import streamlit as st

from db import DbError
from pages import common
from workbook.submission import (
    BLOCKER,
    NOTEBOOK_NAME,
    build_bundle,
    gather_submission,
    moodle_html,
    moodle_text,
    run_checklist,
)
from workbook.tutorials import CatalogError, load_catalog

wb = common.get_workbook()
user = common.require_user("student")

st.title("Submit to Moodle")
st.markdown(
    "You hand in two things in the course's Moodle assignment: the notebook "
    f"**`{NOTEBOOK_NAME}`** as a file, and your **Analysis answers and tutorial "
    "reflections** pasted into the online-text box. Check the list below, download the "
    "bundle, then follow `HOW-TO-SUBMIT.txt` inside it."
)

EXPORT_STATUS = "submit:export_status"


def _categories() -> tuple[str, ...] | None:
    try:
        return load_catalog(wb.settings.catalog_path).categories
    except CatalogError:
        # Without the catalog the category check is skipped; the rest still works.
        return None


def _record(file_name: str, sha256: str) -> None:
    """Download callback: record the export the student just received."""
    try:
        wb.lti.record_export(user.id, file_name, sha256)
    except DbError as exc:
        st.session_state[EXPORT_STATUS] = ("error", f"The download was not recorded: {exc}")
    else:
        st.session_state[EXPORT_STATUS] = (
            "ok",
            f"Recorded: {file_name} (notebook SHA-256 {sha256})",
        )


submission = None
with common.friendly_errors():
    submission = gather_submission(wb.store, user.id, model_name=wb.settings.model_name)
if submission is None:
    st.stop()
result = run_checklist(submission, wb.store.tutorial_log(user.id), categories=_categories())

# --- 1. the checklist ------------------------------------------------------------------
st.header("1. Check before you export")
if not result.items:
    st.success("Everything the TAs look for is there. Your submission looks ready.")
else:
    st.markdown(
        f"**{len(result.warnings)} thing(s) to look at again.** They are suggestions: you "
        "can still export, but each one is something TAs have taken marks off for."
    )
for number, item in enumerate(result.items, start=1):
    with st.container(border=True, key=f"submit:item:{number}"):
        if item.severity == BLOCKER:
            st.error(item.message, icon="⛔")
        else:
            st.warning(item.message, icon="⚠️")
        st.page_link(item.page, label=item.link_label, icon="➡️")

# --- 2. the bundle ---------------------------------------------------------------------
st.header("2. Download the bundle")
bundle = None
if result.can_export:
    with common.friendly_errors():
        bundle = build_bundle(submission)
else:
    st.error(
        "The notebook cannot be exported until the problem marked ⛔ above is fixed. "
        "Everything you wrote is saved."
    )
if bundle is not None:
    st.markdown(
        f"The zip holds `{NOTEBOOK_NAME}`, `moodle-text.html`, `moodle-text.txt` and "
        "`HOW-TO-SUBMIT.txt`. Attach the **.ipynb** as the file submission; paste the text "
        "into the online-text box."
    )
    st.download_button(
        f"Download {bundle.file_name}",
        data=bundle.data,
        file_name=bundle.file_name,
        mime="application/zip",
        key="submit:download",
        type="primary",
        icon="📦",
        on_click=_record,
        args=(bundle.file_name, bundle.notebook_sha256),
    )
status = st.session_state.get(EXPORT_STATUS)
if status is not None:
    kind, text = status
    (st.success if kind == "ok" else st.error)(text)

exports = wb.store.exports_for(user.id)
if exports:
    with st.expander(f"Your exports ({len(exports)})"):
        for record in reversed(exports):
            st.markdown(
                f"- {record.created_at:%Y-%m-%d %H:%M} UTC · `{record.file_name}` · "
                f"notebook SHA-256 `{record.sha256}`"
            )

# --- 3. the online text ----------------------------------------------------------------
st.header("3. The text for Moodle's online-text box")
page_html = bundle.html if bundle is not None else moodle_html(submission)
page_text = bundle.text if bundle is not None else moodle_text(submission)
st.markdown(
    "In Moodle's editor, switch to the HTML view (the **</>** button), paste the HTML "
    "below, and switch back. If your editor has no HTML view, paste the plain text. "
    "The copy icon at the top right of each box copies all of it in one click."
)
preview, as_html, as_text = st.tabs(["Preview", "HTML (copy this)", "Plain text"])
with preview, st.container(border=True, key="submit:preview"):
    st.html(page_html)
with as_html:
    st.code(page_html, language="html", wrap_lines=True)
with as_text:
    st.code(page_text, language=None, wrap_lines=True)

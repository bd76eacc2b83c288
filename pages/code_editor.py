"""The notebook's code editor: CodeMirror 6 as a Streamlit component (components v2).

The editor itself is one ES module, ``static/code_editor.js``, bundled from npm packages by
``frontend/code_editor`` (see its ``package.json``; rebuild with ``npm ci && npm run build``)
and committed, so the app needs no network and no Node.js to run. Streamlit serves it from
``static/`` (``server.enableStaticServing`` in ``.streamlit/config.toml``); the few lines of
JavaScript registered here load it in the page (components v2 run in the page, not in an
iframe) and hand it the component.

What the editor sends back:

- a *save* (state ``code``) after a pause in typing, when the cell loses focus, and when the
  tab is hidden or closed: the same moments the text areas' autosave commits elsewhere;
- a *run* (trigger ``run``, carrying the text) on Shift+Enter or Ctrl/Cmd+Enter; the text
  is saved as well, whether or not the run can start.

The editor keeps its own text once mounted; it does not follow a save made in another tab
(the bundle still reads a ``reset`` field that the page never sends: a leftover, to go at
its next rebuild).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import streamlit as st

from pages import widgets

ASSET = Path(__file__).resolve().parents[1] / "static" / "code_editor.js"

# Loads the bundled editor once per page and mounts it. The import is asynchronous; the
# returned clean-up tells a late import that its cell is gone.
_LOADER_JS = """
export default function(component) {
  let cleanup = null;
  let gone = false;
  const url = new URL(component.data.asset, document.baseURI).href;
  import(url).then((module) => {
    if (!gone) { cleanup = module.default(component); }
  }).catch((error) => {
    const note = document.createElement("pre");
    note.textContent = "The code editor could not load (" + error + "). Reload the page.";
    component.parentElement.appendChild(note);
  });
  return () => { gone = true; if (cleanup) { cleanup(); } };
}
"""

_editor = st.components.v2.component("workbook_code_editor", js=_LOADER_JS, isolate_styles=False)


@cache
def _asset_url() -> str:
    """The bundle's URL, relative to the page, with a content hash so browsers never keep a
    stale copy after an upgrade."""
    digest = hashlib.sha256(ASSET.read_bytes()).hexdigest()[:12]
    return f"app/static/{ASSET.name}?v={digest}"


def code_editor(
    label: str,
    *,
    key: str,
    saved_code: str,
    save: Callable[[str], object],
    on_run: Callable[[str], None],
    min_lines: int = 4,
) -> str:
    """A code cell: edits are saved through ``save``; Shift+Enter calls ``on_run``.

    ``st.session_state[key]`` holds the cell's latest text (starting from ``saved_code``
    in a new session), so the page's Run button runs what the student sees.

    Args:
        label: the accessible name of the editor (what a screen reader announces).
        key: the session-state key of the text; the component's own key derives from it.
        saved_code: what the database holds for this cell.
        save: stores the text; a failure is shown under the cell and the text stays.
        on_run: runs the cell with the given text (called from the component's callback).
        min_lines: the editor's height when the code is shorter.

    Returns:
        The cell's current text.
    """
    if key not in st.session_state:
        st.session_state[key] = saved_code
    editor_key = f"{key}:editor"
    status_key = f"{key}:status"

    def _store(text: str) -> None:
        st.session_state[key] = text
        widgets.save_and_note(save, text, status_key)

    def _on_code() -> None:
        text = st.session_state[editor_key].get("code")
        if isinstance(text, str) and text != st.session_state[key]:
            _store(text)

    def _on_run() -> None:
        text = st.session_state[editor_key].get("run")
        if isinstance(text, str):
            # Save before running: the editor counts a run's text as sent, so a run that is
            # refused (another still going) must not leave it unsaved. When the run goes
            # ahead, its own save of the same text adds no revision.
            _store(text)
            on_run(text)

    _editor(
        key=editor_key,
        data={
            "asset": _asset_url(),
            "code": st.session_state[key],
            "label": label,
            "minLines": min_lines,
        },
        on_code_change=_on_code,
        on_run_change=_on_run,
    )
    widgets.show_save_note(status_key)
    return st.session_state[key]

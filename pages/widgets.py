"""Small reusable widgets for the pages: autosaving text areas and output rendering."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

# Streamlit sends a text area's value when it loses focus (or on Ctrl+Enter), and a typed
# date only when focus leaves the whole date field. This script, mounted once per page,
# makes that happen while a student works: after a short pause in typing, and when the tab
# is hidden or closed, it briefly blurs the focused field so the value is committed and
# saved, then puts the cursor back where it was. Date fields are rows of editable
# "spinbutton" segments (year, month, day) that take keys without firing input events, so
# a key press in one starts the same pause. The notebook's code editor saves by itself.
_FLUSH_JS = """
export default function(component) {
  if (window.__workbookFlushInstalled) { return; }
  window.__workbookFlushInstalled = true;
  let timer = null;
  const pressOutside = (...types) => {
    for (const type of types) {
      const Event = type.startsWith("pointer") ? PointerEvent : MouseEvent;
      document.body.dispatchEvent(new Event(type, { bubbles: true }));
    }
  };
  const isDateSegment = (el) => !!el && el.getAttribute && el.getAttribute("role") === "spinbutton";
  const dateComplete = (el) => {
    const field = el.closest("[role=group]") || el.parentElement;
    return [...field.querySelectorAll("[role=spinbutton]")].every(
      (segment) => segment.getAttribute("aria-valuetext") !== "Empty"
    );
  };
  const flush = (refocus) => {
    const el = document.activeElement;
    if (!el || (el.tagName !== "TEXTAREA" && el.tagName !== "INPUT" && !isDateSegment(el))) {
      return;
    }
    if (isDateSegment(el) && !dateComplete(el)) { return; }  // a half-typed date would be reset
    const start = el.selectionStart, end = el.selectionEnd;
    if (isDateSegment(el)) {
      // A date field commits on a press outside it; a bare blur() is not enough.
      pressOutside("pointerdown", "mousedown");
      el.blur();
      pressOutside("pointerup", "mouseup");
    } else {
      el.blur();
    }
    if (refocus) {
      setTimeout(() => {
        el.focus();
        try { el.setSelectionRange(start, end); } catch (e) { /* not a text field */ }
      }, 0);
    }
  };
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(() => flush(true), 2500);
  };
  document.addEventListener("input", later, true);
  document.addEventListener("keyup", (event) => {
    if (isDateSegment(event.target)) { later(); }
  }, true);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") { flush(false); }
  });
  window.addEventListener("pagehide", () => flush(false));
}
"""

_flusher = st.components.v2.component("workbook_autosave_flush", js=_FLUSH_JS)

# A save is shown as a caption, which screen readers do not announce. This script keeps one
# polite live region (role=status) on the page's <body>, outside Streamlit's tree, so that it
# survives reruns, and puts each new message in it once: a region that exists before its
# text changes is what screen readers reliably read out.
_ANNOUNCE_JS = """
export default function(component) {
  const { data } = component;
  let region = document.getElementById("wb-live-status");
  if (!region) {
    region = document.createElement("div");
    region.id = "wb-live-status";
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    region.style.cssText = "position:absolute;width:1px;height:1px;overflow:hidden;" +
      "clip:rect(0 0 0 0);white-space:nowrap;";
    document.body.appendChild(region);
  }
  const said = window.__workbookAnnounced || (window.__workbookAnnounced = new Set());
  const id = data && (data.id || data.text);
  if (id && data.text && !said.has(id)) {
    said.add(id);
    region.textContent = data.text;
  }
}
"""

_announcer = st.components.v2.component("workbook_announce", js=_ANNOUNCE_JS)


def announce(text: str, *, key: str, once: str | None = None) -> None:
    """Have screen readers read ``text`` out once (politely), without showing anything.

    Args:
        text: the message.
        key: the component's key (unique in the script run).
        once: the message's id: an id is announced once per browser tab, on the first run
            that draws it, not again on later reruns (default: the text itself).
    """
    _announcer(key=key, data={"text": text, "id": once or text}, height=0)


def install_autosave() -> None:
    """Mount the flush script once on the current page (invisible)."""
    _flusher(key="workbook:autosave-flush", height=0)


def autosave_text_area(
    label: str,
    *,
    key: str,
    saved_value: str,
    save: Callable[[str], object],
    height: int = 200,
    help: str | None = None,
    placeholder: str | None = None,
) -> str:
    """A text area whose every committed change is saved through ``save``.

    The widget starts from ``saved_value`` (what the database holds) the first time it is
    drawn in a session. ``save`` is called from the widget's change callback, so a failure
    is shown next to the field and the typed text stays in the widget for another try.

    Returns:
        The text currently in the widget.
    """
    if key not in st.session_state:
        st.session_state[key] = saved_value
    status_key = f"{key}:status"

    def _on_change() -> None:
        save_and_note(save, st.session_state[key], status_key)

    value = st.text_area(
        label,
        key=key,
        height=height,
        on_change=_on_change,
        help=help,
        placeholder=placeholder,
    )
    show_save_note(status_key)
    return value


def save_and_note(save: Callable[[str], object], text: str, status_key: str) -> None:
    """Save ``text`` and note the outcome under ``status_key`` for :func:`show_save_note`.

    A failed save is noted, not raised: the text stays in the widget and the student reads
    why it was not saved.
    """
    note_save(lambda: save(text), status_key)


def note_save(action: Callable[[], object], status_key: str) -> None:
    """Run a save (``action``, from a widget callback) and note its outcome, as above.

    Whatever the save raises is noted as "Not saved: <message>": the input stays in the
    widget for another try.
    """
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - shown to the user; the input stays in the widget
        st.session_state[status_key] = ("error", f"Not saved: {exc}")
    else:
        st.session_state[status_key] = ("ok", f"Saved at {time.strftime('%H:%M:%S')}")


def show_save_note(status_key: str) -> None:
    """Show the last save's outcome: "✓ Saved at …", a warning, or the error in red."""
    kind, message = st.session_state.get(status_key, ("", ""))
    if kind == "error":
        st.error(message)
    elif kind == "warning":
        st.warning(message)
    elif kind == "ok":
        st.caption(f"✓ {message}")
        announce(message, key=f"{status_key}:announce")


def render_outputs(outputs: list[dict]) -> None:
    """Draw a student's nbformat outputs, on their own page and on a TA's alike.

    Text, tracebacks and unknown types are drawn as plain text. Rich outputs (HTML, a pandas
    Styler, SVG, Markdown, images) are drawn only inside the sandboxed, no-network frame of
    ``workbook.web.output_view``: nothing a student outputs can run script or load anything in
    the viewer's browser, and a JavaScript output is never run.
    """
    from workbook.web import views

    for output in outputs:
        for view in views(output):
            if view.kind == "frame":
                st.iframe(view.document, height=view.height, alt="Cell output")
            elif view.kind == "note":
                st.caption(view.text)
            else:
                # Wrapped, not scrolled sideways: Streamlit's code block takes no keyboard focus,
                # so a keyboard user could not scroll it (docs/accessibility.md).
                st.code(view.text, language=None, wrap_lines=True)


def render_check(passed: bool, message: str) -> None:
    """Show a step check's verdict."""
    if passed:
        st.success(message or "Check passed.")
    else:
        st.warning(message or "Check did not pass.")


def render_run(run) -> None:
    """Show one run: a note when it timed out or the kernel died, outputs, then the check."""
    result = run.result
    if result.message:
        (st.info if result.status == "ok" else st.error)(result.message)
    render_outputs(result.outputs)
    if run.check is not None:
        # The message already lists the first problems; details would repeat them.
        render_check(run.check.passed, run.check.message)

"""How a student's cell outputs are shown to anyone, TAs included, without trusting them.

A student controls every byte of their outputs: ``display(HTML(...))``, a pandas Styler,
SVG, Markdown, JavaScript, images. Whatever the student's browser would have done with it,
on a TA's page it must not run script, load anything from the network or reach the page
around it. So rich outputs are never put into the app's own page. Each one is drawn inside
a frame built here:

* the outer document (the one Streamlit's iframe shows) holds no script and carries a
  Content-Security-Policy that forbids every script and every load except inline styles and
  ``data:`` images; its only content is
* an inner ``<iframe sandbox="">`` (no ``allow-scripts``, no ``allow-same-origin``, no forms,
  popups or top navigation) whose ``srcdoc`` is the student's markup, escaped as an
  attribute value, behind the same policy again.

The sandbox stops script (``<script>``, ``onerror=``, ``javascript:`` links, meta refresh);
the policy stops loads (images, styles, fonts, frames, navigation of the inner frame) even
for markup the sandbox alone would let through. Everything else (text, tracebacks, LaTeX,
unknown types) is shown as plain text by the page.

Only pure functions here: ``views(output)`` says what to draw, the page draws it.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import struct
from dataclasses import dataclass
from typing import Literal

from workbook.web.outputs import joined_text, traceback_text

# Forbid everything, then allow what a table, a chart or an image needs and cannot use to
# reach the network: inline <style>/style="" and data: images. frame-src 'none' also keeps
# the inner frame from being navigated anywhere (a link or a refresh in the student's markup).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "frame-src 'none'; form-action 'none'; base-uri 'none'"
)

# What Jupyter would pick first among an output's representations, as far as it is safe.
RICH_TYPES = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "image/gif", "text/markdown")
SCRIPT_TYPES = ("application/javascript", "text/javascript", "application/x-javascript")

# Readable tables (pandas, Styler) in the frame, close to how Jupyter shows them.
_BASE_STYLE = """
body { margin: 0; padding: 4px 2px; font: 14px/1.45 "Source Sans Pro", sans-serif;
       color: #262730; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e6ea; text-align: right; }
thead th { border-bottom: 1px solid #999; }
img, svg { max-width: 100%; height: auto; }
pre { white-space: pre-wrap; }
"""

_MIN_HEIGHT_PX = 48
_MAX_HEIGHT_PX = 520  # taller content scrolls inside the frame
_LINE_PX = 24


@dataclass(frozen=True)
class OutputView:
    """One thing to draw for an output.

    Attributes:
        kind: ``"text"`` (plain text, monospace), ``"stderr"`` (the same, wrapped),
            ``"frame"`` (``document`` in an iframe ``height`` pixels tall) or ``"note"``
            (a short remark from the app, e.g. that a script output was not run).
        text: the text for ``"text"``, ``"stderr"`` and ``"note"``.
        document: the complete HTML document for a ``"frame"`` (see the module docstring).
        height: the frame's height in CSS pixels.
    """

    kind: Literal["text", "stderr", "frame", "note"]
    text: str = ""
    document: str = ""
    height: int = 0


def views(output: dict) -> list[OutputView]:
    """What to draw for one nbformat output (empty for an empty stream).

    Args:
        output: an nbformat output dict (``stream``, ``execute_result``, ``display_data``,
            ``error``), possibly malformed: everything in it came from student code.
    """
    kind = output.get("output_type")
    if kind == "stream":
        text = joined_text(output.get("text", ""))
        if not text.strip():
            return []
        return [OutputView("stderr" if output.get("name") == "stderr" else "text", text=text)]
    if kind == "error":
        return [OutputView("text", text=traceback_text(output))]
    if kind not in {"execute_result", "display_data"}:
        return []
    data = output.get("data") or {}
    if not isinstance(data, dict):
        return []
    for mime in RICH_TYPES:
        if mime in data:
            frame = _frame_for(mime, joined_text(data[mime]))
            if frame is not None:
                return [frame]
    shown = []
    if "text/latex" in data:
        shown.append(OutputView("text", text=joined_text(data["text/latex"])))
    elif "text/plain" in data:
        shown.append(OutputView("text", text=joined_text(data["text/plain"])))
    if any(mime in data for mime in SCRIPT_TYPES):
        shown.append(OutputView("note", text="A JavaScript output is never run here."))
    elif not shown and data:
        types = ", ".join(sorted(str(mime) for mime in data))
        shown.append(OutputView("note", text=f"An output of type {types} is not shown here."))
    return shown


def _frame_for(mime: str, payload: str) -> OutputView | None:
    if mime == "text/html":
        return frame(payload, estimated_height(payload))
    if mime == "text/markdown":
        body = _markdown_html(payload)
        return frame(body, estimated_height(body))
    # Images travel base64-encoded (SVG as text); shown as <img> from a data: URL, an SVG
    # can neither run its scripts nor load what it links to.
    if mime == "image/svg+xml":
        raw = payload.encode("utf-8")
        height = _svg_height(payload)
    else:
        try:
            raw = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            return None
        height = _raster_height(raw)
    src = f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
    return frame(f'<img alt="image output" src="{src}">', height)


def frame(body_html: str, height: int) -> OutputView:
    """A ``"frame"`` view showing untrusted ``body_html`` in a sandboxed, no-network frame."""
    height = max(_MIN_HEIGHT_PX, min(_MAX_HEIGHT_PX, int(height)))
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
    inner = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8">{meta}'
        f"<style>{_BASE_STYLE}</style></head><body>{body_html}</body></html>"
    )
    # html.escape(quote=True) turns the markup into one attribute value: nothing in it can
    # close the attribute or the <iframe> tag.
    outer = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8">{meta}'
        "<style>html, body { margin: 0; padding: 0; overflow: hidden; }"
        f" iframe {{ display: block; width: 100%; height: {height}px; border: 0; }}</style>"
        '</head><body><iframe sandbox="" referrerpolicy="no-referrer" title="cell output"'
        f' srcdoc="{html.escape(inner, quote=True)}"></iframe></body></html>'
    )
    return OutputView("frame", document=outer, height=height)


_INVISIBLE = re.compile(r"<(style|script)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TABLE = re.compile(r"<table\b.*?</table\s*>", re.IGNORECASE | re.DOTALL)
_TABLE_ROW = re.compile(r"<(tr|caption)\b", re.IGNORECASE)
_BLOCK = re.compile(r"<(br|p|li|h[1-6]|div|pre)\b", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_ROW_PX = 28


def estimated_height(body_html: str) -> int:
    """A frame height for markup the app cannot measure (no script runs in the frame).

    Counts table rows, then the blocks or text lines outside tables (paragraphs, line
    breaks), ignoring what is never drawn (styles, scripts); the frame scrolls when the
    guess is short.
    """
    visible = _INVISIBLE.sub("", body_html)
    rows = len(_TABLE_ROW.findall(visible))
    outside = _TABLE.sub("\n", visible)
    blocks = len(_BLOCK.findall(outside))
    text_lines = sum(1 for line in _TAG.sub("", outside).splitlines() if line.strip())
    lines = max(blocks, text_lines, 0 if rows else 1)
    images = outside.lower().count("<img") + outside.lower().count("<svg")
    return 16 + _ROW_PX * rows + _LINE_PX * lines + 200 * images


def _raster_height(raw: bytes) -> int:
    """The pixel height of a PNG or GIF from its header; a guess for anything else."""
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        return struct.unpack(">I", raw[20:24])[0] + 8
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        return struct.unpack("<H", raw[8:10])[0] + 8
    return 360


def _svg_height(svg: str) -> int:
    match = re.search(r'<svg[^>]*\sheight="([0-9.]+)(px|pt)?"', svg)
    if match is None:
        return 360
    value = float(match.group(1)) * (4 / 3 if match.group(2) == "pt" else 1)
    return int(value) + 8


def _markdown_html(text: str) -> str:
    """Markdown as HTML with any raw HTML in it escaped (the frame is the real guard)."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # not installed: show the source
        return f"<pre>{html.escape(text)}</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)

"""How student outputs are turned into things to draw (the browser proof is in tests/e2e/)."""

from __future__ import annotations

import base64
import html
import io
from html.parser import HTMLParser

import pandas as pd
import pytest

from workbook.web.output_view import CONTENT_SECURITY_POLICY, OutputView, views


class _Elements(HTMLParser):
    """Every start tag of a document with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(document: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(document)
    return parser.tags


def _html_output(markup: str) -> dict:
    return {"output_type": "display_data", "data": {"text/html": markup, "text/plain": "<HTML>"}}


def _inner(view: OutputView) -> str:
    """The student's document: the sandboxed frame's srcdoc."""
    frames = [attrs for tag, attrs in _tags(view.document) if tag == "iframe"]
    assert len(frames) == 1
    return frames[0]["srcdoc"] or ""


HOSTILE = (
    '<script>window.top.__pwned = 1</script><img src=x onerror="window.top.__pwned=2">'
    '<a href="javascript:alert(1)">x</a>"></iframe><script>alert(2)</script>'
    '<meta http-equiv="refresh" content="0;url=http://127.0.0.1:9/">'
)


def test_student_html_is_only_ever_inside_a_script_free_sandboxed_frame():
    (view,) = views(_html_output(HOSTILE))
    assert view.kind == "frame"
    # The document Streamlit's iframe shows: a policy, a style and one sandboxed frame,
    # however hard the markup tries to close the attribute or the frame.
    assert [tag for tag, _ in _tags(view.document)] == [
        "html",
        "head",
        "meta",
        "meta",
        "style",
        "body",
        "iframe",
    ]
    frame = next(attrs for tag, attrs in _tags(view.document) if tag == "iframe")
    assert frame["sandbox"] == ""  # no allow-scripts, no allow-same-origin, nothing
    assert HOSTILE in _inner(view)  # the markup is in there, unchanged, as one attribute


@pytest.mark.parametrize("which", ["outer", "inner"])
def test_both_documents_forbid_scripts_and_remote_loads(which):
    (view,) = views(_html_output(HOSTILE))
    document = view.document if which == "outer" else _inner(view)
    tags = _tags(document)
    # The policy is the first thing in <head>: before any markup that could load something.
    assert tags[2] == ("meta", {"charset": "utf-8"})
    assert tags[3] == (
        "meta",
        {"http-equiv": "Content-Security-Policy", "content": CONTENT_SECURITY_POLICY},
    )
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["img-src"] == "data:"
    assert directives["frame-src"] == "'none'"
    assert "script-src" not in directives  # so default-src 'none' applies to scripts


def test_a_styler_table_keeps_its_rows_and_styles_and_gets_room_for_them():
    frame = pd.DataFrame({"token": [f" tok{i}" for i in range(10)], "p": [0.1] * 10})
    styled = frame.style.background_gradient(subset=["p"]).format({"p": "{:.3f}"})
    (view,) = views(_html_output(styled.to_html()))
    inner = _inner(view)
    assert inner.count("<tr") == 11
    assert "background-color" in inner
    assert 11 * 24 <= view.height <= 11 * 32 + 48  # room for the rows, not a screenful more


def test_svg_and_images_are_shown_as_data_url_images():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" height="40"><script>alert(1)</script></svg>'
    (view,) = views({"output_type": "display_data", "data": {"image/svg+xml": svg}})
    (img,) = [attrs for tag, attrs in _tags(_inner(view)) if tag == "img"]
    assert img["src"] == "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (30, 200), "red").save(buffer, format="PNG")
    png = base64.b64encode(buffer.getvalue()).decode()
    (view,) = views({"output_type": "execute_result", "data": {"image/png": png}})
    (img,) = [attrs for tag, attrs in _tags(_inner(view)) if tag == "img"]
    assert img["src"] == f"data:image/png;base64,{png}"
    assert view.height == 208  # the image's own height, plus a margin


def test_markdown_is_rendered_with_its_raw_html_escaped():
    data = {"text/markdown": "**bold** <script>alert(1)</script>"}
    (view,) = views({"output_type": "display_data", "data": data})
    inner = _inner(view)
    assert "<strong>bold</strong>" in inner
    assert "<script>" not in inner.split("<body>", 1)[1]
    assert html.escape("<script>") in inner


def test_a_javascript_output_is_never_run_and_says_so():
    data = {"application/javascript": "window.__pwned = 1", "text/plain": "<Javascript object>"}
    shown = views({"output_type": "display_data", "data": data})
    assert shown == [
        OutputView("text", text="<Javascript object>"),
        OutputView("note", text="A JavaScript output is never run here."),
    ]


def test_text_streams_and_tracebacks_stay_plain_text():
    assert views({"output_type": "stream", "name": "stdout", "text": ["<b>", "hi</b>\n"]}) == [
        OutputView("text", text="<b>hi</b>\n")
    ]
    assert views({"output_type": "stream", "name": "stderr", "text": "warn"}) == [
        OutputView("stderr", text="warn")
    ]
    assert views({"output_type": "stream", "name": "stdout", "text": "  \n"}) == []
    error = {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["\x1b[31mE: v"]}
    assert views(error) == [OutputView("text", text="E: v")]


def test_kernel_messages_and_shown_tracebacks_strip_the_same_escape_codes():
    from workbook.kernels.result import strip_ansi as kernel_strip_ansi
    from workbook.web.outputs import strip_ansi

    assert kernel_strip_ansi is strip_ansi
    # Colours, and a private mode (hide the cursor) that the kernels' own copy left in.
    assert strip_ansi("\x1b[1;31mError\x1b[0m\x1b[?25l") == "Error"


@pytest.mark.parametrize(
    "output",
    [
        {"output_type": "display_data", "data": "not a dict"},
        {"output_type": "display_data", "data": {"text/html": {"a": 1}}},
        {"output_type": "display_data", "data": {"image/png": "%%% not base64"}},
        {"output_type": "display_data", "data": {"application/vnd.custom+json": {}}},
        {"output_type": "something else"},
        {},
    ],
)
def test_malformed_outputs_are_shown_safely_without_raising(output):
    for view in views(output):
        assert view.kind in {"text", "stderr", "frame", "note"}
        if view.kind == "frame":
            assert 'sandbox=""' in view.document

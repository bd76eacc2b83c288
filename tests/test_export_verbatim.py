"""Student text in the exported notebook's Markdown cells renders exactly as typed.

Each text is turned into Markdown by ``verbatim_markdown`` and rendered twice: by nbconvert's
Markdown renderer (mistune with Jupyter's math handling, what ``jupyter nbconvert`` uses for
a notebook's Markdown cells) and by markdown-it (CommonMark, with tables and strike-through
as in Jupyter's GitHub-flavoured Markdown). The visible text of the HTML (a ``<br>`` is a
line break, a no-break space a space) must equal the typed text, line by line.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
from export_data import complete_submission

from workbook.submission.notebook import build_notebook, verbatim_markdown

bs4 = pytest.importorskip("bs4")
markdown_it = pytest.importorskip("markdown_it")
mistune_filter = pytest.importorskip("nbconvert.filters.markdown_mistune")


def _nbconvert(markdown: str) -> str:
    return mistune_filter.markdown2html_mistune(markdown)


def _commonmark(markdown: str) -> str:
    return markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


RENDERERS = {"nbconvert": _nbconvert, "commonmark+gfm": _commonmark}


def visible_text(rendered: str) -> str:
    """What a reader sees: text with ``<br>`` as line breaks, trailing spaces dropped."""
    soup = bs4.BeautifulSoup(re.sub(r"<br\s*/?>\n?", "<br>", rendered), "html.parser")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    return _lines(soup.get_text().replace("\xa0", " "))


def _lines(text: str) -> str:
    """Line by line, without trailing spaces or empty lines at either end (invisible)."""
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def as_typed(text: str) -> str:
    """The typed text as it looks: tabs as spaces to the next multiple of 4."""
    return _lines("\n".join(line.expandtabs(4) for line in text.split("\n")))


TRICKY = [
    "<script>alert('hi')</script> stays text, and so does <b>bold</b> & &amp;",
    "It costs $5 and $10; inline math $x^2$ and $$y$$ and \\$ stay as typed.",
    "*stars* _under_ `ticks` ~~strike~~ [link](http://x.org) ![img](a.png) | pipes |",
    "  # not a heading\n1. not a list\n2) nor this\n- nor this\n+ nor this\n> nor a quote",
    "a setext\n===\nand\n---\n***",
    "    four spaces are not code\n\ttab too",
    "line one\n\n\nline four, after two empty lines",
    "\\(x\\) and \\[y\\] and a back\\slash at the end\\",
    "|a|b|\n|-|-|\n|1|2|",
    "<!-- a comment --> [ref]: http://y.org <http://z.org> www.example.org a@b.org",
    "Ünïcödé, emoji 🙂, and math symbols ≤ ≥ → stay",
]


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("text", TRICKY)
def test_tricky_text_renders_as_typed(text, renderer):
    rendered = RENDERERS[renderer](verbatim_markdown(text))
    assert visible_text(rendered) == as_typed(text)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_random_text_renders_as_typed(renderer):
    """Seeded random texts built from every ASCII mark, letters, digits, spaces and breaks."""
    alphabet = [*"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", *"ab1", " ", " ", "\t", "\n"]
    rng = random.Random(14)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        rendered = RENDERERS[renderer](verbatim_markdown(text))
        assert visible_text(rendered) == as_typed(text), (text, verbatim_markdown(text))


def test_script_in_an_answer_is_text_not_a_tag_in_the_notebook():
    answer = "<script>alert(1)</script> **not bold** $not math$"
    submission = complete_submission()
    questions = (replace(submission.questions[0], answer=answer), *submission.questions[1:])
    nb = build_notebook(replace(submission, questions=questions))
    cell = next(c for c in nb.cells if c.get("id") == "q1-answer")
    rendered = _nbconvert(cell.source)
    soup = bs4.BeautifulSoup(rendered, "html.parser")
    assert soup.find("script") is None and soup.find("strong").get_text() != "not bold"
    assert visible_text(rendered).endswith(as_typed(answer))


def test_reflections_and_tutorial_details_render_as_typed():
    submission = complete_submission()
    text = "Reflection with <tags>, *stars* and\n- a line that looks like a list"
    entry = replace(submission.reflections[0], text=text, title="Tensors <& autograd>")
    nb = build_notebook(replace(submission, reflections=(entry, *submission.reflections[1:])))
    cell = next(c for c in nb.cells if c.get("id") == "tutorial-1")
    shown = visible_text(_nbconvert(cell.source))
    assert "Tutorial 1: Tensors <& autograd>" in shown
    assert shown.endswith(as_typed(text))

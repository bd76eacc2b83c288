"""The Explore page through Streamlit's AppTest, from the real entry point (app.py).

Fast tests point the app at a tiny random model saved to a folder (``WORKBOOK_MODEL``);
one slow test opens the page on the real bundled model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from tiny import make_tiny_pair

from lm_engine.sampling import generate

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGE = "pages/explore.py"
FIRST_EXAMPLE = "This weekend I plan to"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    model, tokenizer = make_tiny_pair(seed=2)
    folder = tmp_path_factory.mktemp("explore") / "tiny-model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, (model, tokenizer)


@pytest.fixture
def tiny_app(tiny_folder, tmp_path, monkeypatch):
    folder, _ = tiny_folder
    monkeypatch.setenv("WORKBOOK_MODEL", str(folder))
    monkeypatch.setenv("WORKBOOK_DB", str(tmp_path / "workbook.db"))
    monkeypatch.setenv("LM_ENGINE_DEVICE", "cpu")
    return open_page()


def open_page() -> AppTest:
    """A fresh browser session of the real app, not signed in, on the Explore page."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at.switch_page(PAGE).run()


def charts(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def built(at: AppTest) -> list[dict]:
    return at.session_state["explore:sentences"].get(FIRST_EXAMPLE, [])


def test_page_opens_without_sign_in_and_draws_its_charts(tiny_app):
    at = tiny_app
    assert not at.exception
    assert not at.error
    assert at.text_input(key="explore:phrase").value == FIRST_EXAMPLE
    assert [t.label for t in at.tabs] == [
        "Next-token distribution",
        "Build a sentence",
        "Compare strategies",
        "Logit lens",
    ]
    specs = charts(at)
    assert len(specs) == 2  # the distribution and the logit lens
    assert any("top-k" in json.dumps(spec) for spec in specs)
    assert "Q3" in " ".join(m.value for m in at.markdown)


def test_temperature_slider_changes_the_entropy_shown(tiny_app):
    at = tiny_app
    before = at.metric[2].value
    at.slider(key="explore:temperature").set_value(0.3).run()
    assert not at.exception
    assert at.metric[2].value != before
    at.slider(key="explore:top_k").set_value(3).run()
    assert at.metric[0].label == "Mass kept by top-3"


def test_clicking_a_candidate_appends_it_to_the_sentence(tiny_app, tiny_folder):
    at = tiny_app
    second = at.button(key="explore:pick:1")
    second.click().run()
    assert not at.exception
    tokens = built(at)
    assert len(tokens) == 1
    assert tokens[0]["rank"] == 2
    assert tokens[0]["chosen_by"] == "you"
    at.button(key="explore:undo").click().run()
    assert built(at) == []


def test_strategy_steps_follow_greedy_decoding(tiny_app, tiny_folder):
    _, pair = tiny_folder
    at = tiny_app
    for _ in range(3):
        at.button(key="explore:step").click().run()
    assert not at.exception
    expected = generate(pair, FIRST_EXAMPLE, "greedy", max_new_tokens=3)
    assert [t["token_id"] for t in built(at)] == [t.token_id for t in expected.tokens]
    assert len(charts(at)) == 3  # the sentence strip appears
    at.button(key="explore:reset").click().run()
    assert built(at) == []


def test_compare_runs_five_strategies_with_a_beam_tree(tiny_app, tiny_folder):
    _, pair = tiny_folder
    at = tiny_app
    at.slider(key="explore:cmp_tokens").set_value(5).run()
    at.button(key="explore:cmp_run").click().run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    greedy = generate(pair, FIRST_EXAMPLE, "greedy", max_new_tokens=5)
    assert f"*{FIRST_EXAMPLE}*{greedy.text}" in text
    for label in ("greedy", "sampling, T=0.7", "sampling, T=1.5", "top-p 0.9", "beam search"):
        assert f"**{label}" in text
    # distribution + lens + five token strips + the beam tree
    assert len(charts(at)) == 2 + 5 + 1


def test_example_picker_keeps_what_the_student_typed(tiny_app):
    at = tiny_app
    at.text_input(key="explore:phrase").input("the cat sat on the").run()
    at.selectbox(key="explore:example").select("To be or not to").run()
    assert not at.exception
    assert at.text_input(key="explore:phrase").value == "To be or not to"
    assert "the cat sat on the" in at.selectbox(key="explore:example").options


def test_empty_phrase_asks_for_one(tiny_app):
    at = tiny_app
    at.text_input(key="explore:phrase").input("   ").run()
    assert not at.exception
    assert "Type a phrase" in at.info[0].value


@pytest.mark.slow
def test_page_works_on_the_real_model(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBOOK_DB", str(tmp_path / "workbook.db"))
    monkeypatch.delenv("WORKBOOK_MODEL", raising=False)
    at = open_page()
    assert not at.exception
    assert not at.error
    at.button(key="explore:pick:0").click().run()
    assert built(at)[0]["rank"] == 1
    assert len(charts(at)) == 3

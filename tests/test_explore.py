"""The Explore page's logic (``workbook.explore``) on a tiny random model."""

from __future__ import annotations

import pytest
import torch
from tiny import make_tiny_pair

from lm_engine.sampling import generate
from workbook import explore
from workbook.errors import WorkbookError

PHRASE = "this weekend i plan to"


@pytest.fixture(scope="module")
def pair():
    return make_tiny_pair(seed=1)


def model_probs(pair, phrase=PHRASE, appended=(), temperature=1.0):
    model, tokenizer = pair
    ids = tokenizer(phrase, return_tensors="pt")["input_ids"]
    ids = torch.cat([ids, torch.tensor([list(appended)], dtype=torch.long)], dim=-1)
    with torch.no_grad():
        return (model(ids).logits[0, -1] / temperature).softmax(-1)


def test_distribution_lists_the_full_vocabulary_softmax(pair):
    dist = explore.next_token_distribution(pair, PHRASE, top=10)
    probs = model_probs(pair)
    top = torch.topk(probs, 10)
    assert dist.table["token_id"].tolist() == top.indices.tolist()
    assert dist.table["probability"].tolist() == pytest.approx(top.values.tolist(), abs=1e-6)
    assert dist.table["rank"].tolist() == list(range(1, 11))
    assert dist.vocab_size == probs.numel()


def test_temperature_reshapes_the_distribution(pair):
    dist = explore.next_token_distribution(pair, PHRASE, temperature=0.5, top=5)
    expected = model_probs(pair, temperature=0.5)
    assert dist.table["reshaped"].tolist() == pytest.approx(
        expected[dist.table["token_id"].tolist()].tolist(), abs=1e-6
    )
    flat = explore.next_token_distribution(pair, PHRASE, temperature=2.0, top=5)
    assert dist.entropy_bits < flat.entropy_bits


def test_cut_offs_report_kept_tokens_and_mass(pair):
    dist = explore.next_token_distribution(pair, PHRASE, top_k=4, top_p=0.3, top=30)
    probs = model_probs(pair)
    assert dist.table["in_top_k"].sum() == 4
    assert dist.table["in_top_k"].tolist()[:4] == [True] * 4
    assert dist.top_k_mass == pytest.approx(float(torch.topk(probs, 4).values.sum()), abs=1e-5)
    sorted_probs = probs.sort(descending=True).values
    # the nucleus is the smallest prefix whose mass reaches p
    size = int((sorted_probs.cumsum(0) < 0.3).sum()) + 1
    assert dist.top_p_size == size
    assert dist.top_p_mass >= 0.3
    assert dist.top_p_mass == pytest.approx(float(sorted_probs[:size].sum()), abs=1e-5)


def test_bad_settings_become_workbook_errors(pair):
    with pytest.raises(WorkbookError, match="empty"):
        explore.next_token_distribution(pair, "  ")
    with pytest.raises(WorkbookError, match="top-p"):
        explore.next_token_distribution(pair, PHRASE, top_p=0)


def test_choosing_tokens_builds_the_sentence_with_probability_and_rank(pair):
    options = explore.candidates(pair, PHRASE, [], k=5)
    third = int(options["token_id"].iloc[2])
    built = explore.choose(pair, PHRASE, [], third)
    assert built[0]["token_id"] == third
    assert built[0]["rank"] == 3
    assert built[0]["chosen_by"] == "you"
    assert built[0]["probability"] == pytest.approx(float(model_probs(pair)[third]), abs=1e-6)
    # the next step scores the token after the phrase *and* the chosen token
    options = explore.candidates(pair, PHRASE, built, k=3)
    expected = torch.topk(model_probs(pair, appended=[third]), 3).indices.tolist()
    assert options["token_id"].tolist() == expected


def test_choose_returns_a_new_list(pair):
    built: list[dict] = []
    longer = explore.choose(pair, PHRASE, built, 5)
    assert built == [] and len(longer) == 1


def test_greedy_steps_equal_greedy_generation(pair):
    built: list[dict] = []
    for _ in range(5):
        built = explore.choose_by_strategy(pair, PHRASE, built, "greedy")
    expected = generate(pair, PHRASE, "greedy", max_new_tokens=5)
    assert [b["token_id"] for b in built] == [t.token_id for t in expected.tokens]
    assert all(b["chosen_by"] == "greedy" and b["rank"] == 1 for b in built)
    table = explore.sentence_table(built)
    assert table["step"].tolist() == [1, 2, 3, 4, 5]


def test_strategy_steps_are_reproducible_for_a_seed(pair):
    def run(seed):
        built: list[dict] = []
        for _ in range(6):
            built = explore.choose_by_strategy(pair, PHRASE, built, "sample", seed=seed)
        return [b["token_id"] for b in built]

    assert run(3) == run(3)
    assert len({tuple(run(s)) for s in range(4)}) > 1


def test_beam_search_cannot_pick_one_step(pair):
    with pytest.raises(WorkbookError, match="one token at a time"):
        explore.choose_by_strategy(pair, PHRASE, [], "beam")


def test_compare_strategies_runs_each_on_the_same_phrase_and_seed(pair):
    runs = explore.compare_strategies(pair, PHRASE, seed=2, max_new_tokens=6)
    assert list(runs) == [
        "greedy",
        "sampling, T=0.7",
        "sampling, T=1.5",
        "top-p 0.9",
        "beam search, 3 beams",
    ]
    assert runs["greedy"] == generate(pair, PHRASE, "greedy", max_new_tokens=6)
    assert runs["sampling, T=0.7"] == generate(
        pair, PHRASE, "sample", max_new_tokens=6, temperature=0.7, seed=2
    )
    assert runs["beam search, 3 beams"].beam_steps
    table = explore.generation_table(runs["greedy"])
    assert table["rank"].tolist() == [1] * len(table)


def test_beam_tree_edges_link_each_candidate_to_its_beam(pair):
    generation = generate(pair, PHRASE, "beam", max_new_tokens=3, num_beams=2)
    nodes, edges = explore.beam_tree(generation)
    assert len(nodes) == 1 + sum(len(s.candidates) for s in generation.beam_steps)
    assert len(edges) == len(nodes) - 1
    assert (edges[edges["step"] == 1]["from_slot"] == 0).all()
    # every edge starts at a kept node of the previous step
    kept = {(r.step, r.slot) for r in nodes.itertuples() if r.status in {"kept", "prompt"}}
    assert all((r.step - 1, r.from_slot) in kept for r in edges.itertuples())
    # and the text of a node extends the text of its parent
    text = {(r.step, r.slot): r.text for r in nodes.itertuples()}
    for r in edges.itertuples():
        assert text[(r.step, r.to_slot)].startswith(text[(r.step - 1, r.from_slot)])


def test_lens_grid_has_one_cell_per_layer_and_position(pair):
    model, tokenizer = pair
    n = tokenizer(PHRASE, return_tensors="pt")["input_ids"].shape[-1]
    grid = explore.lens_grid(pair, PHRASE, top=3)
    assert len(grid) == (model.config.num_hidden_layers + 1) * n
    last = grid[grid["layer"] == grid["layer"].max()].sort_values("position")
    assert last["probability"].iloc[-1] == pytest.approx(float(model_probs(pair).max()), abs=1e-5)
    assert grid["alternatives"].str.count("%").eq(2).all()


def test_visible_shows_spaces_and_newlines():
    assert explore.visible(" to\n") == "␣to⏎"
    assert explore.visible("") == "∅"

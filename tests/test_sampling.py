"""Decoding strategies: pure logit processors, and generation checked against transformers.

Fast tests use a tiny random Llama (``tests/tiny.py``); expected values always come from plain
transformers calls or explicit loops on the same weights. The ``slow`` tests repeat the
parity checks on the real bundled model.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tiny import make_tiny_pair

from lm_engine.errors import InvalidInput
from lm_engine.sampling import (
    apply_temperature,
    generate,
    sample_next,
    top_k_filter,
    top_p_filter,
)

PHRASE = "this weekend i plan to"


@pytest.fixture(scope="module")
def pair():
    return make_tiny_pair(seed=0)


def prompt_ids(tokenizer, phrase: str = PHRASE) -> torch.Tensor:
    return tokenizer(phrase, return_tensors="pt")["input_ids"]


def with_eos(model, eos_id: int):
    """A copy of ``model`` whose generation ends on ``eos_id`` as well as on id 1."""
    other = copy.deepcopy(model)
    other.generation_config.eos_token_id = [eos_id, 1]
    return other


# --- processors ---------------------------------------------------------------------------


def test_temperature_divides_logits_and_reshapes_the_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0])
    assert torch.equal(apply_temperature(logits, 2.0), logits / 2)
    sharp = apply_temperature(logits, 0.5).softmax(-1)
    flat = apply_temperature(logits, 5.0).softmax(-1)
    assert sharp[0] > logits.softmax(-1)[0] > flat[0]


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_temperature_must_be_positive(bad):
    with pytest.raises(InvalidInput, match="temperature"):
        apply_temperature(torch.zeros(3), bad)


@pytest.mark.parametrize("k", [1, 3, 7, 10])
def test_top_k_keeps_exactly_k_highest_tokens(k):
    logits = torch.randn(2, 10, generator=torch.Generator().manual_seed(k))
    filtered = top_k_filter(logits, k)
    kept = torch.isfinite(filtered)
    assert kept.sum(-1).tolist() == [k, k]
    expected = torch.topk(logits, k, dim=-1).indices.sort(-1).values
    assert torch.equal(kept.nonzero()[:, 1].view(2, k), expected)
    assert torch.equal(filtered[kept], logits[kept])


def test_top_k_keeps_exactly_k_even_when_scores_tie():
    filtered = top_k_filter(torch.zeros(8), 3)
    assert int(torch.isfinite(filtered).sum()) == 3


@pytest.mark.parametrize(
    ("p", "kept"),
    [(0.3, 1), (0.5, 1), (0.6, 2), (0.75, 2), (0.85, 3), (0.97, 4), (1.0, 4)],
)
def test_top_p_keeps_smallest_set_whose_mass_reaches_p(p, kept):
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])  # sorted: 0.5, 0.3, 0.15, 0.05
    filtered = top_p_filter(probs.log(), p)
    assert int(torch.isfinite(filtered).sum()) == kept
    order = torch.argsort(probs, descending=True)
    assert torch.isfinite(filtered[order[:kept]]).all()


def test_top_p_kept_set_is_minimal_on_random_distributions():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        logits = torch.randn(40, generator=gen) * 3
        p = float(torch.rand(1, generator=gen))
        probs = logits.softmax(-1)
        kept = torch.isfinite(top_p_filter(logits, p))
        mass = float(probs[kept].sum())
        # reaches p, and dropping its least likely member would not
        assert mass >= p - 1e-6
        assert mass - float(probs[kept].min()) < p
        # and it is a top set: every kept token beats every dropped one
        if (~kept).any():
            assert probs[kept].min() >= probs[~kept].max()


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_top_p_rejects_out_of_range(bad):
    with pytest.raises(InvalidInput, match="top-p"):
        top_p_filter(torch.zeros(3), bad)


def test_sample_next_with_temperature_zero_is_argmax():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    assert sample_next(logits, temperature=0) == int(logits.argmax())


def test_sample_next_never_picks_a_filtered_token():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(2))
    allowed = set(torch.topk(logits, 3).indices.tolist())
    gen = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, top_k=3, generator=gen) for _ in range(200)}
    assert picks <= allowed
    assert len(picks) > 1


# --- greedy ------------------------------------------------------------------------------


def test_greedy_equals_a_loop_of_argmax(pair):
    model, tokenizer = pair
    ids = prompt_ids(tokenizer)
    expected = []
    with torch.no_grad():
        for _ in range(8):
            logits = model(ids).logits[0, -1]
            next_id = int(logits.argmax())
            expected.append((next_id, float(logits.softmax(-1)[next_id])))
            ids = torch.cat([ids, torch.tensor([[next_id]])], dim=-1)
    result = generate(pair, PHRASE, "greedy", max_new_tokens=8)
    assert [t.token_id for t in result.tokens] == [i for i, _ in expected]
    assert [t.probability for t in result.tokens] == pytest.approx([p for _, p in expected])
    assert all(t.rank == 1 for t in result.tokens)
    assert result.stop_reason == "length"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_equals_transformers_generate(seed):
    model, tokenizer = make_tiny_pair(seed=seed)
    ids = prompt_ids(tokenizer)
    expected = model.generate(ids, do_sample=False, max_new_tokens=12)[0].tolist()
    result = generate((model, tokenizer), PHRASE, "greedy", max_new_tokens=12)
    assert result.token_ids == expected


def test_generation_stops_at_end_of_sequence(pair):
    model, tokenizer = pair
    first = generate(pair, PHRASE, "greedy", max_new_tokens=3).tokens[1].token_id
    stopper = with_eos(model, first)
    result = generate((stopper, tokenizer), PHRASE, "greedy", max_new_tokens=10)
    expected = stopper.generate(
        prompt_ids(tokenizer), do_sample=False, max_new_tokens=10, eos_token_id=[first, 1]
    )[0].tolist()
    assert result.token_ids == expected
    assert result.stop_reason == "eos"
    assert result.tokens[-1].is_eos
    assert len(result.tokens) < 10


@pytest.mark.parametrize("strategy", ["sample", "top-k", "top-p"])
@pytest.mark.parametrize("temperature", [0.0, 1e-4])
def test_temperature_towards_zero_equals_greedy(pair, strategy, temperature):
    greedy = generate(pair, PHRASE, "greedy", max_new_tokens=8)
    cold = generate(pair, PHRASE, strategy, max_new_tokens=8, temperature=temperature, seed=5)
    assert cold.token_ids == greedy.token_ids


# --- sampling ----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sample", "top-k", "top-p"])
def test_same_seed_gives_same_output(pair, strategy):
    first = generate(pair, PHRASE, strategy, max_new_tokens=10, seed=7, top_k=10, top_p=0.8)
    again = generate(pair, PHRASE, strategy, max_new_tokens=10, seed=7, top_k=10, top_p=0.8)
    assert first == again


def test_different_seeds_give_different_samples(pair):
    outputs = {
        tuple(generate(pair, PHRASE, "sample", max_new_tokens=10, seed=s).token_ids)
        for s in range(4)
    }
    assert len(outputs) > 1


def test_top_k_generation_only_picks_ranks_within_k(pair):
    result = generate(pair, PHRASE, "top-k", max_new_tokens=15, top_k=3, seed=3)
    assert all(t.rank <= 3 for t in result.tokens)
    assert any(t.rank > 1 for t in result.tokens)


def test_sampled_token_reports_its_probability_in_both_distributions(pair):
    model, tokenizer = pair
    result = generate(pair, PHRASE, "top-k", max_new_tokens=1, top_k=4, temperature=0.7)
    token = result.tokens[0]
    with torch.no_grad():
        logits = model(prompt_ids(tokenizer)).logits[0, -1]
    assert token.probability == pytest.approx(float(logits.softmax(-1)[token.token_id]))
    reshaped = top_k_filter(logits / 0.7, 4).softmax(-1)
    assert token.chosen_probability == pytest.approx(float(reshaped[token.token_id]))
    assert token.rank == int((logits > logits[token.token_id]).sum()) + 1


# --- KV cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["greedy", "sample", "top-p", "beam"])
def test_kv_cache_generation_equals_full_recompute(pair, strategy):
    cached = generate(pair, PHRASE, strategy, max_new_tokens=10, seed=4, num_beams=3)
    full = generate(pair, PHRASE, strategy, max_new_tokens=10, seed=4, num_beams=3, use_cache=False)
    assert cached.token_ids == full.token_ids
    assert [t.probability for t in cached.tokens] == pytest.approx(
        [t.probability for t in full.tokens], abs=1e-5
    )


# --- beam search -------------------------------------------------------------------------


def test_beam_search_with_one_beam_equals_greedy(pair):
    greedy = generate(pair, PHRASE, "greedy", max_new_tokens=10)
    beam = generate(pair, PHRASE, "beam", max_new_tokens=10, num_beams=1)
    assert beam.token_ids == greedy.token_ids


@pytest.mark.parametrize("num_beams", [2, 3, 5])
@pytest.mark.parametrize(
    ("length_penalty", "early_stopping"), [(1.0, False), (0.0, True), (2.0, False)]
)
@pytest.mark.parametrize("eos_id", [1, 6, 11, 36])
def test_beam_search_equals_transformers(pair, num_beams, length_penalty, early_stopping, eos_id):
    # Making a frequent token the end token exercises finished hypotheses and early stops.
    model = with_eos(pair[0], eos_id)
    tokenizer = pair[1]
    expected = model.generate(
        prompt_ids(tokenizer),
        do_sample=False,
        num_beams=num_beams,
        max_new_tokens=8,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
        eos_token_id=[eos_id, 1],
    )[0].tolist()
    result = generate(
        (model, tokenizer),
        PHRASE,
        "beam",
        max_new_tokens=8,
        num_beams=num_beams,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
    )
    assert result.token_ids == expected


def test_beam_tree_records_candidates_scores_and_kept_beams(pair):
    result = generate(pair, PHRASE, "beam", max_new_tokens=4, num_beams=3)
    assert len(result.beam_steps) == 4
    first = result.beam_steps[0]
    assert first.beams == [""]  # the first step extends the prompt alone
    assert len(first.candidates) == 6  # 2 * num_beams
    scores = [c.score for c in first.candidates]
    assert scores == sorted(scores, reverse=True)
    assert sum(c.kept for c in first.candidates) == 3
    for step in result.beam_steps[1:]:
        assert len(step.beams) == 3
        for c in step.candidates:
            # a candidate's score is its beam's score plus the token's log-probability
            parent_score = [p.score for p in result.beam_steps[step.step - 2].candidates if p.kept]
            assert c.score == pytest.approx(parent_score[c.parent] + c.log_probability, abs=1e-4)
    last = result.beam_steps[-1]
    assert any(c.finished for c in last.candidates)
    # length_penalty 1: the summed log-probability divided by the generated length
    expected = sum(math.log(t.probability) for t in result.tokens) / len(result.tokens)
    assert result.score == pytest.approx(expected, abs=1e-4)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"phrase": "   "}, "empty"),
        ({"strategy": "random"}, "unknown strategy"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": 0}, "top-k"),
        ({"top_p": 0.0}, "top-p"),
        ({"num_beams": 0}, "num_beams"),
    ],
)
def test_bad_settings_raise_invalid_input_with_a_message(pair, kwargs, message):
    args = {"phrase": PHRASE, **kwargs}
    with pytest.raises(InvalidInput, match=message):
        generate(pair, **args)


def test_generation_stops_when_the_context_is_full(pair):
    result = generate(pair, PHRASE, "greedy", max_new_tokens=200)
    context = pair[0].config.max_position_embeddings
    assert len(result.token_ids) == context
    assert result.stop_reason == "length"


# --- the real model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_lm():
    from lm_engine import load_model

    return load_model()


@pytest.mark.slow
def test_real_model_greedy_equals_transformers_generate(real_lm):
    phrase = "This weekend I plan to"
    ids = real_lm.encode(phrase).to(real_lm.device)
    expected = real_lm.model.generate(ids, do_sample=False, max_new_tokens=16)[0].tolist()
    assert generate(real_lm, phrase, "greedy", max_new_tokens=16).token_ids == expected


@pytest.mark.slow
def test_real_model_beam_search_equals_transformers(real_lm):
    phrase = "For God so loved the"
    ids = real_lm.encode(phrase).to(real_lm.device)
    expected = real_lm.model.generate(
        ids,
        do_sample=False,
        num_beams=3,
        max_new_tokens=10,
        length_penalty=1.0,
        early_stopping=False,
    )[0].tolist()
    result = generate(real_lm, phrase, "beam", max_new_tokens=10, num_beams=3)
    assert result.token_ids == expected


@pytest.mark.slow
def test_real_model_kv_cache_equals_full_recompute(real_lm):
    phrase = "To be or not to"
    cached = generate(real_lm, phrase, "top-p", max_new_tokens=12, seed=1)
    full = generate(real_lm, phrase, "top-p", max_new_tokens=12, seed=1, use_cache=False)
    assert cached.token_ids == full.token_ids


@pytest.mark.parametrize("strategy", ["greedy", "top-p", "beam"])
def test_generation_never_tracks_gradients(pair, strategy):
    model, tokenizer = pair
    seen: list[bool] = []
    forward = model.forward

    def recording_forward(*args, **kwargs):
        seen.append(torch.is_grad_enabled())
        return forward(*args, **kwargs)

    model.forward = recording_forward
    try:
        generate((model, tokenizer), PHRASE, strategy=strategy, max_new_tokens=3, num_beams=2)
    finally:
        del model.forward
    assert seen and not any(seen)

"""The logit lens: each layer's hidden state read through the final norm and output head."""

from __future__ import annotations

import pytest
import torch
from tiny import make_tiny_pair

from lm_engine.errors import InvalidInput
from lm_engine.lens import logit_lens

PHRASE = "the cat sat on the mat"


@pytest.fixture(scope="module")
def pair():
    return make_tiny_pair(seed=3)


def test_lens_has_one_row_per_layer_position_and_rank(pair):
    model, tokenizer = pair
    n = tokenizer(PHRASE, return_tensors="pt")["input_ids"].shape[-1]
    table = logit_lens(pair, PHRASE, top=4)
    layers = model.config.num_hidden_layers + 1  # the embeddings, then every block
    assert len(table) == layers * n * 4
    assert sorted(table["layer"].unique()) == list(range(layers))
    assert sorted(table["position"].unique()) == list(range(n))
    assert (
        table.groupby(["layer", "position"])["rank"]
        .apply(list)
        .map(lambda ranks: ranks == [1, 2, 3, 4])
        .all()
    )


def test_lens_final_layer_equals_the_models_own_prediction(pair):
    model, tokenizer = pair
    ids = tokenizer(PHRASE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = model(ids).logits[0].softmax(-1)  # (n, V)
    top = torch.topk(probs, 3, dim=-1)
    table = logit_lens(pair, PHRASE, top=3)
    last = table[table["layer"] == table["layer"].max()].sort_values(["position", "rank"])
    assert last["token_id"].tolist() == top.indices.reshape(-1).tolist()
    assert last["probability"].tolist() == pytest.approx(top.values.reshape(-1).tolist(), abs=1e-5)


def test_lens_intermediate_layer_goes_through_the_final_norm_and_head(pair):
    model, tokenizer = pair
    ids = tokenizer(PHRASE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states[1]  # (1, n, H)
        probs = model.lm_head(model.model.norm(hidden))[0].softmax(-1)  # (n, V)
    table = logit_lens(pair, PHRASE, top=1)
    layer1 = table[table["layer"] == 1].sort_values("position")
    assert layer1["token_id"].tolist() == probs.argmax(-1).tolist()
    assert layer1["probability"].tolist() == pytest.approx(probs.max(-1).values.tolist(), abs=1e-5)


def test_lens_names_the_input_token_of_each_position(pair):
    table = logit_lens(pair, PHRASE, top=1)
    first_layer = table[table["layer"] == 0].sort_values("position")
    assert "".join(first_layer["input_token"]).split() == PHRASE.split()


@pytest.mark.parametrize(("phrase", "top"), [("", 5), ("   ", 5), (PHRASE, 0), (PHRASE, 51)])
def test_lens_rejects_bad_input(pair, phrase, top):
    with pytest.raises(InvalidInput):
        logit_lens(pair, phrase, top=top)


@pytest.mark.slow
def test_real_model_lens_final_layer_equals_next_token_prediction():
    from lm_engine import load_model

    lm = load_model()
    phrase = "This weekend I plan to"
    table = logit_lens(lm, phrase, top=1)
    last = table[(table["layer"] == table["layer"].max())].sort_values("position")
    expected = lm.next_token_probabilities(phrase)  # (V,) after the last token
    assert int(last["token_id"].iloc[-1]) == int(expected.argmax())
    assert float(last["probability"].iloc[-1]) == pytest.approx(float(expected.max()), abs=1e-4)
    assert table["layer"].max() == lm.model.config.num_hidden_layers

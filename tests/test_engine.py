"""Fast unit tests of lm_engine on a tiny random model (no download, no bundled weights)."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings

import pytest
import torch
from tiny import make_tiny_pair

import lm_engine
from lm_engine import (
    ContextTruncatedWarning,
    DeviceNotAvailable,
    EngineConfig,
    InvalidInput,
    LanguageModel,
    LMEngineError,
    ModelNotAvailable,
    load_model,
    loaders,
    resolve,
)
from lm_engine.device import resolve_device, weights_dtype

PHRASE = "This weekend I plan to"
PHRASES = ["this weekend i plan to", "to be or not to", "hello", "the cat sat on the mat ,"]


@pytest.fixture(scope="module")
def lm() -> LanguageModel:
    model, tokenizer = make_tiny_pair()
    return LanguageModel("tiny", model, tokenizer)


def plain_logits(lm: LanguageModel, phrase: str) -> torch.Tensor:
    """The notebook's computation, written out with plain transformers calls."""
    input_ids = lm.tokenizer(phrase, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return lm.model(input_ids).logits  # (1, n, V)


def test_attributes_describe_the_model(lm):
    assert lm.vocab_size == len(lm.tokenizer) == plain_logits(lm, PHRASE).shape[-1]
    assert lm.num_parameters == sum(p.numel() for p in lm.model.parameters())
    assert lm.max_context == 64
    assert lm.device == torch.device("cpu")
    assert "tiny" in repr(lm)


def test_encode_returns_the_tokenizers_ids_with_shape_1_by_n(lm):
    ids = lm.encode(PHRASE)
    expected = lm.tokenizer(PHRASE, return_tensors="pt")["input_ids"]
    assert ids.shape == (1, 5)
    assert ids.dtype == torch.long
    assert torch.equal(ids, expected)


def test_logits_have_shape_1_n_v_and_equal_a_plain_forward(lm):
    logits = lm.logits(PHRASE)
    assert logits.shape == (1, 5, lm.vocab_size)
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, plain_logits(lm, PHRASE), atol=1e-5)


@pytest.mark.parametrize("position", [-1, -2, 0, 3])
def test_next_token_probabilities_are_the_softmax_at_that_position(lm, position):
    probabilities = lm.next_token_probabilities(PHRASE, position=position)
    expected = torch.softmax(plain_logits(lm, PHRASE)[0, position], dim=-1)
    assert probabilities.shape == (lm.vocab_size,)
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(probabilities, expected, atol=1e-6)


def test_top_k_table_matches_softmax_topk_in_descending_order(lm):
    table = lm.top_k(PHRASE, k=7)
    logits = plain_logits(lm, PHRASE)[0, -1]
    top = torch.topk(torch.softmax(logits, dim=-1), 7)
    assert list(table.columns) == ["tokens", "token_ids", "probabilities", "logits"]
    assert table["token_ids"].tolist() == top.indices.tolist()
    assert table["tokens"].tolist() == [lm.tokenizer.decode([i]) for i in top.indices.tolist()]
    assert table["probabilities"].tolist() == pytest.approx(top.values.tolist(), abs=1e-6)
    assert table["logits"].tolist() == pytest.approx(logits[top.indices].tolist(), abs=1e-5)
    assert table["probabilities"].is_monotonic_decreasing
    assert table.attrs["truncated_tokens"] == 0


def test_top_k_at_an_earlier_position_scores_the_token_after_it(lm):
    table = lm.top_k(PHRASE, k=3, position=-2)
    expected = torch.topk(torch.softmax(plain_logits(lm, PHRASE)[0, -2], dim=-1), 3)
    assert table["token_ids"].tolist() == expected.indices.tolist()


def test_predict_next_tokens_is_top_k_at_the_last_position(lm):
    assert lm.predict_next_tokens(PHRASE, 5).equals(lm.top_k(PHRASE, k=5))


def test_top_k_from_logits_is_the_top_k_table_of_logits_already_computed(lm):
    for phrase in PHRASES:
        table = lm.top_k_from_logits(lm.logits(phrase)[0, -1], k=5)
        single = lm.top_k(phrase, k=5)
        assert list(table.columns) == list(single.columns)
        assert table["token_ids"].tolist() == single["token_ids"].tolist(), phrase
        assert table["tokens"].tolist() == single["tokens"].tolist(), phrase
        assert table["probabilities"].tolist() == pytest.approx(
            single["probabilities"].tolist(), abs=1e-6
        )


def test_top_k_batch_equals_one_by_one_for_phrases_of_different_lengths(lm):
    batched = lm.top_k_batch(PHRASES, k=5)
    assert len(batched) == len(PHRASES)
    for phrase, table in zip(PHRASES, batched, strict=True):
        single = lm.top_k(phrase, k=5)
        assert table["token_ids"].tolist() == single["token_ids"].tolist(), phrase
        assert table["probabilities"].tolist() == pytest.approx(
            single["probabilities"].tolist(), abs=1e-5
        )


def test_top_k_batch_of_no_phrases_is_an_empty_list(lm):
    assert lm.top_k_batch([], k=3) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lm: lm.top_k(""), "empty"),
        (lambda lm: lm.top_k("   \n"), "empty"),
        (lambda lm: lm.top_k(42), "string"),
        (lambda lm: lm.logits(None), "string"),
        (lambda lm: lm.top_k(PHRASE, k=0), "between 1"),
        (lambda lm: lm.top_k(PHRASE, k=10_000), "between 1"),
        (lambda lm: lm.top_k(PHRASE, k=2.5), "whole number"),
        (lambda lm: lm.top_k(PHRASE, k=True), "whole number"),
        (lambda lm: lm.next_token_probabilities(PHRASE, position=5), "outside the phrase"),
        (lambda lm: lm.next_token_probabilities(PHRASE, position=-6), "outside the phrase"),
        (lambda lm: lm.top_k_batch("to be or not to", k=3), "list of strings"),
        (lambda lm: lm.top_k_batch(["hello", ""], k=3), "phrase 2"),
        (lambda lm: lm.top_k_from_logits(lm.logits(PHRASE), k=3), r"\(\d+,\) tensor"),
        (lambda lm: lm.top_k_from_logits([0.5, 0.5], k=1), r"\(\d+,\) tensor"),
    ],
)
def test_bad_input_raises_invalid_input_with_a_plain_message(lm, call, message):
    with pytest.raises(InvalidInput, match=message):
        call(lm)


def test_invalid_input_is_an_engine_error_and_a_value_error():
    assert issubclass(InvalidInput, LMEngineError)
    assert issubclass(InvalidInput, ValueError)
    assert issubclass(ModelNotAvailable, LMEngineError)


def test_a_phrase_longer_than_the_context_is_truncated_from_the_left(lm):
    words = ("the cat sat on the mat " * 20).strip()  # 120 tokens, context is 64
    full = lm.tokenizer(words, return_tensors="pt")["input_ids"]
    assert full.shape[-1] == 120
    assert lm.encoding(words).truncated_tokens == 56
    with pytest.warns(ContextTruncatedWarning, match="56"):
        logits = lm.logits(words)
    assert logits.shape == (1, 64, lm.vocab_size)
    with torch.no_grad():
        expected = lm.model(full[:, -64:]).logits[0, -1]
    table = lm.top_k(words, k=3)
    assert table.attrs["truncated_tokens"] == 56
    assert table["token_ids"].tolist() == torch.topk(expected, 3).indices.tolist()
    [batched] = lm.top_k_batch([words], k=3)
    assert batched.attrs["truncated_tokens"] == 56


def test_a_short_phrase_gives_no_truncation_warning(lm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm.logits(PHRASE)


def test_concurrent_calls_from_threads_give_the_same_tables(lm):
    expected = {p: lm.top_k(p, k=4)["token_ids"].tolist() for p in PHRASES}
    results, errors = [], []

    def work(phrase: str) -> None:
        try:
            for _ in range(5):
                results.append((phrase, lm.top_k(phrase, k=4)["token_ids"].tolist()))
                lm.top_k_batch(PHRASES, k=2)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in PHRASES * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 40
    assert all(ids == expected[phrase] for phrase, ids in results)


# -- configuration and devices -------------------------------------------------------------


def test_engine_config_reads_its_environment_variables(tmp_path):
    config = EngineConfig.from_env(
        {"LM_ENGINE_CACHE": str(tmp_path), "LM_ENGINE_DEVICE": "cpu", "LM_ENGINE_HALF": "1"}
    )
    assert config == EngineConfig(cache_dir=tmp_path, device="cpu", half=True)


def test_engine_config_defaults_to_the_user_cache_dir_and_auto_device(tmp_path):
    config = EngineConfig.from_env({"XDG_CACHE_HOME": str(tmp_path)})
    assert config.cache_dir == tmp_path / "lm_engine"
    assert config.device is None
    assert config.half is False


def test_engine_config_rejects_a_bad_half_flag():
    with pytest.raises(LMEngineError, match="LM_ENGINE_HALF"):
        EngineConfig.from_env({"LM_ENGINE_HALF": "maybe"})


def test_device_override_and_half_precision_only_on_cuda():
    config = EngineConfig(device="cpu", half=True)
    assert resolve_device(None, config) == torch.device("cpu")
    assert weights_dtype(torch.device("cpu"), config) == torch.float32
    assert weights_dtype(torch.device("cuda"), config) == torch.float16


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_raises_device_not_available():
    with pytest.raises(DeviceNotAvailable, match="cuda"):
        resolve_device("cuda", EngineConfig())


def test_an_unknown_device_name_raises_device_not_available():
    with pytest.raises(DeviceNotAvailable, match="unknown device"):
        resolve_device("gpu-please", EngineConfig())


# -- loading ----------------------------------------------------------------------------------


def test_importing_lm_engine_loads_no_model_and_no_transformers():
    code = "import sys, lm_engine; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_uncached_hub_id_offline_raises_model_not_available(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(loaders, "_hub_reachable", lambda timeout_s=2.0: False)
    with pytest.raises(ModelNotAvailable) as info:
        resolve("someone/not-a-cached-model", config=EngineConfig(cache_dir=tmp_path))
    message = str(info.value)
    assert "someone/not-a-cached-model" in message
    assert "not cached" in message
    assert "no model hub is reachable" in message
    assert "smollm2-135m" in message


def test_a_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotAvailable, match="config.json"):
        resolve(str(tmp_path), config=EngineConfig(cache_dir=tmp_path))


@pytest.fixture()
def saved_tiny(tmp_path):
    model, tokenizer = make_tiny_pair(seed=3)
    folder = tmp_path / "tiny-model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def test_a_local_folder_resolves_and_loads_once_per_device(saved_tiny, tmp_path):
    folder, model = saved_tiny
    config = EngineConfig(cache_dir=tmp_path / "cache", device="cpu")
    source = resolve(str(folder), config=config)
    assert source.path == str(folder.resolve())
    assert source.tokenizer_kwargs == {}
    loaded = []
    threads = [
        threading.Thread(target=lambda: loaded.append(load_model(str(folder), config=config)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 4
    assert all(lm is loaded[0] for lm in loaded)
    lm = loaded[0]
    with torch.no_grad():
        expected = model(lm.encode("to be or not to")).logits
    assert torch.allclose(lm.logits("to be or not to"), expected, atol=1e-5)


def test_gpt2_family_models_get_add_prefix_space(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10).save_pretrained(tmp_path)
    source = resolve(str(tmp_path), config=EngineConfig(cache_dir=tmp_path))
    assert source.tokenizer_kwargs == {"add_prefix_space": True}


def test_an_incomplete_cache_folder_is_rebuilt_not_used(monkeypatch, tmp_path):
    config = EngineConfig(cache_dir=tmp_path)
    target = loaders.bundled_cache_folder(config)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # as if killed after the first file
    built = []

    def fake_build(gguf, folder):
        built.append(folder)
        folder.mkdir()
        for name in loaders.CACHE_FILES:
            (folder / name).write_text("x")

    monkeypatch.setattr(loaders, "_write_bundled_cache", fake_build)
    source = resolve(config=config)
    assert built == [target]
    assert source.path == str(target)
    resolve(config=config)
    assert len(built) == 1, "a complete cache must be reused"


def test_public_api_is_declared():
    for name in ("load_model", "resolve", "LanguageModel", "EngineConfig", "ModelSource"):
        assert name in lm_engine.__all__


def test_top_k_asks_the_model_for_the_last_positions_logits_only(monkeypatch):
    model, tokenizer = make_tiny_pair()
    lm = LanguageModel("tiny", model, tokenizer)
    seen = []
    forward = model.forward

    def spy(*args, **kwargs):
        seen.append((kwargs.get("logits_to_keep"), torch.is_inference_mode_enabled()))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    lm.top_k(PHRASE, k=3)
    lm.top_k_batch(PHRASES, k=3)
    lm.next_token_probabilities(PHRASE, position=-2)
    assert seen == [(1, True), (1, True), (2, True)]

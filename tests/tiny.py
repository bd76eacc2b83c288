"""Tiny, randomly initialised causal LMs built inside the tests (no download, no files).

The tokenizer is a real ``tokenizers`` word-level tokenizer over a small vocabulary, wrapped
in ``PreTrainedTokenizerFast`` so that it behaves like the tokenizers students load.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = (
    "this weekend i plan to go visit my family and friends the a of in on for "
    "to be or not god so loved world shocking finding scientists discovered herd "
    "unicorns living remote valley , . ! ? hello cat dog sat mat run walk read "
    "write code model token logits next word sentence"
).split()
SPECIAL = ["<unk>", "<eos>"]


def make_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer; unknown words map to ``<unk>``."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL + list(dict.fromkeys(WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    from tokenizers import normalizers

    backend.normalizer = normalizers.Lowercase()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>")
    tok.pad_token = tok.eos_token
    return tok


def make_tiny_model(vocab_size: int, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    """A 2-layer Llama with random weights, in eval mode."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=1,
        pad_token_id=1,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def make_tiny_pair(seed: int = 0):
    """Return ``(model, tokenizer)``: a tiny random model and its word-level tokenizer."""
    tokenizer = make_tiny_tokenizer()
    return make_tiny_model(len(tokenizer), seed=seed), tokenizer

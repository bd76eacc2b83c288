"""lm_engine: the course's causal language model and the exercise's operations on it.

Public API:
    load_model(name="smollm2-135m", device=None, *, config=None) -> LanguageModel
        One shared instance per process per (name, device); thread-safe.
    resolve(name="smollm2-135m", *, config=None) -> ModelSource
        Where a model's files are, for plain ``from_pretrained`` (the notebook's setup cell).
    LanguageModel(name, model, tokenizer, *, source=None)
        encode, logits, next_token_probabilities, top_k, top_k_from_logits,
        predict_next_tokens, top_k_batch.
    EngineConfig: ``LM_ENGINE_CACHE``, ``LM_ENGINE_DEVICE``, ``LM_ENGINE_HALF``.
    Errors: LMEngineError > ModelNotAvailable, InvalidInput, DeviceNotAvailable.
    generate(lm, phrase, strategy, max_new_tokens, temperature, top_k, top_p, num_beams, seed)
        Decoding (greedy, sample, top-k, top-p, beam) with a KV cache -> Generation.
    apply_temperature, top_k_filter, top_p_filter, sample_next: pure logit processors.
    logit_lens(lm, phrase, top=5): each layer's top next tokens at each position.

Importing the package loads nothing; models load on the first ``load_model`` call.
"""

from __future__ import annotations

from lm_engine.config import EngineConfig
from lm_engine.errors import DeviceNotAvailable, InvalidInput, LMEngineError, ModelNotAvailable
from lm_engine.lens import logit_lens
from lm_engine.loaders import BUNDLED_MODEL, ModelSource, resolve
from lm_engine.model import ContextTruncatedWarning, Encoding, LanguageModel
from lm_engine.registry import load_model
from lm_engine.sampling import (
    STRATEGIES,
    Generation,
    apply_temperature,
    generate,
    sample_next,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "BUNDLED_MODEL",
    "STRATEGIES",
    "ContextTruncatedWarning",
    "DeviceNotAvailable",
    "Encoding",
    "EngineConfig",
    "Generation",
    "InvalidInput",
    "LMEngineError",
    "LanguageModel",
    "ModelNotAvailable",
    "ModelSource",
    "apply_temperature",
    "generate",
    "load_model",
    "logit_lens",
    "resolve",
    "sample_next",
    "top_k_filter",
    "top_p_filter",
]

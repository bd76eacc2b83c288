"""``load_model``: one shared ``LanguageModel`` per process per (name, device, dtype).

Streamlit serves many sessions from threads of one process; loading the same model twice
would double memory and startup time. A per-key lock makes concurrent first calls wait for
one load instead of racing, without blocking loads of other models.
"""

from __future__ import annotations

import threading

import torch

from lm_engine.config import EngineConfig
from lm_engine.device import resolve_device, weights_dtype
from lm_engine.loaders import BUNDLED_MODEL, load_pretrained, resolve
from lm_engine.model import LanguageModel

__all__ = ["clear_loaded_models", "load_model"]

_models: dict[tuple, LanguageModel] = {}
_key_locks: dict[tuple, threading.Lock] = {}
_registry_lock = threading.Lock()


def load_model(
    name: str = BUNDLED_MODEL,
    device: str | torch.device | None = None,
    *,
    config: EngineConfig | None = None,
) -> LanguageModel:
    """The shared ``LanguageModel`` for ``name`` on ``device``, loading it on first use.

    Args:
        name: ``"smollm2-135m"`` (bundled, offline), a Hugging Face id, or a local folder.
        device: ``None`` uses ``LM_ENGINE_DEVICE`` or the best available (CUDA, MPS, CPU).
        config: engine configuration; ``None`` reads ``EngineConfig.from_env()``.

    Raises:
        ModelNotAvailable: the model cannot be found offline and no hub is reachable.
        DeviceNotAvailable: the requested device does not exist here.
    """
    config = EngineConfig.from_env() if config is None else config
    resolved = resolve_device(device, config)
    dtype = weights_dtype(resolved, config)
    key = (
        name.strip() if isinstance(name, str) else name,
        str(resolved),
        dtype,
        str(config.cache_dir),
    )
    with _registry_lock:
        if key in _models:
            return _models[key]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _models:
            source = resolve(name, config=config)
            model, tokenizer = load_pretrained(source, resolved, dtype)
            loaded = LanguageModel(source.name, model, tokenizer, source=source)
            with _registry_lock:
                _models[key] = loaded
    return _models[key]


def clear_loaded_models() -> None:
    """Forget every shared model (tests use it to measure a fresh load)."""
    with _registry_lock:
        _models.clear()
        _key_locks.clear()

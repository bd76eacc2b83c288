"""The engine's configuration: one frozen dataclass, read from ``LM_ENGINE_*`` variables.

| variable | meaning | default |
|---|---|---|
| ``LM_ENGINE_CACHE`` | folder for the dequantized bundled model | ``$XDG_CACHE_HOME/lm_engine`` (else ``~/.cache/lm_engine``; ``~/Library/Caches/lm_engine`` on macOS) |
| ``LM_ENGINE_DEVICE`` | ``cpu``, ``cuda``, ``cuda:1``, ``mps``; empty = auto | auto: CUDA, else MPS, else CPU |
| ``LM_ENGINE_HALF`` | ``1`` = float16 weights on CUDA (ignored on CPU/MPS) | ``0`` |
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lm_engine.errors import LMEngineError

__all__ = ["EngineConfig", "default_cache_dir"]


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's cache folder for the engine (used when ``LM_ENGINE_CACHE`` is unset)."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg) / "lm_engine"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "lm_engine"
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "lm_engine" / "Cache"
    return Path.home() / ".cache" / "lm_engine"


def _parse_bool(name: str, raw: str | None) -> bool:
    if raw is None or raw.strip() == "":
        return False
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise LMEngineError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


@dataclass(frozen=True)
class EngineConfig:
    """Where the engine caches weights and which device it runs on.

    Attributes:
        cache_dir: parent folder of the bundled model's safetensors cache (``LM_ENGINE_CACHE``).
        device: ``None`` picks automatically (CUDA, else MPS, else CPU); otherwise a torch
            device string such as ``"cpu"`` or ``"cuda:0"`` (``LM_ENGINE_DEVICE``).
        half: load float16 weights when running on CUDA; results are still returned as
            float32 (``LM_ENGINE_HALF``).
    """

    cache_dir: Path = field(default_factory=default_cache_dir)
    device: str | None = None
    half: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineConfig:
        """Read the configuration from ``env`` (default: ``os.environ``).

        Raises:
            LMEngineError: ``LM_ENGINE_HALF`` is not a recognised boolean.
        """
        env = os.environ if env is None else env
        cache = env.get("LM_ENGINE_CACHE", "").strip()
        device = env.get("LM_ENGINE_DEVICE", "").strip() or None
        return cls(
            cache_dir=Path(cache).expanduser() if cache else default_cache_dir(env),
            device=device,
            half=_parse_bool("LM_ENGINE_HALF", env.get("LM_ENGINE_HALF")),
        )

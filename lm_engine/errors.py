"""The engine's named exceptions: callers catch these, never torch or transformers errors."""

from __future__ import annotations

__all__ = ["DeviceNotAvailable", "InvalidInput", "LMEngineError", "ModelNotAvailable"]


class LMEngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ModelNotAvailable(LMEngineError):
    """The requested model is neither bundled, cached, nor downloadable right now."""


class InvalidInput(LMEngineError, ValueError):
    """A phrase, ``k`` or ``position`` the engine cannot use; the message says why."""


class DeviceNotAvailable(LMEngineError):
    """The requested device (e.g. ``LM_ENGINE_DEVICE=cuda``) does not exist on this machine."""

"""Choosing the torch device and dtype: CUDA, else Apple MPS, else CPU."""

from __future__ import annotations

import torch

from lm_engine.config import EngineConfig
from lm_engine.errors import DeviceNotAvailable

__all__ = ["resolve_device", "weights_dtype"]


def resolve_device(requested: str | torch.device | None, config: EngineConfig) -> torch.device:
    """The device to run on: ``requested``, else ``config.device``, else the best available.

    Raises:
        DeviceNotAvailable: the named device is unknown or not present on this machine.
    """
    wanted = requested if requested is not None else config.device
    if wanted is None or str(wanted).strip().lower() in {"", "auto"}:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(str(wanted).strip().lower())
    except RuntimeError:
        raise DeviceNotAvailable(
            f"unknown device {str(wanted)!r}; use cpu, cuda, cuda:N or mps (LM_ENGINE_DEVICE)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceNotAvailable("device 'cuda' was requested but no CUDA GPU is available")
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise DeviceNotAvailable(
            f"device {device} was requested but only {torch.cuda.device_count()} GPU(s) exist"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceNotAvailable("device 'mps' was requested but Apple MPS is not available")
    if device.type not in {"cpu", "cuda", "mps"}:
        raise DeviceNotAvailable(f"unsupported device {str(device)!r}; use cpu, cuda or mps")
    return device


def weights_dtype(device: torch.device, config: EngineConfig) -> torch.dtype:
    """float16 on CUDA when half precision is asked for, float32 everywhere else."""
    if config.half and device.type == "cuda":
        return torch.float16
    return torch.float32

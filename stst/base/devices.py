"""Choosing the compute device: automatic by default, never a silent fallback when one is named."""

from __future__ import annotations

import torch

from .errors import StstError
from .machine import cpu_name


def hardware_info(device: torch.device) -> dict:
    """What a model was trained on, for its metadata: device, threads, CPU and GPU names."""
    info = {"device": str(device), "threads": torch.get_num_threads(), "cpu": cpu_name()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; a named device that is missing is an error."""
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise StstError(f"unknown device '{spec}' (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise StstError(f"device '{spec}' requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise StstError(f"device '{spec}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise StstError(f"device '{spec}' requested but Apple MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise StstError(f"unsupported device '{spec}' (use auto, cpu, cuda, cuda:N or mps)")
    return device

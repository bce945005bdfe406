"""The ``.pth`` model format: architecture, weights and metadata, loaded without running code.

A stst checkpoint is a plain dict::

    {"format": "stst-model", "version": 1,
     "arch": {"channels": 32, "residual": False},
     "state_dict": {...},
     "metadata": {...},            # style, training options, losses, versions
     "style_image": uint8 tensor,  # optional: the style image as trained on (for evaluation)
     "training": {"optimizer": ...}}  # optional: for --resume (position etc. are in metadata)

A bare ``state_dict`` as published by pytorch/examples ``fast_neural_style``
is accepted too. Files are always read with ``torch.load(weights_only=True)``,
which refuses pickles that would construct arbitrary objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import FileProblem, first_line
from .fileio import atomic_path
from .network import ArchConfig, TransformerNet

FORMAT_TAG = "stst-model"
FORMAT_VERSION = 1

# Old PyTorch saved running statistics for InstanceNorm; the network never uses them.
_STALE_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


@dataclass
class Checkpoint:
    """What a model file holds, after validation."""

    arch: ArchConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    style_image: torch.Tensor | None = None  # (3, H, W) uint8

    def build(self, device: torch.device | str = "cpu") -> TransformerNet:
        """A network in eval mode with these weights, in float32 on ``device``."""
        model = TransformerNet(self.arch)
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()


def save_checkpoint(
    path: str | Path,
    model: TransformerNet,
    metadata: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    style_image: torch.Tensor | None = None,
    half: bool = False,
) -> None:
    """Write ``model`` to ``path`` atomically, adding creation time and versions to the metadata.

    ``half`` stores the weights as float16 (half the file size; loading casts back).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = dict(metadata or {})
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    meta["stst_version"] = __version__
    meta["torch_version"] = str(torch.__version__)
    payload: dict[str, Any] = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "arch": model.config.to_dict(),
        "state_dict": state,
        "metadata": meta,
    }
    if style_image is not None:
        payload["style_image"] = style_image
    if training is not None:
        payload["training"] = training
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _arch_from_state_dict(state: dict[str, torch.Tensor]) -> ArchConfig:
    return ArchConfig(channels=state["conv1.conv2d.weight"].shape[0])


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in words (weights_only puts the reason deep in its message)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    unsafe = [line for line in lines if "unsupported" in line.lower()]
    if "Weights only load failed" in str(exc):
        detail = f" ({unsafe[0]})" if unsafe else ""
        return f"refused: loading it would run code or build arbitrary objects{detail}"
    return f"not a PyTorch model file, or it is truncated or corrupt ({type(exc).__name__}: {first_line(exc)})"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a model file; any problem is a one-line :class:`FileProblem`."""
    path = Path(path)
    if not path.is_file():
        raise FileProblem(path, "model file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise FileProblem(path, _load_failure(exc)) from exc
    if not isinstance(raw, dict):
        raise FileProblem(path, f"not a model file (holds a {type(raw).__name__})")
    if raw.get("format") == FORMAT_TAG:
        if raw.get("version") != FORMAT_VERSION:
            raise FileProblem(path, f"model format version {raw.get('version')} is not supported")
        state = raw.get("state_dict")
        try:
            arch = ArchConfig(**raw["arch"])
        except (KeyError, TypeError) as exc:
            raise FileProblem(path, f"invalid architecture settings ({first_line(exc)})") from exc
        ckpt = Checkpoint(arch, state, dict(raw.get("metadata") or {}), raw.get("training"), raw.get("style_image"))
    elif "conv1.conv2d.weight" in raw and all(torch.is_tensor(v) for v in raw.values()):
        state = {k: v for k, v in raw.items() if not _STALE_KEY.search(k)}
        ckpt = Checkpoint(_arch_from_state_dict(state), state, {"source": "bare state_dict"})
    else:
        raise FileProblem(path, "not a stst model or fast_neural_style state_dict")
    try:
        ckpt.build()
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise FileProblem(path, f"weights do not fit the network ({first_line(exc)})") from exc
    return ckpt


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[TransformerNet, Checkpoint]:
    """Load a model file and return the ready network and its checkpoint."""
    ckpt = load_checkpoint(path)
    return ckpt.build(device), ckpt

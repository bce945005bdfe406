"""Training options: the settings that determine a style model's weights (no torch import, for a fast CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_CONTENT_LAYER = "relu2_2"
DEFAULT_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@dataclass(frozen=True)
class TrainOptions:
    """Everything that determines the trained weights; stored in the model and reused by --resume."""

    style: str
    dataset: str
    image_size: int = 256
    style_size: int = 512
    batch_size: int = 4
    iterations: int = 40_000
    lr: float = 1e-3
    content_weight: float = 1e5
    style_weight: float = 1e10
    tv_weight: float = 1e5
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(DEFAULT_STYLE_LAYERS, 1.0))
    seed: int = 0
    channels: int = 32


@dataclass
class RunSettings:
    """How a run is carried out, without effect on the weights."""

    output: Path
    device: str = "auto"
    workers: int = min(4, (os.cpu_count() or 1) // 2)
    checkpoint_every: int = 1000
    preview: Path | None = None
    preview_every: int = 500
    log: Path | None = None
    vgg_weights: Path | None = None
    progress: bool = True


def default(name: str, of: type = TrainOptions):
    """The default value of one field of :class:`TrainOptions` (or of ``of``)."""
    f = next(f for f in fields(of) if f.name == name)
    return f.default_factory() if callable(f.default_factory) else f.default

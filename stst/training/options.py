"""Training options: the settings that determine a style model's weights (no torch import, for a fast CLI)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from collections.abc import Callable
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
    # The painting's colours as a distribution (stst.training.palette.PaletteLoss; 0: off, as in the paper).
    palette_weight: float = 0.0
    # After the steps, an affine colour map of the output fitted to the painting's palette and folded into the
    # last layer (stst.training.palette.fit_colours; not for residual networks).
    palette_fit: bool = False
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(DEFAULT_STYLE_LAYERS, 1.0))
    lr_schedule: str = "constant"  # or "cosine": decay to 0 over the run
    seed: int = 0
    channels: int = 32
    residual: bool = False
    temporal_weight: float = 0.0  # stability under small camera motion, for video (stst.training.losses.TemporalLoss)
    init: str = ""  # a model file whose weights the run starts from (fine-tuning) instead of random ones
    # A wall-clock budget for the training steps (0: none). The run ends when it is spent (or at ``iterations``,
    # whichever comes first), and the cosine schedule follows the share of it spent instead of the iterations.
    minutes: float = 0.0
    # A mix of styles (stst.training.mixing): model file -> weight. The style target is the weighted mean of the
    # Gram matrices of those models' paintings, and ``style`` only names the mix.
    mix: dict[str, float] = field(default_factory=dict)


# What a resumed run may change: the photos it reads and how long it runs. The rest shapes the weights.
CHANGEABLE_ON_RESUME = frozenset({"dataset", "iterations", "minutes"})
FIXED_ON_RESUME = frozenset(f.name for f in fields(TrainOptions)) - CHANGEABLE_ON_RESUME


def options_from_dict(values: object) -> TrainOptions:
    """TrainOptions from a model file's metadata, type-checked; raises ValueError saying what is wrong."""
    if not isinstance(values, dict):
        raise ValueError("no training options")
    known = {f.name: f for f in fields(TrainOptions)}
    unknown = sorted(values.keys() - known.keys())
    if unknown:
        raise ValueError(f"unknown training option '{unknown[0]}'")
    for name, value in values.items():
        expected = str if name in ("style", "dataset", "init") else type(default(name))
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or (isinstance(value, bool) and expected is not bool):
            raise ValueError(f"training option '{name}' is a {type(value).__name__}, not a {expected.__name__}")
    small = [n for n in ("image_size", "style_size", "batch_size", "iterations", "channels") if values.get(n, 1) < 1]
    if small:
        raise ValueError(f"training option '{small[0]}' must be at least 1")
    if "style" not in values or "dataset" not in values:
        raise ValueError("training options lack the style or the dataset")
    for name, what in (("style_layers", "layer names"), ("mix", "model files")):
        if not all(isinstance(k, str) and isinstance(w, (int, float)) for k, w in values.get(name, {}).items()):
            raise ValueError(f"training option '{name}' must map {what} to weights")
    return TrainOptions(**values)


# Named recipes: the settings they change from the TrainOptions defaults (the paper's).
# Measured against each other in models/README.md.
PRESETS: dict[str, dict] = {
    # Johnson et al. 2016: 256 px crops, batch 4, Adam 1e-3, 40k iterations. For GPUs.
    "johnson": {},
    # The same losses in a CPU budget (about 2 hours on 2 AVX2 cores, 45 minutes with AVX-512): 128 px crops
    # (4x cheaper iterations) and cosine decay from 2e-3. Won at equal wall time.
    "cpu-fast": {"image_size": 128, "lr": 2e-3, "lr_schedule": "cosine", "iterations": 4000},
    # A new style in minutes on a CPU: a trained network fine-tuned to the painting for a wall-clock budget
    # (the iterations only cap it), on the photos that ship with stst. In minutes the Gram loss alone moves the
    # texture but keeps the base network's colours, so the palette term takes the painting's, a doubled style
    # weight more of its strokes, and a colour map fitted at the end the rest of the palette. See docs/training.md.
    "quick": {"image_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "iterations": 100_000, "minutes": 3.0,
              "init": "shipwreck", "style_weight": 2e10, "palette_weight": 5e4, "palette_fit": True},
    # The quick recipe with a GPU's budget: the paper's 256 px crops in batches of 8 for 40 seconds of steps, so that
    # the whole command ends within a minute. A first setting, to be measured on a GPU (docs/training.md).
    "gpu-quick": {"image_size": 256, "batch_size": 8, "lr": 1e-3, "lr_schedule": "cosine", "iterations": 100_000,
                  "minutes": 40 / 60, "init": "shipwreck", "style_weight": 2e10, "palette_weight": 5e4,
                  "palette_fit": True},
}
# The photo set each preset trains on when --dataset is not given: the quick ones download nothing.
PRESET_DATASETS = {"quick": "kodak", "gpu-quick": "kodak"}


def preset_for(device_type: str, dataset_given: bool = False) -> str:
    """The preset that ``--preset auto`` means on a device type: the quick recipe on CPUs; on a CUDA GPU its own quick
    recipe unless a data set is given (then Johnson's), so that a plain ``stst train --style P`` needs no download
    anywhere; Johnson's on Apple GPUs (not measured)."""
    if device_type == "cuda":
        return "johnson" if dataset_given else "gpu-quick"
    return "johnson" if device_type == "mps" else "quick"


def make_options(style: str, dataset: str, preset: str, **given) -> TrainOptions:
    """TrainOptions from a preset, with every option in ``given`` that is not None taking precedence."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    settings = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
    return TrainOptions(style=style, dataset=dataset, **settings)


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
    overwrite: bool = False  # replace an existing output file (never an input)
    precision: str = "auto"  # auto, fp32, bf16 or fp16 autocast for the forward passes (see stst.training.train)
    compile: bool = False  # torch.compile the transformer (pays off on GPUs and long runs)
    # Told after every step: the iteration, and the seconds of training so far (the server's progress).
    on_step: Callable[[int, float], None] | None = None


def cosine_rate(lr: float, iteration: float, total: float) -> float:
    """The rate at ``iteration`` (0-based; or seconds spent) of ``total`` under cosine decay from ``lr`` to 0."""
    return lr * 0.5 * (1 + math.cos(math.pi * iteration / total))


def default(name: str, of: type = TrainOptions):
    """The default value of one field of :class:`TrainOptions` (or of ``of``)."""
    f = next(f for f in fields(of) if f.name == name)
    return f.default_factory() if callable(f.default_factory) else f.default

"""The ``.pth`` model format: architecture, weights and metadata, loaded without running code.

A stst checkpoint is a plain dict::

    {"format": "stst-model", "version": 1,
     "arch": {"channels": 32, "residual": False, "design": "johnson"},  # older files: no design
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
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..base.errors import FileProblem, first_line
from ..base.fileio import atomic_path
from ..base.filetypes import sniff
from ..base.limits import MAX_CHANNELS, MAX_STYLE_SIDE
from .network import DESIGNS, ArchConfig, TransformerNet, build_network

FORMAT_TAG = "stst-model"
FORMAT_VERSION = 1

# Old PyTorch saved running statistics for InstanceNorm; the network never uses them.
_STALE_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


NOT_FINITE_WEIGHTS = "holds weights that are not finite (a broken model?)"


@dataclass
class Checkpoint:
    """What a model file holds, after validation."""

    arch: ArchConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    style_image: torch.Tensor | None = None  # (3, H, W) uint8

    @property
    def finite(self) -> bool:
        """Whether every weight is finite: a model broken by a diverged run is not, and teaches only NaN."""
        return all(bool(torch.isfinite(v).all()) for v in self.state_dict.values() if v.is_floating_point())

    def build(self, device: torch.device | str = "cpu") -> TransformerNet:
        """A network in eval mode with these weights, in float32 on ``device``."""
        model = build_network(self.arch)
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


# Metadata fields that stst reads, and the types they must have.
_METADATA_TYPES = {"style": dict, "options": dict, "iterations": int, "losses": dict, "train_seconds": (int, float),
                   "dataset": dict, "hardware": dict, "distilled_from": dict}


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in words (weights_only puts the reason deep in its message)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    unsafe = [line for line in lines if "unsupported" in line.lower()]
    if "Weights only load failed" in str(exc) and not any("unsupported operand" in l.lower() for l in unsafe):
        detail = f" ({unsafe[0]})" if unsafe else ""
        return f"refused: loading it would run code or build arbitrary objects{detail}"
    return f"not a PyTorch model file, or it is truncated or corrupt ({type(exc).__name__}: {first_line(exc, 100)})"


def _arch(path: Path, raw: Any) -> ArchConfig:
    if not isinstance(raw, dict):
        raise FileProblem(path, f"invalid architecture settings (a {type(raw).__name__}, not a dict)")
    try:
        arch = ArchConfig(**raw)
    except TypeError as exc:
        raise FileProblem(path, f"invalid architecture settings ({first_line(exc)})") from None
    if type(arch.channels) is not int or not 1 <= arch.channels <= MAX_CHANNELS:
        raise FileProblem(path, f"invalid architecture: {arch.channels!r} channels (allowed: 1 to {MAX_CHANNELS})")
    if type(arch.residual) is not bool:
        raise FileProblem(path, f"invalid architecture: residual is {arch.residual!r}, not true or false")
    if arch.design not in DESIGNS:
        raise FileProblem(path, f"invalid architecture: design {arch.design!r} (known: {', '.join(DESIGNS)})")
    return arch


def _check_weights(path: Path, arch: ArchConfig, state: Any) -> None:
    """Names, shapes and dtypes against the network built on the meta device (no memory is allocated)."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise FileProblem(path, "no weights in the file (state_dict is missing or not a dict of tensors)")
    with torch.device("meta"):
        expected = {k: v.shape for k, v in build_network(arch).state_dict().items()}
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong = [k for k in expected.keys() & state.keys() if state[k].shape != expected[k]]
    not_float = [k for k, v in state.items() if not v.is_floating_point()]
    for problem, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape for", wrong),
                          ("non-float", not_float)):
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            raise FileProblem(path, f"weights do not fit the network ({problem} {keys[0]}{more})")


def _check_extras(path: Path, raw: dict) -> None:
    """Metadata, style image and training state: the types stst relies on."""
    meta = raw.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise FileProblem(path, f"invalid metadata (a {type(meta).__name__}, not a dict)")
    for key, kind in _METADATA_TYPES.items():
        value = (meta or {}).get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise FileProblem(path, f"invalid metadata: '{key}' is a {type(value).__name__}")
    image = raw.get("style_image")
    if image is not None and not (
        torch.is_tensor(image) and image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3
        and 0 < image.shape[1] <= MAX_STYLE_SIDE and 0 < image.shape[2] <= MAX_STYLE_SIDE
    ):
        raise FileProblem(path, "invalid style image (expected a 3xHxW uint8 tensor)")
    training = raw.get("training")
    if training is not None and not isinstance(training, dict):
        raise FileProblem(path, f"invalid training state (a {type(training).__name__}, not a dict)")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a model file; any problem is a one-line :class:`FileProblem`."""
    path = Path(path)
    if not path.is_file():
        raise FileProblem(path, "a folder, not a model file" if path.is_dir() else "model file not found")
    kind = sniff(path)
    if kind:
        raise FileProblem(path, f"not a model file (it is {kind})")
    exported = _exported(path)
    if exported:
        raise FileProblem(path, exported)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise FileProblem(path, _load_failure(exc)) from exc
    if not isinstance(raw, dict):
        raise FileProblem(path, f"not a model file (holds a {type(raw).__name__})")
    if raw.get("format") == FORMAT_TAG:
        if raw.get("version") != FORMAT_VERSION:
            raise FileProblem(path, f"model format version {raw.get('version')!r} is not supported")
        arch = _arch(path, raw.get("arch"))
        state = raw.get("state_dict")
        _check_weights(path, arch, state)
        _check_extras(path, raw)
        ckpt = Checkpoint(arch, state, dict(raw.get("metadata") or {}), raw.get("training"), raw.get("style_image"))
    elif "conv1.conv2d.weight" in raw and all(isinstance(k, str) and torch.is_tensor(v) for k, v in raw.items()):
        state = {k: v for k, v in raw.items() if not _STALE_KEY.search(k)}
        weight = state["conv1.conv2d.weight"]
        arch = _arch(path, {"channels": weight.shape[0] if weight.dim() == 4 else 0})
        _check_weights(path, arch, state)
        ckpt = Checkpoint(arch, state, {"source": "bare state_dict"})
    else:
        raise FileProblem(path, "not a stst model or fast_neural_style state_dict")
    return ckpt


def _exported(path: Path) -> str | None:
    """Why ``path`` cannot be read as a model where ``stst export`` (or another tool) made it of one: an ONNX graph
    (which only ``stst stylize`` runs) or a TorchScript archive (which stst never loads: it holds code)."""
    if path.suffix.lower() == ".onnx":
        return "an exported ONNX graph: stst stylize runs it, this command needs the .pth model it came from"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # noqa: BLE001 - a damaged archive (bad names, offsets, sizes) is torch.load's to report
        return None
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        return "a TorchScript archive, which stst never loads (it holds code): give the .pth model it came from"
    return None


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[TransformerNet, Checkpoint]:
    """Load a model file and return the ready network and its checkpoint."""
    ckpt = load_checkpoint(path)
    return ckpt.build(device), ckpt

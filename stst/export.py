"""Exporting a model to ONNX or TorchScript, and running ONNX models with onnxruntime.

Both exports take any height and width: the pad-to-a-multiple-of-4 step is part
of the graph (branch-free integer arithmetic in :mod:`stst.network`). Inputs and
outputs are ``(N, 3, H, W)`` float32 RGB in 0..1 (outputs unclamped).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .errors import FileProblem, StstError, first_line
from .fileio import atomic_path
from .network import TransformerNet

FORMATS = ("onnx", "torchscript")
ONNX_HINT = "pip install onnx onnxscript onnxruntime (or pip install 'stst[onnx]')"


def _require(module: str, purpose: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise StstError(f"{purpose} needs the package '{module}': {ONNX_HINT}") from exc


def export_model(model: TransformerNet, path: str | Path, fmt: str) -> None:
    """Write ``model`` to ``path`` (atomically) as ``onnx`` or ``torchscript``."""
    model = model.cpu().eval()
    example = torch.rand(1, 3, 64, 96)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the C++/mobile route
        if fmt == "torchscript":
            torch.jit.script(model).save(str(tmp))
        elif fmt == "onnx":
            for module in ("onnx", "onnxscript"):
                _require(module, "ONNX export")
            dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=1),
                    3: torch.export.Dim("width", min=1)}
            program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes={"x": dims},
                                        input_names=["image"], output_names=["stylized"], verbose=False)
            program.save(str(tmp))
        else:
            raise StstError(f"unknown export format '{fmt}' (use {' or '.join(FORMATS)})")


class OnnxStylizer:
    """Runs an exported ONNX model with onnxruntime, with the call signature of :class:`stst.stylize.Stylizer`."""

    def __init__(self, path: str | Path, device: torch.device) -> None:
        _require("onnxruntime", "Running ONNX models")
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FileProblem(path, f"not a readable ONNX model ({first_line(exc)})") from exc
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input: batch.contiguous().numpy()})[0]
        return torch.from_numpy(out).clamp_(0, 1)

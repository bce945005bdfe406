"""Exporting a model to ONNX or TorchScript.

Both exports take any height and width: the pad-to-a-multiple-of-4 step is part
of the graph (branch-free integer arithmetic in :mod:`stst.model.network`). Inputs and
outputs are ``(N, 3, H, W)`` float32 RGB in 0..1 (outputs unclamped).

ONNX goes through torch's TorchScript-based exporter: it needs only the
``onnx`` package and takes about 2 s, where the dynamo exporter needs
``onnxscript`` and took 13 s for the same graph (2-core AVX2 CPU), which
matters because :mod:`stst.infer.onnxrt` exports each model on first use.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

from ..base.errors import StstError
from ..base.fileio import atomic_path
from .network import TransformerNet

FORMATS = ("onnx", "torchscript")
ONNX_HINT = "pip install onnx onnxruntime (both are dependencies of stst: reinstall it)"
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


def installed(module: str) -> bool:
    """Whether ``module`` is installed, found without importing it: importing onnx alone takes most of a
    second, which a run that finds its graph in the cache never needs."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str) -> None:
    """Install check with a hint: ``purpose`` needs the package ``module``."""
    if not installed(module):
        raise StstError(f"{purpose} needs the package '{module}': {ONNX_HINT}")


def export_model(model: TransformerNet, path: str | Path, fmt: str) -> None:
    """Write ``model`` to ``path`` (atomically) as ``onnx`` or ``torchscript``."""
    model = model.cpu().eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # torch.jit and the TorchScript-based ONNX exporter are deprecated, but still the C++/mobile route and
        # the fast exporter; DeprecationWarning/FutureWarning/TracerWarning (shape arithmetic is traced on purpose)
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            torch.jit.script(model).save(str(tmp))
        elif fmt == "onnx":
            require("onnx", "ONNX export")
            torch.onnx.export(model, (torch.rand(1, 3, 64, 96),), str(tmp), dynamo=False, input_names=["image"],
                              output_names=["stylized"], dynamic_axes={"image": _DYNAMIC, "stylized": _DYNAMIC})
        else:
            raise StstError(f"unknown export format '{fmt}' (use {' or '.join(FORMATS)})")

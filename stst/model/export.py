"""Exporting a model to ONNX or TorchScript.

Both exports take any height and width: the pad-to-a-multiple-of-4 step is part
of the graph (branch-free integer arithmetic in :mod:`stst.model.network`). Inputs and
outputs are ``(N, 3, H, W)`` float32 RGB in 0..1 (outputs unclamped). Both are made from the
network's :func:`~stst.model.rewrite.inference_form`: the same images, faster layers.

ONNX goes through torch's TorchScript-based exporter: it needs only the
``onnx`` package and takes about 2 s, where the dynamo exporter needs
``onnxscript`` and took 13 s for the same graph (2-core AVX2 CPU), which
matters because :mod:`stst.infer.onnxrt` exports each model on first use.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..base.errors import StstError
from ..base.fileio import atomic_path
from ..base.machine import require
from .network import TransformerNet
from .rewrite import inference_form

FORMATS = ("onnx", "torchscript")
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


def export_model(model: TransformerNet, path: str | Path, fmt: str) -> None:
    """Write ``model`` to ``path`` (atomically) as ``onnx`` or ``torchscript``."""
    model = inference_form(model.cpu())
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

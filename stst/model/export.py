"""Exporting a model to ONNX or TorchScript.

Both exports take any height and width: the pad-to-a-multiple-of-4 step is part
of the graph (branch-free integer arithmetic in :mod:`stst.model.network`). Inputs and
outputs are ``(N, 3, H, W)`` float32 RGB in 0..1 (outputs unclamped). Both are made from the
network's :func:`~stst.model.rewrite.inference_form`: the same images, faster layers.

ONNX goes through torch's TorchScript-based exporter: it needs only the
``onnx`` package and takes about 2 s, where the dynamo exporter needs
``onnxscript`` and took 13 s for the same graph (2-core AVX2 CPU), which
matters because :mod:`stst.infer.caches` exports each model on first use.
"""

from __future__ import annotations

import io
import itertools
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..base.errors import StstError
from ..base.fileio import atomic_path
from ..base.machine import require
from .network import TransformerNet
from .rewrite import inference_form

if TYPE_CHECKING:
    import onnx

FORMATS = ("onnx", "torchscript")
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}  # an image input's or output's free axes


def export_model(model: TransformerNet, path: str | Path, fmt: str) -> None:
    """Write ``model`` to ``path`` (atomically) as ``onnx`` or ``torchscript``."""
    model = inference_form(model.cpu())
    with atomic_path(path) as tmp:
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit is deprecated, but still the C++/mobile route
                buffer = io.BytesIO()  # saved to a file, the archive's folder inside would be the temporary name
                torch.jit.save(torch.jit.script(model), buffer)
            tmp.write_bytes(buffer.getvalue())
        elif fmt == "onnx":
            tmp.write_bytes(onnx_graph(model, (torch.rand(1, 3, 64, 96),), ["image"], ["stylized"],
                                       {"image": DYNAMIC_AXES, "stylized": DYNAMIC_AXES}))
        else:
            raise StstError(f"unknown export format '{fmt}' (use {' or '.join(FORMATS)})")


def onnx_graph(module: nn.Module, example: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
               dynamic: dict[str, dict[int, str]]) -> bytes:
    """``module`` (an inference form, or a wrapper of one) traced on ``example`` as an ONNX graph, its pixel shuffles
    rewritten (:func:`_shuffle_by_transposed_convolution`)."""
    require("onnx", "ONNX export")
    import onnx

    exported = io.BytesIO()
    # The TorchScript-based ONNX exporter is deprecated, but the fast one; DeprecationWarning/FutureWarning/
    # TracerWarning (shape arithmetic is traced on purpose)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, exported, dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic)
    proto = onnx.load_from_string(exported.getvalue())
    _shuffle_by_transposed_convolution(proto.graph)
    return proto.SerializeToString()


def _shuffle_by_transposed_convolution(graph: onnx.GraphProto) -> None:
    """Rewrite ``graph``'s pixel shuffles (DepthToSpace, blocks of 2, CRD order) as stride-2 transposed convolutions
    with one-hot 2x2 kernels: the same values, exactly, where ONNX Runtime's DepthToSpace is a slow 6-dimensional
    transpose (12 channels at 244x324: 2.6 ms, against 1.4; the realtime graph 2-6% faster). Eager torch keeps the
    pixel shuffle, which it runs faster than a transposed convolution."""
    from onnx import helper, numpy_helper

    weights = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    for index, node in enumerate(graph.node):
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "DepthToSpace" or attributes != {"blocksize": 2, "mode": b"CRD"}:
            continue
        producer = producers.get(node.input[0])
        if producer is None or producer.op_type != "Conv" or producer.input[1] not in weights:
            continue
        channels = weights[producer.input[1]].dims[0] // 4
        kernel = np.zeros((4 * channels, channels, 2, 2), dtype=np.float32)
        for c, p, q in itertools.product(range(channels), range(2), range(2)):
            kernel[4 * c + 2 * p + q, c, p, q] = 1  # input channel 4c + 2p + q lands on pixel (p, q) of channel c
        name = f"{node.name}_kernel"
        graph.initializer.append(numpy_helper.from_array(kernel, name))
        graph.node[index].CopyFrom(helper.make_node("ConvTranspose", [node.input[0], name], list(node.output),
                                                    name=node.name, kernel_shape=[2, 2], strides=[2, 2]))

"""Exact rewrites of the full-resolution layers into shapes that inference engines run faster.

Engines lay convolutions out in blocks of 8 or 16 channels (ONNX Runtime's
NCHWc, oneDNN), so a full-resolution layer with 3 output channels does the work
of 16, and a space-to-depth stem costs a 6-dimensional transpose. Both are
rewritten here into layers that compute the same values (within float
rounding, about 1e-6 of 0..1) with the same weights rearranged:

- :class:`PhaseConv`, the last layer (to RGB): one stride-2 convolution with a
  kernel one larger, whose 12 output channels are the 4 pixels of each 2x2
  block (the 4 phases), interleaved back by a pixel shuffle. On the light tier
  (Johnson's 9x9 layer from 16 channels) ONNX Runtime ran that layer in 37 ms
  instead of 122 ms, the whole graph in 406 ms instead of 483 (768x512, 2 cores
  of an Intel Xeon, medians of 7).
- :class:`BlockMirrorConv`, the realtime stem: space-to-depth followed by a
  3x3 convolution is a 6x6 stride-2 convolution on the full-resolution image,
  once the mirror padding of whole 2x2 blocks is done on the image (cheap: 3
  channels). With both rewrites the realtime graph ran in 121 ms instead of 134.

Training keeps the plain layers (their weights are what checkpoints hold);
:func:`inference_form` makes the rewritten copy that exports are made from.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .network import ConvLayer, SpaceToDepthConvLayer, TransformerNet


class PhaseConv(nn.Module):
    """A reflection-padded stride-1 ``k x k`` convolution (odd ``k``), computed as one stride-2 convolution with a
    ``(k+1) x (k+1)`` kernel and 4x the output channels, then a pixel shuffle (sides must be even).

    Output pixel ``(2i + p, 2j + q)`` is the phase-``(p, q)`` channel at ``(i, j)``: the original kernel placed at
    offset ``(p, q)`` inside the larger one, zeros elsewhere.
    """

    def __init__(self, layer: ConvLayer) -> None:
        super().__init__()
        weight, bias = layer.conv2d.weight.detach(), layer.conv2d.bias.detach()
        cout, cin, k, _ = weight.shape
        phases = weight.new_zeros(cout, 2, 2, cin, k + 1, k + 1)
        for p in range(2):
            for q in range(2):
                phases[:, p, q, :, p:p + k, q:q + k] = weight
        self.pad = k // 2
        self.conv2d = nn.Conv2d(cin, 4 * cout, k + 1, stride=2)
        self.conv2d.weight.data = phases.reshape(4 * cout, cin, k + 1, k + 1)
        self.conv2d.bias.data = bias.repeat_interleave(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        return F.pixel_shuffle(self.conv2d(F.pad(x, [p, p, p, p], mode="reflect")), 2)


class BlockMirrorConv(nn.Module):
    """Space-to-depth, reflection padding and a ``k x k`` convolution (:class:`SpaceToDepthConvLayer`), computed as
    a mirror of whole 2x2 blocks on the image and one ``2k x 2k`` stride-2 convolution.

    Reflecting the half-resolution grid by ``k // 2`` cells puts blocks ``k//2 .. 1`` (2 rows or columns each, in
    their own order) before the image, and their counterparts after it; kernel tap ``(t, s)`` of input channel
    ``4c + 2a + b`` becomes tap ``(2t + a, 2s + b)`` of channel ``c``.
    """

    def __init__(self, layer: SpaceToDepthConvLayer) -> None:
        super().__init__()
        weight, bias = layer.conv2d.weight.detach(), layer.conv2d.bias.detach()
        cout, cin4, k, _ = weight.shape
        cin = cin4 // 4
        full = weight.reshape(cout, cin, 2, 2, k, k).permute(0, 1, 4, 2, 5, 3).reshape(cout, cin, 2 * k, 2 * k)
        self.cells = k // 2
        self.conv2d = nn.Conv2d(cin, cout, 2 * k, stride=2)
        self.conv2d.weight.data = full.contiguous()
        self.conv2d.bias.data = bias.clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dim in (2, 3):
            size = x.shape[dim]
            before = [x.narrow(dim, 2 * j, 2) for j in range(self.cells, 0, -1)]
            after = [x.narrow(dim, size - 2 * j - 2, 2) for j in range(1, self.cells + 1)]
            x = torch.cat(before + [x] + after, dim=dim)
        return self.conv2d(x)


def inference_form(model: TransformerNet) -> TransformerNet:
    """A copy of ``model`` in eval mode that computes the same images with :class:`PhaseConv` as its last layer
    and :class:`BlockMirrorConv` as its space-to-depth stem (the realtime design's)."""
    fast = copy.deepcopy(model).eval()
    last = fast.last
    for name, layer in list(fast.named_children()):
        if layer is last:
            setattr(fast, name, PhaseConv(layer))
        elif isinstance(layer, SpaceToDepthConvLayer):
            setattr(fast, name, BlockMirrorConv(layer))
    return fast

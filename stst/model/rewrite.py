"""Exact rewrites of the full-resolution layers into shapes that inference engines run faster.

Engines lay convolutions out in blocks of 8 or 16 channels (ONNX Runtime's
NCHWc, oneDNN), so a full-resolution layer with 3 output channels does the work
of 16, and a space-to-depth stem costs a 6-dimensional transpose. The layers are
rewritten here into ones that compute the same values (within float rounding,
about 1e-6 of 0..1) with the same weights rearranged:

- :class:`PhaseConv`, the last layer (to RGB) of Johnson's design: one stride-2
  convolution with a kernel one larger, whose 12 output channels are the 4
  pixels of each 2x2 block (the 4 phases), interleaved back by a pixel shuffle.
  On the light tier (Johnson's 9x9 layer from 16 channels) ONNX Runtime ran that
  layer in 37 ms instead of 122 ms, the whole graph in 406 ms instead of 483
  (768x512, 2 cores of an Intel Xeon, medians of 7).
- :class:`BlockMirrorConv`, the realtime stem: space-to-depth followed by a
  3x3 convolution is a 6x6 stride-2 convolution on the full-resolution image,
  once the mirror padding of whole 2x2 blocks is done on the image (cheap: 3
  channels). With both rewrites the realtime graph ran in 121 ms instead of 134.
- :class:`PhaseUpsampleNorm` and :class:`PhaseInputConv`, the realtime design's
  full-resolution layers (upsampling, a 3x3 convolution to 8 channels, instance
  norm, a 3x3 convolution to RGB): computed on the 4 phases at half resolution,
  so that no full-resolution tensor exists before the output. The upsampled
  copy, its padding, the reorders around it and the 8 of 16 wasted output
  channels go: ONNX Runtime ran the graph in 77 ms instead of 92 (640x480).

Training keeps the plain layers (their weights are what checkpoints hold);
:func:`inference_form` makes the rewritten copy that exports are made from.
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .network import ConvLayer, RealtimeNet, SpaceToDepthConvLayer, TransformerNet, UpsampleConvLayer, norm_layers


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


def _source(phase: int, tap: int) -> tuple[int, int]:
    """Where tap ``tap`` (0, 1, 2) of a 3x3 kernel, at output phase ``phase`` of a full-resolution row, reads from
    in the half-resolution grid: ``(offset, phase)`` (row ``2i + phase + tap - 1`` is row ``i + offset``'s phase)."""
    return divmod(phase + tap - 1, 2)


class PhaseUpsampleNorm(nn.Module):
    """2x nearest-neighbour upsampling, reflection padding, a 3x3 convolution and instance norm
    (:class:`UpsampleConvLayer` and the norm after it), computed at the input's resolution: one 3x3 convolution
    with 4x the output channels (channel ``4c + 2p + q`` holds output pixels ``(2i + p, 2j + q)`` of channel ``c``,
    the layout a pixel shuffle reads) and instance norm over each channel's 4 phases together.

    Both phases of an upsampled row repeat one input row, so taps that read the same one add up; reflecting the
    upsampled image by one pixel repeats the small one's edge, so the padding is ``replicate``.
    """

    def __init__(self, layer: UpsampleConvLayer, norm: nn.InstanceNorm2d) -> None:
        super().__init__()
        weight, bias = layer.conv2d.weight.detach(), layer.conv2d.bias.detach()
        cout, cin = weight.shape[:2]
        merge = weight.new_zeros(2, 3, 3)  # (output phase, input offset + 1, tap)
        for phase, tap in itertools.product(range(2), range(3)):
            merge[phase, _source(phase, tap)[0] + 1, tap] = 1
        phases = torch.einsum("pyk,oikl,qxl->opqiyx", merge, weight, merge)
        self.conv2d = nn.Conv2d(cin, 4 * cout, 3)
        self.conv2d.weight.data = phases.reshape(4 * cout, cin, 3, 3).contiguous()
        self.conv2d.bias.data = bias.repeat_interleave(4)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2d(F.pad(x, [1, 1, 1, 1], mode="replicate"))
        n, c4, h, w = y.shape
        return self.norm(y.reshape(n, c4 // 4, 4 * h, w)).reshape(n, c4, h, w)


class PhaseInputConv(nn.Module):
    """A reflection-padded 3x3 convolution (:class:`ConvLayer`, stride 1) of a full-resolution image held as its 4
    phases (the layout of :class:`PhaseUpsampleNorm`), returning the full-resolution output (a pixel shuffle).

    Each tap of each output phase reads one input phase at one offset. Reflecting the full image by one pixel
    reads, in the half-resolution phases, only what repeating their edge puts there: the padding is ``replicate``.
    """

    def __init__(self, layer: ConvLayer) -> None:
        super().__init__()
        weight, bias = layer.conv2d.weight.detach(), layer.conv2d.bias.detach()
        cout, cin, k, _ = weight.shape
        if k != 3:
            raise ValueError(f"PhaseInputConv rewrites 3x3 convolutions, not {k}x{k}")
        phases = weight.new_zeros(cout, 2, 2, cin, 2, 2, 3, 3)  # (out, p, q, in, a, b, row offset + 1, column)
        for p, q, ky, kx in itertools.product(range(2), range(2), range(3), range(3)):
            (dy, a), (dx, b) = _source(p, ky), _source(q, kx)
            phases[:, p, q, :, a, b, dy + 1, dx + 1] = weight[:, :, ky, kx]
        self.conv2d = nn.Conv2d(4 * cin, 4 * cout, 3)
        self.conv2d.weight.data = phases.reshape(4 * cout, 4 * cin, 3, 3)
        self.conv2d.bias.data = bias.repeat_interleave(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv2d(F.pad(x, [1, 1, 1, 1], mode="replicate")), 2)


def inference_form(model: TransformerNet) -> TransformerNet:
    """A copy of ``model`` in eval mode that computes the same images with the rewritten layers: Johnson's design
    with :class:`PhaseConv` as its last layer; the realtime design with :class:`BlockMirrorConv` as its stem and
    its full-resolution layers on phases (the instance norm moves into :class:`PhaseUpsampleNorm`; the ReLU after
    it works on phases as it did on pixels).

    The instance norms are ``model``'s own modules, not copies, so that hooks on them (a benchmark's statistics
    smoothing, ``scripts/statistics_smoothing.py``) act on the copy too: over a channel's 4 phases they see its
    whole statistics.
    """
    fast = copy.deepcopy(model, memo={id(norm): norm for norm in norm_layers(model)}).eval()
    if isinstance(fast, RealtimeNet):
        fast.up2, fast.in4, fast.out = PhaseUpsampleNorm(fast.up2, fast.in4), nn.Identity(), PhaseInputConv(fast.out)
    else:
        fast.deconv3 = PhaseConv(fast.deconv3)
    for name, layer in list(fast.named_children()):
        if isinstance(layer, SpaceToDepthConvLayer):
            setattr(fast, name, BlockMirrorConv(layer))
    return fast

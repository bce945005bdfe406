"""The feed-forward transformer network.

Johnson, Alahi, Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution" (ECCV 2016, https://arxiv.org/abs/1603.08155), with instance
normalisation in place of batch norm (Ulyanov, Vedaldi, Lempitsky, "Instance
Normalization: The Missing Ingredient for Fast Stylization",
https://arxiv.org/abs/1607.08022) and nearest-neighbour upsampling followed by a
convolution instead of transposed convolutions, which avoids checkerboard
artifacts (Odena, Dumoulin, Olah, https://distill.pub/2016/deconv-checkerboard/).

Parameter names follow pytorch/examples ``fast_neural_style`` so that its
published checkpoints (candy, mosaic, udnie, rain_princess) load unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The body works on RGB values in 0..255, the convention of pytorch/examples;
# the public forward() takes and returns 0..1 images.
PIXEL_SCALE = 255.0
# Two stride-2 convolutions: sizes must be multiples of 4 inside the body, and
# at least 8 so that every reflection pad (BORDER too) is smaller than the tensor it pads.
SIZE_MULTIPLE = 4
MIN_SIZE = 8
# At inference the photo is extended by this many mirrored pixels on each
# side and the result cropped back: trained networks paint a thin frame along
# the borders of their input, which then falls outside the photo. 4 mirrored
# pixels keep the edge rows as close to those of a 64-pixel mirror as 16
# replicated ones did (and with no brighter or darker frame line), for 2.6%
# more work at 768x512 instead of 10.7% (issue 20, item 5).
BORDER = 4


# The network designs: Johnson et al.'s (the full and light tiers, by width) and a realtime one.
DESIGNS = ("johnson", "realtime")
# Residual blocks of the realtime design.
REALTIME_BLOCKS = 4


@dataclass(frozen=True)
class ArchConfig:
    """Architecture settings stored in every checkpoint."""

    channels: int = 32  # width of the first layer; later layers use 2x and 4x
    # Add the input to the output (a global skip connection). With the last
    # layer zero-initialised, an untrained network is the identity instead of
    # noise, so short CPU trainings start from the photo.
    residual: bool = False
    design: str = "johnson"  # or "realtime" (:class:`RealtimeNet`)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def tag(self) -> str:
        """A short name of the shape, for cache keys and listings: ``32``, ``16 realtime``."""
        return str(self.channels) if self.design == "johnson" else f"{self.channels} {self.design}"

    def macs_per_pixel(self) -> int:
        """Multiply-adds per input pixel (borders aside): each convolution's k*k*cin*cout at its resolution.

        Johnson's design: the stride-2 layers and the residual blocks run at
        1/4 and 1/16 of the pixels; 153,792 for the default width of 32 (307.6
        GFLOP per megapixel). The realtime design: see :class:`RealtimeNet`;
        7,848 at width 16.
        """
        c = self.channels
        if self.design == "realtime":
            half = 9 * 12 * c + 9 * 2 * c * c  # stem (after space-to-depth), up1
            sixteenth = 9 * c * 2 * c + REALTIME_BLOCKS * 2 * 9 * (2 * c) ** 2  # down, residual blocks
            full = 9 * c * (c // 2) + 9 * (c // 2) * 3  # up2, out
            return half // 4 + sixteenth // 16 + full
        full = 81 * 3 * c + 9 * 2 * c * c + 81 * c * 3  # conv1, deconv2, deconv3
        quarter = 9 * c * 2 * c + 9 * 4 * c * 2 * c  # conv2, deconv1
        sixteenth = 9 * 2 * c * 4 * c + 10 * 9 * (4 * c) ** 2  # conv3, 5 residual blocks of 2 convs
        return full + quarter // 4 + sixteenth // 16


class ConvLayer(nn.Module):
    """Reflection padding followed by a convolution (no zero-padded borders)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    """2x nearest-neighbour upsampling, then a stride-1 convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(F.interpolate(x, scale_factor=2.0, mode="nearest")))


class SpaceToDepthConvLayer(ConvLayer):
    """Space-to-depth (each 2x2 block of pixels becomes 4x the channels at half resolution), then a
    reflection-padded convolution: a stem that halves the resolution without skipping a pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(F.pixel_unshuffle(x, 2)))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm and an identity shortcut (He et al. 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class TransformerNet(nn.Module):
    """Image transformation network: any RGB image in 0..1 to a stylized one of the same size."""

    __jit_unused_properties__ = ["last"]  # TorchScript compiles forward(), not this Python-side helper

    def __init__(self, config: ArchConfig = ArchConfig()) -> None:
        super().__init__()
        self.config = config
        # Plain attributes rather than config or globals, so that TorchScript can compile forward().
        self.residual = config.residual
        self.pixel_scale = PIXEL_SCALE
        self.border = BORDER
        self._layers(config.channels)
        if config.residual:
            nn.init.zeros_(self.last.conv2d.weight)
            nn.init.zeros_(self.last.conv2d.bias)

    def _layers(self, c: int) -> None:
        self.conv1 = ConvLayer(3, c, 9)
        self.in1 = nn.InstanceNorm2d(c, affine=True)
        self.conv2 = ConvLayer(c, 2 * c, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(2 * c, affine=True)
        self.conv3 = ConvLayer(2 * c, 4 * c, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(4 * c, affine=True)
        self.res1 = ResidualBlock(4 * c)
        self.res2 = ResidualBlock(4 * c)
        self.res3 = ResidualBlock(4 * c)
        self.res4 = ResidualBlock(4 * c)
        self.res5 = ResidualBlock(4 * c)
        self.deconv1 = UpsampleConvLayer(4 * c, 2 * c, 3)
        self.in4 = nn.InstanceNorm2d(2 * c, affine=True)
        self.deconv2 = UpsampleConvLayer(2 * c, c, 3)
        self.in5 = nn.InstanceNorm2d(c, affine=True)
        self.deconv3 = ConvLayer(c, 3, 9)

    @property
    def last(self) -> ConvLayer:
        """The layer that paints the output (zero-initialised for residual networks)."""
        return self.deconv3

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper, on 0..255 images whose sides are multiples of 4 and >= 8."""
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        y = self.deconv3(y)
        return y + x if self.residual else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stylize a batch ``(N, 3, H, W)`` of 0..1 images of any size; the output has the same size.

        The output is not clamped, so that training gradients are not cut off;
        callers that write images clamp to 0..1. In eval mode the input is
        extended by ``BORDER`` pixels first (no frame artifacts).
        """
        h, w = x.shape[-2], x.shape[-1]
        padded, offsets = pad_to_multiple(x * self.pixel_scale, 0 if self.training else self.border)
        top, left = offsets
        y = self.body(padded)
        return y[..., top : top + h, left : left + w] / self.pixel_scale


class RealtimeNet(TransformerNet):
    """The realtime design: Johnson's family (instance norm, residual blocks, nearest-neighbour
    upsampling + convolution, reflection padding, any image size) with the work moved off full
    resolution: 7,848 multiply-adds per pixel at width 16 instead of 153,792.

    - stem: space-to-depth (each 2x2 block of pixels becomes 12 channels at half resolution, so no
      pixel is skipped, unlike a strided convolution), then a 3x3 convolution to ``c`` channels;
    - a stride-2 3x3 convolution to ``2c`` channels at a quarter resolution, where
      :data:`REALTIME_BLOCKS` residual blocks run;
    - two nearest-neighbour upsamplings, each followed by a 3x3 convolution (``c``, then ``c/2``
      channels), and a last 3x3 convolution to RGB: the full resolution gets two thin 3x3 layers
      and a nonlinearity, enough for fine strokes, where Johnson's runs two 9x9 layers there.
    """

    def _layers(self, c: int) -> None:
        self.stem = SpaceToDepthConvLayer(12, c, 3)
        self.in1 = nn.InstanceNorm2d(c, affine=True)
        self.down = ConvLayer(c, 2 * c, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(2 * c, affine=True)
        self.blocks = nn.Sequential(*(ResidualBlock(2 * c) for _ in range(REALTIME_BLOCKS)))
        self.up1 = UpsampleConvLayer(2 * c, c, 3)
        self.in3 = nn.InstanceNorm2d(c, affine=True)
        self.up2 = UpsampleConvLayer(c, c // 2, 3)
        self.in4 = nn.InstanceNorm2d(c // 2, affine=True)
        self.out = ConvLayer(c // 2, 3, 3)

    @property
    def last(self) -> ConvLayer:
        return self.out

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper, on 0..255 images whose sides are multiples of 4 and >= 8."""
        y = F.relu(self.in1(self.stem(x)))
        y = F.relu(self.in2(self.down(y)))
        y = self.blocks(y)
        y = F.relu(self.in3(self.up1(y)))
        y = F.relu(self.in4(self.up2(y)))
        y = self.out(y)
        return y + x if self.residual else y


def build_network(config: ArchConfig = ArchConfig()) -> TransformerNet:
    """The network of ``config``'s design."""
    return RealtimeNet(config) if config.design == "realtime" else TransformerNet(config)


def _split(size: int, multiple: int = SIZE_MULTIPLE, minimum: int = MIN_SIZE) -> tuple[int, int]:
    """Pads before and after one side so that it becomes a valid body size.

    Branch-free integer arithmetic, so that exported graphs (ONNX, TorchScript)
    keep working for every size: the target is the next multiple of 4, plus 4
    when that is below ``minimum`` (``minimum // (size + multiple)`` is 1
    exactly for sizes 1..4). Constants are defaults: TorchScript reads no globals.
    """
    target = (size + multiple - 1) // multiple * multiple + multiple * (minimum // (size + multiple))
    extra = target - size
    return extra // 2, extra - extra // 2


def pad_to_multiple(x: torch.Tensor, margin: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W to valid body sizes by edge replication, then by ``margin`` mirrored pixels on each side.

    Returns the padded tensor and the (top, left) offset of the original. The
    mirror comes second so that it is always narrower than what it mirrors
    (at least ``MIN_SIZE`` pixels; reflection needs that), for every size.
    """
    h, w = x.shape[-2], x.shape[-1]
    top, bottom = _split(h)
    left, right = _split(w)
    x = F.pad(x, [left, right, top, bottom], mode="replicate")
    if margin:
        x = F.pad(x, [margin, margin, margin, margin], mode="reflect")
    return x, (top + margin, left + margin)


def padded_index(size: int, margin: int = 0) -> tuple[torch.Tensor, int]:
    """Along one side of ``size`` pixels, which source pixel each pixel of :func:`pad_to_multiple`'s output copies,
    and the offset of the original: a huge image's tiles are read through it (``index_select``) instead of padding
    a whole copy of the image first."""
    before, after = _split(size)
    replicated = torch.arange(-before, size + after).clamp_(0, size - 1)
    if margin:
        replicated = torch.cat([replicated[1 : margin + 1].flip(0), replicated, replicated[-margin - 1 : -1].flip(0)])
    return replicated, before + margin


def recolour(model: TransformerNet, matrix: torch.Tensor, shift: torch.Tensor) -> None:
    """Fold the colour map ``output -> matrix @ output + shift`` (RGB in 0..1) into the layer that paints the output.

    That layer is linear in its input, so the folded network computes exactly the mapped output at no cost
    (in 0..255 inside the body, hence the shift's scale). A residual network adds the photo after that layer, so
    its output cannot take the map there.
    """
    if model.residual:
        raise ValueError("a residual network's output cannot take a colour map in its last layer")
    conv = model.last.conv2d
    with torch.no_grad():
        matrix, shift = matrix.to(conv.weight), shift.to(conv.weight)
        conv.weight.copy_(torch.einsum("oi,i...->o...", matrix, conv.weight))
        conv.bias.copy_(matrix @ conv.bias + model.pixel_scale * shift)


def norm_layers(model: nn.Module) -> list[nn.InstanceNorm2d]:
    """The instance norms of ``model`` in forward order (tiling and video steer their statistics)."""
    return [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]


def instance_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and (biased) variance of ``(N, C, H, W)`` ``x``: what instance norm uses."""
    return x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True)


def normalise_with(norm: nn.InstanceNorm2d, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """What ``norm`` computes on ``x``, but with the given per-channel statistics in place of ``x``'s own."""
    y = (x - mean) * torch.rsqrt(var + norm.eps)
    return y * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)

"""Perceptual losses (Johnson et al. 2016): content, style (Gram) and total variation; and temporal stability.

Small objects with explicit weights; :class:`PerceptualLoss` runs the VGG
encoder once over the output and shares the activations between content and
style terms, and the content target pass stops at the content layer.
:class:`TemporalLoss` needs no VGG pass and no optical-flow data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .options import TrainOptions
from .palette import PaletteLoss, colours
from .vgg import LAYERS, VGGFeatures, check_layers


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``(N, C, C)`` normalised by C*H*W, so that the image size does not set the scale.

    Always at least float32, also under bf16/fp16 autocast: the sums run over
    H*W products, too many for a 8-bit mantissa.
    """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    if f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    with torch.autocast(features.device.type, enabled=False):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


@dataclass
class ContentLoss:
    """MSE between activations of output and photo at one layer."""

    layer: str
    weight: float

    def __call__(self, output: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.weight * F.mse_loss(output[self.layer].float(), target[self.layer].float())


@dataclass
class StyleLoss:
    """Weighted sum over layers of the MSE between Gram matrices of output and style image."""

    targets: dict[str, torch.Tensor]  # layer -> (1, C, C) Gram of the style image
    layer_weights: dict[str, float]
    weight: float

    def __call__(self, output: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for layer, lw in self.layer_weights.items():
            g = gram(output[layer])
            total = total + lw * F.mse_loss(g, self.targets[layer].expand_as(g))
        return self.weight * total


@dataclass
class TotalVariationLoss:
    """Mean absolute difference of neighbouring pixels: discourages high-frequency noise."""

    weight: float

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        image = image.float()  # the mean of many small differences: fp32 also under autocast
        dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
        dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
        return self.weight * (dx + dy)


@dataclass
class TemporalLoss:
    """Stability under camera motion: stylize(move(x)) should equal move(stylize(x)).

    Video flickers because a network that sees a frame moved by a pixel, or
    with fresh sensor and compression noise, paints different strokes. Each
    photo of the batch is moved by a small random known motion (shift up to
    ``shift`` of its side, rotation up to ``rotate`` degrees, zoom up to
    ``zoom``) and given Gaussian noise of ``noise`` (0..1 units); the loss is
    the mean squared difference between the stylized moved photo and the moved
    stylization, on the pixels that the motion keeps inside the frame. Because
    the motion is known exactly, no optical flow (and no video data set) is
    needed: Gupta et al., "Characterizing and Improving Stability in Neural
    Style Transfer" (ICCV 2017); Gao et al., ReCoNet (ACCV 2018).
    """

    weight: float
    shift: float = 0.04
    rotate: float = 2.0
    zoom: float = 0.04
    noise: float = 0.02

    def motion(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """``(n, 2, 3)`` random affine maps in the normalised coordinates of ``F.affine_grid``."""
        r = torch.rand(n, 4, device=like.device, dtype=like.dtype) * 2 - 1
        angle = r[:, 0] * math.radians(self.rotate)
        scale = 1 + r[:, 1] * self.zoom
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        shift = r[:, 2:] * 2 * self.shift  # the normalised frame is 2 wide
        return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)

    def __call__(self, net: Callable[[torch.Tensor], torch.Tensor], photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stylized ``photos`` and the weighted loss: one network pass over photos and moved photos together.

        One pass (instance norm is per image, so batching changes nothing) also
        keeps DistributedDataParallel to one forward per backward.
        """
        theta = self.motion(photos.shape[0], photos.float()).to(photos.dtype)
        grid = F.affine_grid(theta, list(photos.shape), align_corners=False)
        moved = F.grid_sample(photos, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        moved = (moved + self.noise * torch.randn_like(moved)).clamp(0, 1)
        output, output_moved = net(torch.cat([photos, moved])).chunk(2)
        grid = grid.float()  # the comparison in fp32, also under autocast
        expected = F.grid_sample(output.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        inside = F.grid_sample(torch.ones_like(output[:, :1]).float(), grid, mode="bilinear",
                               padding_mode="zeros", align_corners=False) > 0.999
        squared = (output_moved.float() - expected).square() * inside
        return output, self.weight * squared.sum() / (inside.sum() * output.shape[1]).clamp(min=1)


class PerceptualLoss:
    """Content + style + TV losses over one shared VGG pass of the stylized batch (+ the palette and temporal
    terms, if any)."""

    def __init__(self, encoder: VGGFeatures, content: ContentLoss, style: StyleLoss, tv: TotalVariationLoss,
                 temporal: TemporalLoss | None = None, palette: PaletteLoss | None = None) -> None:
        check_layers([content.layer, *style.layer_weights])
        self.encoder, self.content, self.style, self.tv, self.temporal = encoder, content, style, tv, temporal
        self.palette = palette
        self.layers = sorted({content.layer, *style.layer_weights}, key=LAYERS.get)

    def __call__(self, output: torch.Tensor, photos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms for stylized ``output`` of ``photos`` (both 0..1); ``total`` is their sum."""
        with torch.no_grad():
            target = self.encoder(photos, [self.content.layer])
        feats = self.encoder(output, self.layers)
        terms = {"content": self.content(feats, target), "style": self.style(feats), "tv": self.tv(output)}
        if self.palette is not None:
            terms["palette"] = self.palette(output)
        terms["total"] = sum(terms.values())
        return terms


@torch.no_grad()
def style_targets(encoder: VGGFeatures, style_image: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Gram matrices ``(1, C, C)`` of one ``(1, 3, H, W)`` style image at ``layers``."""
    return {name: gram(f) for name, f in encoder(style_image, layers).items()}


# A run's style: one (3, H, W) uint8 painting, or several with weights (a mix of styles).
Style = torch.Tensor | Sequence[tuple[torch.Tensor, float]]


def mixed_style_targets(encoder: VGGFeatures, style: Style, layers: list[str]) -> dict[str, torch.Tensor]:
    """The Gram targets of a run's style: the painting's, or the weighted mean of the mixed paintings'."""
    parts = [(style, 1.0)] if isinstance(style, torch.Tensor) else style
    dtype, device = next(encoder.parameters()).dtype, next(encoder.parameters()).device
    grams = [(style_targets(encoder, (image.to(dtype) / 255)[None].to(device), layers), w) for image, w in parts]
    return {layer: sum(w * g[layer] for g, w in grams) for layer in layers}


def style_colours(style: Style, count: int = 65_536, seed: int = 0) -> torch.Tensor:
    """``count`` CIELAB colours of a run's style: the painting's pixels, or each mixed painting's in
    proportion to its weight (the palette target of :class:`PaletteLoss`)."""
    parts = [(style, 1.0)] if isinstance(style, torch.Tensor) else style
    generator = torch.Generator().manual_seed(seed)
    total = sum(w for _, w in parts)
    tables = [colours(image.float() / 255) for image, _ in parts]
    picked = [t[torch.randint(len(t), (max(1, round(count * w / total)),), generator=generator)]
              for t, (_, w) in zip(tables, parts)]
    return torch.cat(picked)


def build_loss(options: TrainOptions, style: Style, vgg_state: dict[str, torch.Tensor],
               device: torch.device) -> PerceptualLoss:
    """The perceptual loss of a run: its layers and weights, with Gram targets from its style (uint8 images)."""
    check_layers([options.content_layer, *options.style_layers])
    deepest = max([options.content_layer, *options.style_layers], key=LAYERS.get)
    encoder = VGGFeatures(vgg_state, deepest).to(device)  # torch's default dtype (float64 in the DDP equivalence test)
    return PerceptualLoss(
        encoder,
        ContentLoss(options.content_layer, options.content_weight),
        StyleLoss(mixed_style_targets(encoder, style, list(options.style_layers)), dict(options.style_layers),
                  options.style_weight),
        TotalVariationLoss(options.tv_weight),
        TemporalLoss(options.temporal_weight) if options.temporal_weight else None,
        PaletteLoss(style_colours(style).to(device), options.palette_weight) if options.palette_weight else None,
    )

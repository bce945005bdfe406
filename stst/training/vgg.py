"""The frozen VGG16 loss network (Simonyan & Zisserman 2015), tapped at named ReLU layers."""

from __future__ import annotations

import torch
from torch import nn

# VGG16's feature layers (configuration "D"): a 3x3 convolution's width, or "M" for a 2x2 max pool.
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# Index of each ReLU in torchvision's vgg16().features.
LAYERS = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_layers(names: list[str] | tuple[str, ...]) -> None:
    """Reject unknown layer names with a message that lists the valid ones."""
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise ValueError(f"unknown VGG16 layer(s) {', '.join(unknown)}; choose from {', '.join(LAYERS)}")


def vgg16_layers() -> nn.Sequential:
    """VGG16's ``features`` as torchvision lays them out (the same indices and weight names), built here:
    importing ``torchvision.models`` takes 3-4 s, most of it torch's compiler pulled in by its detection ops."""
    layers: list[nn.Module] = []
    channels = 3
    for width in VGG16:
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """VGG16 ``features`` up to the deepest layer needed, frozen, in eval mode.

    Takes RGB images in 0..1 and applies the ImageNet normalisation itself.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], deepest: str = "relu4_3") -> None:
        super().__init__()
        check_layers([deepest])
        self.features = vgg16_layers()[: LAYERS[deepest] + 1]
        wanted = set(self.features.state_dict())
        self.features.load_state_dict({k: v for k, v in state_dict.items() if k in wanted})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Always stays in eval mode: it is a fixed measuring instrument."""
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Activations at ``layers``, running only as deep as the deepest of them."""
        check_layers(layers)
        stop = max(LAYERS[name] for name in layers)
        if stop >= len(self.features):
            raise ValueError(f"this loss network stops before {max(layers, key=LAYERS.get)}")
        by_index = {LAYERS[name]: name for name in layers}
        out = {}
        h = (x - self.mean) / self.std
        for i, layer in enumerate(self.features[: stop + 1]):
            h = layer(h)
            if i in by_index:
                out[by_index[i]] = h
        return out

"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"):
how far a stylized picture is from its photo as people judge it, the check that the relu2_2 content loss
is not (that loss rewards kept edges, not kept faces and colours).

The learned per-channel weights are the ``lpips`` package's own (``weights/v0.1/vgg.pth``); the backbone is
stst's VGG16 (:class:`stst.training.vgg.VGGFeatures`, the weights stst already fetches). The package's
``LPIPS`` class is not used as it stands: it imports ``torchvision.models`` (3-4 s) and builds a whole VGG16
with its classifier (3 s) only to throw the classifier away; ``tests/test_evaluate.py`` checks that the
two give the same distance.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from ..base.errors import StstError
from .vgg import VGGFeatures

# The five layers LPIPS-VGG compares, in the order of the package's lin0..lin4.
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_WEIGHTS = Path("weights") / "v0.1" / "vgg.pth"
EPS = 1e-10


def lpips_weights_file() -> Path:
    """The ``lpips`` package's learned layer weights for VGG, found without importing the package."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise StstError("LPIPS needs the lpips package: python -m pip install lpips")
    path = Path(next(iter(spec.submodule_search_locations))) / LPIPS_WEIGHTS
    if not path.is_file():
        raise StstError(f"the lpips package has no {LPIPS_WEIGHTS} (reinstall it: python -m pip install lpips)")
    return path


class Lpips(nn.Module):
    """LPIPS-VGG between two batches of RGB images in 0..1: one distance per image (0 = the same picture)."""

    def __init__(self, vgg_state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.encoder = VGGFeatures(vgg_state, deepest=LPIPS_LAYERS[-1])
        learned = torch.load(lpips_weights_file(), map_location="cpu", weights_only=True)
        weights = [learned[f"lin{i}.model.1.weight"].flatten() for i in range(len(LPIPS_LAYERS))]
        for i, w in enumerate(weights):
            self.register_buffer(f"lin{i}", w.view(1, -1, 1, 1).float())
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _unit(features: torch.Tensor) -> torch.Tensor:
        """Each position's feature vector scaled to unit length, as the package does."""
        return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self.encoder(a.float(), LPIPS_LAYERS)
        fb = self.encoder(b.float(), LPIPS_LAYERS)
        total = torch.zeros(a.shape[0], device=a.device)
        for i, layer in enumerate(LPIPS_LAYERS):
            diff = (self._unit(fa[layer]) - self._unit(fb[layer])).pow(2)
            total += (diff * getattr(self, f"lin{i}")).sum(dim=1).mean(dim=(1, 2))
        return total

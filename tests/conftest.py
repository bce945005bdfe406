"""Shared fixtures: real photos from ../shared/data and freshly initialised (untrained) models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stst.checkpoint import save_checkpoint
from stst.network import ArchConfig, TransformerNet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTOS = DATA / "photos"
TRAIN = DATA / "train"
STYLES = DATA / "styles"


def fresh_network(seed: int = 0, config: ArchConfig = ArchConfig()) -> TransformerNet:
    """An untrained network with deterministic random weights (not a style model)."""
    torch.manual_seed(seed)
    return TransformerNet(config).eval()


@pytest.fixture
def untrained_model_path(tmp_path: Path) -> Path:
    """A stst checkpoint of a freshly initialised, untrained network."""
    path = tmp_path / "untrained.pth"
    save_checkpoint(path, fresh_network(), {"note": "freshly initialised, untrained"})
    return path


@pytest.fixture(scope="session", autouse=True)
def _data_present() -> None:
    if not PHOTOS.is_dir():
        pytest.exit(f"test data missing: {PHOTOS} (the shared/ folder must sit beside the project)", returncode=3)

"""Shared fixtures: the small real photos and paintings in tests/data, and freshly initialised (untrained) models.

``tests/data`` ships with the project, so the suite runs from a plain clone.
Tests that need the full data in ``../shared/data`` (beside the project) use
``needs_shared`` and skip with a reason when it is absent.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from stst.checkpoint import save_checkpoint
from stst.network import ArchConfig, TransformerNet

DATA = Path(__file__).resolve().parent / "data"
PHOTOS = DATA / "photos"  # five Kodak photos, 384x256 JPEG
TRAIN = PHOTOS  # the training tests train on the same few photos
STYLES = DATA / "styles"

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED / "photos").is_dir(), reason=f"needs the full test data in {SHARED} (not present)"
)


@pytest.fixture(autouse=True, scope="session")
def stst_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the session (engine calibration, exported graphs), never the user's ~/.cache/stst."""
    home = tmp_path_factory.mktemp("stst-home")
    previous = os.environ.get("STST_HOME")
    os.environ["STST_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("STST_HOME", None)
    else:
        os.environ["STST_HOME"] = previous


def answers_ctrl_c() -> None:
    """``preexec_fn`` for a child that a test interrupts: a shell's background job starts with SIGINT
    ignored, which the child would inherit (and Python then installs no KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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

"""Scoring a trained model on held-out photos with the same perceptual loss it was trained with, by LPIPS
to the photo (how much of the photo the eye still finds in the picture) and by the palette distance to the
painting (how far its colours are from the painting's: both other yardsticks reward staying near the photo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..base.errors import FileProblem
from ..base.imageio import IMAGE_SUFFIXES, read_photo
from ..infer.engine import Stylizer
from ..infer.look import Look
from ..model.checkpoint import Checkpoint, load_model
from .data import find_images
from .datasets import SHIPPED_PHOTOS
from .losses import PerceptualLoss, build_loss
from .options import options_from_dict
from .palette import palette_distance
from .similarity import Lpips
from .weights import resolve_vgg_weights

TERMS = ("content", "style", "tv", "total")
# The loss terms, LPIPS-VGG to the photo and the palette distance to the painting: what evaluate reports per photo.
SCORES = (*TERMS, "lpips", "palette")
# LPIPS reads VGG16 after its fourth pooling: a photo narrower than this has no pixel left there to score.
MIN_SIDE = 16


@dataclass
class Score:
    """Weighted loss terms of one stylized photo (``total``: content, style and TV), its LPIPS to the photo and its
    palette distance to the painting (:func:`stst.training.palette.palette_distance`)."""

    photo: str
    content: float
    style: float
    tv: float
    total: float
    lpips: float
    palette: float


def photo_files(inputs: list[str | Path]) -> list[Path]:
    """Image files among ``inputs``: files as given, folders by image extension (not recursive)."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise FileProblem(item, "no such file or folder")
    if not files:
        raise FileProblem(inputs[0], "no photos to evaluate on")
    return files


def unseen_photos(folder: str | Path, dataset: str | Path = SHIPPED_PHOTOS) -> list[Path]:
    """The photos in ``folder`` that a run trained on ``dataset`` never saw, matched by name without extension:
    the quick recipe ships the odd-numbered Kodak photos as JPEGs, and its scores are taken on the even PNGs."""
    seen = {p.stem for p in find_images(dataset)}
    return [p for p in photo_files([folder]) if p.stem not in seen]


def model_loss(model_path: str | Path, ckpt: Checkpoint, device: torch.device | str = "cpu") -> PerceptualLoss:
    """The perceptual loss a model was trained with (its options and style image), to score any picture by it."""
    if ckpt.style_image is None or "options" not in ckpt.metadata:
        raise FileProblem(model_path, "holds no style image and training options, so it cannot be evaluated")
    try:
        options = options_from_dict(ckpt.metadata["options"])
    except ValueError as exc:
        raise FileProblem(model_path, f"invalid training options ({exc})") from None
    vgg_state, _ = resolve_vgg_weights()
    # the paper's terms: the palette is scored by its yardstick (Scorer), not by the training term's estimate
    return build_loss(replace(options, palette_weight=0.0), ckpt.style_image, vgg_state, torch.device(device))


class Scorer:
    """A model's training losses, LPIPS to the photo and palette distance to the painting, for any picture made
    from a photo (stst's or a peer's)."""

    def __init__(self, model_path: str | Path, ckpt: Checkpoint, device: torch.device | str = "cpu") -> None:
        self.loss_fn = model_loss(model_path, ckpt, device)
        self.lpips = Lpips(resolve_vgg_weights()[0]).to(device)
        self.painting = ckpt.style_image.float() / 255

    @torch.no_grad()
    def __call__(self, name: str, picture: torch.Tensor, photo: torch.Tensor) -> Score:
        """The score of ``picture`` (1, 3, H, W) in 0..1, made from ``photo`` of the same size."""
        terms = self.loss_fn(picture, photo)
        return Score(name, *(terms[t].item() for t in TERMS), self.lpips(picture, photo).item(),
                     palette_distance(picture, self.painting))


@torch.no_grad()
def evaluate(
    model_path: str | Path,
    inputs: list[str | Path],
    size: int = 512,
    device: torch.device | str = "cpu",
    skip: Callable[[Path, str], None] | None = None,
    precision: str = "fp32",
    backend: str = "torch",
    look: Look = Look(),
) -> list[Score]:
    """Stylize each photo (long side shrunk to ``size``) and score it under the model's own training losses.

    ``precision`` and ``backend`` pick the engine that stylizes (as for
    ``stst stylize``; default eager fp32), so that an engine's effect on the
    picture can be judged; ``look`` around it (a stroke scale: the clip path's
    half-size frames). An unreadable photo raises :class:`FileProblem`,
    or with ``skip`` is reported to it and left out; with no photo left, it raises.
    """
    model, ckpt = load_model(model_path, device)
    scorer = Scorer(model_path, ckpt, device)
    stylizer = look.around(Stylizer(model, device, precision=precision, tile=None, channels_last=False,
                                    backend=backend))
    scores = []
    files = photo_files(inputs)
    for path in files:
        try:
            photo = read_photo(path, max_size=size).rgb[None].to(device)
            if min(photo.shape[-2:]) < MIN_SIDE:
                raise FileProblem(path, f"too small to score ({photo.shape[-1]}x{photo.shape[-2]} pixels; the loss "
                                        f"network needs {MIN_SIDE} a side)")
        except FileProblem as exc:
            if skip is None:
                raise
            skip(path, exc.problem)
            continue
        scores.append(scorer(str(path), stylizer(photo.cpu()).to(device), photo))
    if not scores:
        raise FileProblem(files[0] if len(files) == 1 else inputs[0], "no readable photo to evaluate on")
    return scores


def mean_score(scores: list[Score]) -> dict[str, float]:
    """Average of each term (and of LPIPS and the palette distance) over photos."""
    return {t: sum(getattr(s, t) for s in scores) / len(scores) for t in SCORES}

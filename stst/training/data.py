"""Training photos: random square crops from any folder of images, in a resumable order.

The order and the crops are a pure function of ``(seed, position)``, where
position counts samples from the start of training. Resuming at iteration i
therefore reproduces exactly the batches an uninterrupted run would have seen,
with any number of DataLoader workers.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..base.errors import FileProblem, StstError, first_line
from ..base.imageio import IMAGE_SUFFIXES, open_image, rgb_pixels

MIN_CROP_FRACTION = 0.5  # crop sides span 50-100% of the shorter side
FLAT_RAMP = 16 / 255  # how far from its colour a photo of one colour is lifted, at the far corner (lift_flat)


def find_images(root: str | Path) -> list[Path]:
    """Every image file below ``root`` (by extension), sorted; a folder with none is an error."""
    root = Path(root)
    if not root.is_dir():
        raise FileProblem(root, "dataset folder not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileProblem(root, f"no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)")
    return files


@dataclass(frozen=True)
class CropBox:
    """Where sample ``position`` crops a photo: a square of ``side`` at (``left``, ``top``), flipped or not; a pure
    function of ``(seed, position)`` and the photo's size, shared by the loader and :mod:`stst.training.device_crops`."""

    left: int
    top: int
    side: int
    flip: bool

    @classmethod
    def at(cls, width: int, height: int, seed: int, position: int) -> CropBox:
        rng = np.random.default_rng([seed, position])
        side = max(1, int(min(width, height) * rng.uniform(MIN_CROP_FRACTION, 1.0)))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        return cls(left, top, side, bool(rng.random() < 0.5))


def batch_share(batch_size: int, world: int) -> int:
    """This process's share of each global batch of ``batch_size`` among ``world`` processes."""
    if batch_size % world:
        raise StstError(f"the batch size {batch_size} is not a multiple of the {world} processes")
    return batch_size // world


class CropDataset(Dataset):
    """Random square crops resized to ``size``, with random horizontal flips.

    Indexed by ``(file_index, position)``. An unreadable file is replaced by the
    next readable one and reported in the sample's ``skipped`` field.
    """

    def __init__(self, files: list[Path], size: int, seed: int) -> None:
        self.files, self.size, self.seed = files, size, seed

    def __len__(self) -> int:
        return len(self.files)

    def _crop(self, img: Image.Image, box: CropBox) -> torch.Tensor:
        left, top, side = box.left, box.top, box.side
        crop = img.convert("RGB").resize(
            (self.size, self.size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side), reducing_gap=2.0
        )
        x = torch.from_numpy(rgb_pixels(crop))
        return x.flip(-1) if box.flip else x

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, position = key
        skipped = []
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                img, _, _ = open_image(path)
                return {"image": self._crop(img, CropBox.at(*img.size, self.seed, position)), "skipped": skipped}
            except FileProblem as exc:
                skipped.append(str(exc))
            except Exception as exc:  # a decodable file that still cannot be cropped (odd mode, memory)
                skipped.append(f"{path}: cannot crop ({first_line(exc)})")
        raise StstError(f"no readable image in the dataset (all {len(self.files)} files failed)")


class ResumableSampler(Sampler):
    """Endless ``(file_index, position)`` keys from ``start`` on: epoch e is permutation (seed, e).

    With ``world`` > 1 processes, each global batch of ``batch`` positions is
    split in ``world`` equal consecutive slices and this sampler yields slice
    ``rank``: the global batches and their order do not depend on the number
    of processes.
    """

    def __init__(self, n: int, seed: int, start: int = 0, batch: int = 1, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.start = n, seed, start
        self.batch, self.rank, self.world = batch, rank, world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        share = self.batch // self.world
        while True:
            epoch, offset = divmod(position, self.n)
            order = np.random.default_rng([self.seed, 1 << 20, epoch]).permutation(self.n)
            for i in order[offset:]:
                if self.world == 1 or (position % self.batch) // share == self.rank:
                    yield int(i), position
                position += 1


def lift_flat(photos: torch.Tensor) -> torch.Tensor:
    """``photos`` (N, 3, H, W, 0..1), where one has a single colour (a black frame, a blank page), that one with a
    faint ramp toward grey (:data:`FLAT_RAMP` at the far corner); the others exactly as they were.

    Why: a network of instance norms sees zero variance at every norm of a flat photo, and its gradient grows by
    1/sqrt(eps) (316x) at each of them until it overflows: one black photo in a folder ended training in NaN at
    the third step. A ramp, unlike a fine pattern, outlives the strided convolutions. No host synchronisation (a
    GPU step keeps its pace) and no random numbers (the stream of a run stays the same).
    """
    low = photos.amin(dim=(-2, -1))  # (N, 3): a flat photo's colour
    flat = (photos.amax(dim=(-2, -1)) - low).amax(dim=-1) == 0  # (N,)
    lift = torch.where(low >= 0.5, -FLAT_RAMP, FLAT_RAMP) * flat[:, None]  # (N, 3): toward grey; 0 where not flat
    h, w = photos.shape[-2:]
    ramp = (torch.linspace(0, 0.5, h, device=photos.device)[:, None] + torch.linspace(0, 0.5, w, device=photos.device))
    return photos + lift[:, :, None, None].to(photos.dtype) * ramp.to(photos.dtype)


def ignore_sigint(_worker_id: int) -> None:
    """Workers leave Ctrl-C to the main process, which saves a checkpoint and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def collate(samples: list[dict]) -> dict:
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "skipped": [msg for s in samples for msg in s["skipped"]],
    }


def crop_loader(files: list[Path], size: int, batch_size: int, seed: int, start: int = 0, workers: int = 0,
                pin_memory: bool = False, rank: int = 0, world: int = 1) -> DataLoader:
    """Endless batches of crops from ``files``, from sample ``start`` of the ``seed``'s stream on.

    ``batch_size`` is the global batch; with ``world`` processes, this one gets
    its ``rank``-th share of each (``batch_size`` must be a multiple of ``world``).
    """
    share = batch_share(batch_size, world)
    # Forked workers of a process that has run OpenVINO (its thread pool started) crashed the process when they
    # were shut down (the README's stylizing example, then its training one, in one process): such a process starts
    # its workers from a fresh server process instead.
    context = "forkserver" if workers and "openvino" in sys.modules and sys.platform == "linux" else None
    return DataLoader(
        CropDataset(files, size, seed),
        batch_size=share,
        sampler=ResumableSampler(len(files), seed, start, batch_size, rank, world),
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=ignore_sigint if workers else None,
        pin_memory=pin_memory,
        multiprocessing_context=context,
    )

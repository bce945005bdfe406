"""Training crops cut on the GPU from photos decoded once: the device's twin of :func:`stst.training.data.crop_loader`.

The quick recipes train on a few photos (the shipped Kodak set: 12 at 384x256, 3.5 MB decoded) for well under a
minute on a GPU. The loader decodes a photo for every crop in worker processes and hands each crop over as float32
(0.8 MB at 256 px) through shared memory, a batch then stacked and pinned in the training process, whose one CPU
thread also drives the GPU. Here each photo is decoded once onto the device and every crop is cut, resized and
flipped there: the crops the loader would give (the same :class:`CropBox` per sample, the same order and shares
under torchrun), resized by torch's antialiased bilinear instead of Pillow's bilinear (on the shipped photos 0.17-0.18
grey levels from the loader's on average; 0.15% of values more than 2 apart at 256 px, 1% at 64 px: the crops' edges,
where Pillow's filter reads the pixels beyond the box; tested on the CPU) and rounded to grey levels as Pillow's are.
Used where the photos fit :data:`HELD_BYTES` decoded on a CUDA device; larger sets (COCO) keep the loader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..base.errors import FileProblem, StstError, first_line
from ..base.imageio import open_image, open_pillow
from .data import CropBox, ResumableSampler, batch_share, crop_loader

# The most decoded photo bytes held on the device (uint8): the shipped set takes 3.5 MB, a hundred 12 MP phone
# photos 3.6 GB.
HELD_BYTES = 1 << 30


def decoded_bytes(files: list[Path], limit: int) -> int:
    """The files' decoded size as uint8 RGB, from their headers, counted until it passes ``limit`` (a large set is
    not read through); unreadable files count nothing."""
    total = 0
    for path in files:
        try:
            with open_pillow(path) as img:
                total += img.width * img.height * 3
        except Exception:  # noqa: BLE001 - Pillow's parsers raise many types; the crops report the file
            continue
        if total > limit:
            break
    return total


class DeviceCrops:
    """Endless batches of crops of ``files``, cut on ``device`` from the photos decoded once, from sample ``start``
    of the ``seed``'s stream on; with ``world`` processes, this one's ``rank``-th share of each global batch. An
    unreadable file is replaced by the next readable one, as the loader replaces it, and reported with the first
    batch."""

    def __init__(self, files: list[Path], size: int, batch_size: int, seed: int, device: torch.device,
                 start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.device = size, seed, device
        self.share = batch_share(batch_size, world)
        self.sampler = ResumableSampler(len(files), seed, start, batch_size, rank, world)
        self.skipped: list[str] = []
        self.photos: list[torch.Tensor | None] = [self._decoded(path) for path in files]
        if not any(photo is not None for photo in self.photos):
            raise StstError(f"no readable image in the dataset (all {len(files)} files failed)")

    def _decoded(self, path: Path) -> torch.Tensor | None:
        """A photo as uint8 (3, H, W) on the device; None (reported) where it cannot be read."""
        try:
            img, _, _ = open_image(path)
            pixels = torch.from_numpy(np.array(img.convert("RGB")))  # as the loader converts it
        except FileProblem as exc:
            self.skipped.append(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - a decodable file that still cannot be converted (odd mode, memory)
            self.skipped.append(f"{path}: cannot crop ({first_line(exc)})")
            return None
        return pixels.to(self.device).permute(2, 0, 1)

    def crop(self, index: int, position: int) -> torch.Tensor:
        """Sample ``position`` of photo ``index`` (or the next readable one) as float32 (3, size, size) in 0..1."""
        while self.photos[index] is None:
            index = (index + 1) % len(self.photos)
        photo = self.photos[index]
        box = CropBox.at(photo.shape[2], photo.shape[1], self.seed, position)
        square = photo[None, :, box.top:box.top + box.side, box.left:box.left + box.side].float()
        x = F.interpolate(square, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        x = x[0].clamp_(0, 255).round_().div_(255)
        return x.flip(-1) if box.flip else x

    def __iter__(self) -> Iterator[dict]:
        keys = iter(self.sampler)
        skipped = self.skipped
        while True:
            yield {"image": torch.stack([self.crop(*next(keys)) for _ in range(self.share)]), "skipped": skipped}
            skipped = []


def crop_batches(files: list[Path], size: int, batch_size: int, seed: int, device: torch.device, start: int = 0,
                 workers: int = 0, rank: int = 0, world: int = 1) -> DeviceCrops | DataLoader:
    """The training batches for a run on ``device``: :class:`DeviceCrops` on CUDA where the photos fit
    :data:`HELD_BYTES` decoded, else the loader (:func:`stst.training.data.crop_loader`, workers decoding)."""
    if device.type == "cuda" and decoded_bytes(files, HELD_BYTES) <= HELD_BYTES:
        return DeviceCrops(files, size, batch_size, seed, device, start, rank, world)
    return crop_loader(files, size, batch_size, seed, start, workers, pin_memory=device.type == "cuda", rank=rank,
                       world=world)

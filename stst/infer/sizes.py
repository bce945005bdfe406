"""The image sizes that decide how an image runs: the sizes engines are measured at, and where tiles start.

Torch-free, so that the express lane (:mod:`stst.infer.express`) routes a photo
by its size with the same rules as the torch path.
"""

from __future__ import annotations

import math
from collections import Counter

# The sizes (height, width) measured at: an image is timed at the nearest in pixel count (log scale).
# Larger images run at the largest's choice; above AUTO_PIXELS they run in tiles (stst.infer.tiling).
SIZE_BUCKETS = ((256, 256), (384, 512), (512, 768))
AUTO_TILE = 1024  # tile size of --tile auto
# --tile auto tiles images larger than this, by network design. The realtime design's full-resolution layers are
# thin (8 channels against Johnson's 32): a phone's 12 MP photo runs whole (faster, in 1.6 GB; docs/performance.md)
# and 4096x4096 still goes in tiles, within 2.5 GB.
AUTO_PIXELS = {"johnson": 2048 * 2048, "realtime": 4096 * 3072}


# On a GPU images run whole up to this many times AUTO_PIXELS (a 4K frame, a phone's 12 MP photo), in tiles above
# that and wherever its memory runs out: tiles cost a statistics pass and their overlaps, which a GPU's memory spares.
GPU_WHOLE = 4


def runs_in_tiles(height: int, width: int, design: str | None = None, gpu: bool = False) -> bool:
    """Whether ``--tile auto`` tiles an image of this size for a network of ``design`` (more than its
    :data:`AUTO_PIXELS`, on a GPU :data:`GPU_WHOLE` times as many); without a design, whether it may (more than the
    least of them: the express lane, which does not know the design, leaves such images to the torch path, and a
    run of photos sends them alone)."""
    limit = AUTO_PIXELS[design] if design else min(AUTO_PIXELS.values())
    return height * width > limit * (GPU_WHOLE if gpu else 1)


# The device memory a batch of photos may take on a GPU: a full-tier 1080p batch of 8 in fp32 peaked at 25 GiB on an
# H200 (issue 48), and bigger batches than fit here gained nothing measured (the GPU is busy from one 1080p image on).
GPU_BATCH_BYTES = 3 << 30
# Photos per batch that a run hands a GPU unless told (--batch-size): it runs them in chunks that fit.
GPU_BATCH = 8


def fitting_batch(image_bytes: int, budget: int, most: int = GPU_BATCH) -> int:
    """How many images a chunk on a GPU holds: as many of ``image_bytes`` each (measured on one) as fit ``budget``,
    at least one and at most ``most``."""
    return max(1, min(most, budget // max(1, image_bytes)))


def size_bucket(height: int, width: int) -> tuple[int, int]:
    """The measured size nearest to ``height`` x ``width`` in pixel count (on a log scale)."""
    pixels = max(1, height * width)
    return min(SIZE_BUCKETS, key=lambda hw: abs(math.log(hw[0] * hw[1] / pixels)))


# A run of photos compiles a per-size engine (OpenVINO) for a new size while its photos so far have come at least
# this many to a size, or when the size comes again (the first size compiles: a folder of camera photos repeats it):
# a compile takes 0.1-0.35 s, what the full network's 768x512 photo saves on OpenVINO int8 over ONNX Runtime int8
# in one or two photos, and the realtime network's in four to ten.
REPEATS = 4


class SizeTally:
    """The sizes a run of photos has met so far: whether a new one is worth compiling for."""

    def __init__(self) -> None:
        self.images: Counter[tuple[int, int]] = Counter()

    def pays(self, size: tuple[int, int], images: int) -> bool:
        """Whether a batch of ``images`` images of ``size`` may run on an engine that compiles each size; then
        counted."""
        pays = size in self.images or sum(self.images.values()) >= REPEATS * len(self.images)
        self.images[size] += images
        return pays

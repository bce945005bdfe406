"""The image sizes that decide how an image runs: the sizes engines are measured at, and where tiles start.

Torch-free, so that the express lane (:mod:`stst.infer.express`) routes a photo
by its size with the same rules as the torch path.
"""

from __future__ import annotations

import math

# The sizes (height, width) measured at: an image is timed at the nearest in pixel count (log scale).
# Larger images run at the largest's choice; above AUTO_PIXELS they run in tiles (stst.infer.tiling).
SIZE_BUCKETS = ((256, 256), (384, 512), (512, 768))
AUTO_TILE = 1024  # tile size of --tile auto
AUTO_PIXELS = 2048 * 2048  # --tile auto tiles images larger than this


def runs_in_tiles(height: int, width: int) -> bool:
    """Whether ``--tile auto`` tiles an image of this size (more than :data:`AUTO_PIXELS`)."""
    return height * width > AUTO_PIXELS


def size_bucket(height: int, width: int) -> tuple[int, int]:
    """The measured size nearest to ``height`` x ``width`` in pixel count (on a log scale)."""
    pixels = max(1, height * width)
    return min(SIZE_BUCKETS, key=lambda hw: abs(math.log(hw[0] * hw[1] / pixels)))

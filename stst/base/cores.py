"""Independent images run side by side, one per CPU core.

Engines split one image's layers over the cores poorly where the layers are small. On 2 cores of an Intel Xeon,
ONNX Runtime ran the realtime network at 640x480 in 113 ms on one thread and 84-87 ms on two; two frames at once,
one thread each, gave 1.27-1.77x the frames of one at a time on two threads (light and full tiers 1.8x and 1.6x
in the same hour), and a clip 1.3x the frames end to end. Torch scales better over threads: side by side gave it
1.16-1.19x for the network alone and nothing end to end, so its engines keep running one image at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .machine import cpu_cores

# Photos per batch unless told: one per core (ONNX Runtime runs them side by side), at most 4, since a batch's
# photos wait in memory together.
MAX_DEFAULT_BATCH = 4

Item = TypeVar("Item")
Result = TypeVar("Result")


def side_by_side(run: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """``[run(item) for item in items]`` in that order, with one item per core running at a time (in threads:
    the engines release the GIL). ``run`` should use one thread itself."""
    workers = min(cpu_cores(), len(items))
    if workers < 2:
        return [run(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, items))


def default_batch() -> int:
    """Images per batch unless told: one per core, at most :data:`MAX_DEFAULT_BATCH`."""
    return max(1, min(cpu_cores(), MAX_DEFAULT_BATCH))

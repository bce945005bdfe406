"""Independent images run side by side, one per CPU core: engines split one image's small layers over the cores
poorly (measurements: docs/performance.md, "Photos side by side").
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


def gpu_io_threads() -> int:
    """Threads that decode photos, and as many that encode them, in a run on a GPU: one per core but the one that
    drives the GPU. The network then takes a few milliseconds a 1080p photo, while decoding one takes about 8 and
    encoding it as JPEG about 15 on a core, so the codecs need every core to keep up (they release the GIL)."""
    return max(1, cpu_cores() - 1)

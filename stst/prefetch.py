"""Running an iterator ahead in a background thread, so that decoding overlaps the network's work."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator


def prefetch(items: Iterator, depth: int) -> Iterator:
    """Run ``items`` in a background thread, ``depth`` ahead: decoding overlaps the network's work."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                buffer.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put(exc)
        buffer.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := buffer.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item

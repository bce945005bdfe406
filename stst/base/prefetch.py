"""Running an iterator ahead in a background thread, so that decoding overlaps the network's work."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator


def prefetch(items: Iterator, depth: int) -> Iterator:
    """Run ``items`` in a background thread, ``depth`` ahead: decoding overlaps the network's work.

    When the consumer stops early (an error, Ctrl-C), the thread is stopped
    and joined before this generator returns, so that the caller can close
    what ``items`` reads from (a video container) without the thread still
    decoding from it.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return
            except queue.Full:
                pass

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        put(done)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()

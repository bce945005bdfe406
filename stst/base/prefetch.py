"""Running an iterator ahead in background threads, so that decoding overlaps the network's work."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


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


def ordered_map(run: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """``map(run, items)`` in ``workers`` threads, in order, at most ``2 * workers`` items ahead of the consumer (a
    GPU run decodes photos on every core it has; the codecs release the GIL). One worker: in this thread."""
    if workers <= 1:
        yield from map(run, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ahead: deque[Future] = deque()
        for item in items:
            ahead.append(pool.submit(run, item))
            if len(ahead) >= 2 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

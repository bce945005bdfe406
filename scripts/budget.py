"""A benchmark's sections on a short lease of a GPU: each runs while enough of a budget of seconds is left, the most
needed first, and one section's failure is printed without ending the others (the device machine's 15 minutes are
spent either way)."""

from __future__ import annotations

import os
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# Seconds a command may run past the budget's end before it is stopped: the call's own limit leaves about this much.
GRACE = 60


def say(line: str) -> None:
    print(line, flush=True)


def checkout_env(**variables: str) -> dict[str, str]:
    """This environment with these variables, for a command that runs stst from this checkout (``PYTHONPATH``
    keeps what it held: carried wheels, PyAV on the device machine)."""
    paths = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": paths, **variables}


class Budget:
    """``seconds`` of wall time from now for a benchmark's sections; with ``only``, just the sections whose names
    hold one of its words (a second lease runs what the first left out)."""

    def __init__(self, seconds: float, only: list[str] | None = None) -> None:
        self.seconds, self.start = seconds, time.perf_counter()
        self.only = [word.lower() for word in only or []]

    def spent(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.spent()

    def section(self, name: str, need: float, run: Callable[[], object]) -> None:
        """Run one section where it is asked for and ``need`` seconds are left; its failure is printed, not fatal."""
        if self.only and not any(word in name.lower() for word in self.only):
            say(f"({name}: not asked for)")
            return
        if self.left() < need:
            say(f"({name}: left out, {self.left():.0f} s of the budget left)")
            return
        try:
            run()
        except Exception:  # noqa: BLE001 - a lease is short: the other sections still run
            say(f"({name} failed: {traceback.format_exc(limit=3).strip().splitlines()[-1]})")
            traceback.print_exc()

    def run(self, argv: list[str], env: dict) -> tuple[float, str]:
        """``argv`` in a process of its own: its wall seconds and what it said on stderr; stopped where it would
        outlast the budget by :data:`GRACE` (one hung command must not take the lease's other sections with it).
        RuntimeError with the end of its stderr where it fails."""
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=self.left() + GRACE)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"stopped after {exc.timeout:.0f} s, past the budget: {' '.join(argv)}") from None
        if done.returncode:
            raise RuntimeError(f"exit {done.returncode}: {' '.join(argv)}: {done.stderr.strip()[-1500:]}")
        return time.perf_counter() - start, done.stderr

"""When a run times its engines, and the engine a run starts on when it does not (no torch imported here).

Timing the engines pays off over many images only: on a fresh home it took about 25 s of the first
`stst stylize --example`'s 31 on 2 cores of an AMD EPYC (Zen 3; docs/engine-choice.md). So a first run of a few photos starts on the
sound engine, unmeasured, and the timing waits for a run that pays for it: many photos, or a folder of a
model met before (where it then pays on every later run), clips and the server.
"""

from __future__ import annotations

from dataclasses import dataclass

# Photos from which a run times its engines (the first time, per machine and size) ...
MEASURE_FROM = 100
# ... and from which it does so for a model and request that ran here before, unmeasured.
MEASURE_AGAIN_FROM = 8
# The sound engines, best first: ONNX Runtime's fp32 output equals eager fp32's (within 2e-6) and it was never
# slower than eager fp32 in this project's measurements on CPUs.
SOUND_ENGINES = ("onnxruntime-fp32", "torch-fp32")


def measures(photos: int | None, seen: bool = False) -> bool:
    """Whether a run of ``photos`` photos (``None``: clips, the server, an open-ended run) times its engines;
    ``seen``: the model and request ran here before."""
    return photos is None or photos >= MEASURE_FROM or (seen and photos >= MEASURE_AGAIN_FROM)


def sound(candidates: list[str]) -> str:
    """The engine an unmeasured run starts on among ``candidates`` (the first is the reference)."""
    return next((name for name in SOUND_ENGINES if name in candidates), candidates[0])


@dataclass(frozen=True)
class Decision:
    """The engine images of one size run on, and why (a key of :data:`REASONS`)."""

    engine: str
    why: str
    spare: str = ""  # where ``engine`` compiles each size: the fastest that does not, for sizes that do not repeat

    def says(self, size: tuple[int, int]) -> str:
        """The line ``stst stylize -v`` prints."""
        return f"engine for images near {size[1]}x{size[0]}: {self.engine} ({REASONS[self.why]})"


REASONS = {
    "forced": "the only one the device, --precision and --backend leave",
    "measured": "the fastest, timed now; stst info --engines shows the times",
    "trial": "the fastest, timed now on this run's photos (their outputs stand); stst info --engines shows the times",
    "cached": "the fastest when timed on this machine before; stst info --engines shows the times",
    "unmeasured": f"not timed yet: a first run of fewer than {MEASURE_FROM} photos starts on it",
    "express": "recorded by an earlier run for this model and request: runs without torch",
}

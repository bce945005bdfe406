"""Mixes of styles, trained: a short run of the quick recipe toward the weighted mean of the parts' Gram matrices.

A mix should come closer to the mixed paintings' styles than a crossfade of the parts' pictures. Averaging
the weights of models fine-tuned from one base does not (it lands as far as the crossfade), and models
trained apart cannot be averaged at all. So a mix is trained, on the photos that ship with stst: from the
average where the parts share a base (it starts close, a minute is enough), else from the heaviest part
(minutes). Made once per set of models, weights and budget, and kept in ``$STST_HOME/mixes``, a mix then runs
on every engine like any model. Measurements: docs/training.md, "Mixing".
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..base.fileio import file_sha256
from ..base.home import stst_home
from ..model.bundled import resolve_model
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.mix import Mix, Part, average, checked, mix_name, normalised, parts_of, share_base
from .datasets import SHIPPED_PHOTOS
from .options import RunSettings, make_options
from .train import TrainingInterrupted, train

MIX_FOLDER = "mixes"  # in $STST_HOME: one model file per mix, named by what went into it
# The minutes of training a mix gets unless told: parts of one base start from their average, others from one
# of the parts, which must first learn the others' looks.
MINUTES = {"one base": 1.0, "apart": 3.0}
RECIPE = "quick-3"  # part of each mix's cache key: a changed recipe makes its mixes anew (2: the palette term, 3: its fit)


def mix_minutes(mix: Mix, minutes: float | None = None) -> float:
    """The training budget of a mix: ``minutes`` where given, else by whether the parts share a base."""
    if minutes is not None:
        return minutes
    return MINUTES["one base" if share_base(mix.parts, mix.ckpts) else "apart"]


def mix_file(parts: list[Part], minutes: float) -> Path:
    """Where the mix of these (normalised) parts, trained for ``minutes``, is kept; made or not."""
    key = json.dumps([RECIPE, minutes, *([file_sha256(p.path), round(p.weight, 6)] for p in parts)]).encode()
    return stst_home() / MIX_FOLDER / f"{hashlib.sha256(key).hexdigest()[:16]}.pth"


def make_mix(mix: Mix, output: Path, minutes: float, run: RunSettings,
             log: Callable[[str], None] = print) -> dict:
    """Train ``mix`` for ``minutes`` into the scratch file ``run.output`` (its previews beside it), then keep it
    slim in ``output``; returns the final losses. An interrupted mix leaves ``output`` untouched."""
    parts, ckpts = mix.parts, mix.ckpts
    with tempfile.TemporaryDirectory(prefix="stst-mix-") as folder:
        if share_base(parts, ckpts):
            start = Path(folder) / "average.pth"
            averaged = average(parts, ckpts)
            save_checkpoint(start, averaged.build(), averaged.metadata)
        else:
            start = max(parts, key=lambda p: p.weight).path
        options = make_options(mix_name(parts), str(SHIPPED_PHOTOS), "quick", init=str(start), minutes=minutes,
                               mix={str(p.path): p.weight for p in parts})
        try:
            losses = train(options, replace(run, log=None, checkpoint_every=0, overwrite=True), log=log)
        except TrainingInterrupted:
            raise TrainingInterrupted(f"interrupted while making the mix {mix_name(parts)}; nothing was kept") from None
    done = load_checkpoint(run.output)  # kept slim, as the bundled models are: float16, no optimiser state
    save_checkpoint(output, done.build(), done.metadata, half=True)
    return losses


def mixed_model_file(parts: list[Part], minutes: float | None = None, device: str = "auto", progress: bool = True,
                     log: Callable[[str], None] = print) -> Path:
    """The mix as a model file in the cache, trained the first time it is asked for; one part is its own file."""
    parts = normalised(parts)
    if len(parts) == 1:
        return parts[0].path
    mix = checked(parts)
    minutes = mix_minutes(mix, minutes)
    path = mix_file(mix.parts, minutes)
    if not path.is_file():
        log(f"making the mix {mix_name(parts)}: {minutes:g} minute{'' if minutes == 1 else 's'} of training toward the mixed styles, "
            f"once (kept in {path.parent})")
        with tempfile.TemporaryDirectory(prefix="stst-mix-") as scratch:
            run = RunSettings(output=Path(scratch) / "mix.pth", device=device, workers=0, progress=progress)
            make_mix(mix, path, minutes, run, log)
    return path


def resolve_mix(specs: list[str], tier: str = "full", minutes: float | None = None, device: str = "auto",
                progress: bool = True, log: Callable[[str], None] = print) -> tuple[Path, str]:
    """``--model`` given once or more (``NAME=WEIGHT``): the model file to run (a mix is made the first time it
    is asked for) and the name for output files."""
    parts = parts_of(specs, lambda name: resolve_model(name, tier))
    return mixed_model_file(parts, minutes, device, progress, log), mix_name(parts)

"""Mixing styles: ``--model a=0.7 --model b=0.3`` as one network whose weights are the weighted mean of theirs.

Averaging weights gives one network (one pass, not two pictures overlaid) only for networks that stayed
close to one shared start: models fine-tuned from the same base, as the quick recipe makes them (``stst
train`` on a CPU; Wortsman et al. 2022, "Model soups", for the same effect in classifiers). Networks trained
apart have no common coordinates, so averaging them gives noise: they are refused, named. Measured against
the mixed paintings' Gram matrices, the mix is as far as a crossfade of the two pictures, not closer
(docs/training.md, "Mixing").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import StstError
from ..base.fileio import file_sha256
from ..base.home import stst_home
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint

# Where mixed networks are written, one file per mix (named by what went into it), so that the engines and
# their caches treat a mix like any model file.
MIX_FOLDER = "mixes"


class MixError(StstError):
    """Models that cannot be mixed, or weights that make no mix."""


@dataclass(frozen=True)
class Part:
    """One model of a mix: its file, its name in output file names, and its share before normalising."""

    path: Path
    name: str
    weight: float


def parse_part(spec: str) -> tuple[str, float]:
    """``NAME=0.7`` -> ``("NAME", 0.7)``; a spec without ``=`` weighs 1."""
    name, sep, weight = spec.rpartition("=")
    if not sep:
        return spec, 1.0
    try:
        value = float(weight)
    except ValueError:
        raise MixError(f"'{spec}': the weight after '=' must be a number") from None
    if not value >= 0 or value == float("inf"):
        raise MixError(f"'{spec}': the weight must be a number of at least 0")
    return name, value


def normalised(parts: list[Part]) -> list[Part]:
    """The parts with weights that add up to 1 (parts of weight 0 dropped)."""
    total = sum(p.weight for p in parts)
    if total <= 0:
        raise MixError("the weights of the mix add up to 0")
    return [Part(p.path, p.name, p.weight / total) for p in parts if p.weight > 0]


def lineage(path: Path, ckpt: Checkpoint) -> set[str]:
    """The sha256 of the file and of the model it was fine-tuned from: models whose lineages meet share a base
    (a base mixes with the models fine-tuned from it, and they with each other)."""
    init = ckpt.metadata.get("init")
    parent = {init["sha256"]} if isinstance(init, dict) and isinstance(init.get("sha256"), str) else set()
    return {file_sha256(path)} | parent


def check_mixable(parts: list[Part], ckpts: list[Checkpoint]) -> None:
    """The same network shape and one shared base; else a one-line error naming the models."""
    names = " and ".join(p.name for p in parts)
    if len({c.arch for c in ckpts}) > 1:
        shapes = ", ".join(f"{p.name}: width {c.arch.tag}" for p, c in zip(parts, ckpts))
        raise MixError(f"cannot mix {names}: their networks differ ({shapes})")
    if not set.intersection(*(lineage(p.path, c) for p, c in zip(parts, ckpts))):
        raise MixError(f"cannot mix {names}: they were not fine-tuned from one base (models made by "
                       "`stst train` on a CPU, the quick recipe, share one and can be mixed)")


def mix_checkpoints(parts: list[Part]) -> Checkpoint:
    """One checkpoint whose weights are the weighted mean of the parts' (weights normalised)."""
    parts = normalised(parts)
    ckpts = [load_checkpoint(p.path) for p in parts]
    check_mixable(parts, ckpts)
    state = {key: sum(p.weight * c.state_dict[key].float() for p, c in zip(parts, ckpts))
             for key in ckpts[0].state_dict}
    metadata = {"mix": [{"name": p.name, "sha256": file_sha256(p.path), "weight": p.weight} for p in parts]}
    return Checkpoint(ckpts[0].arch, state, metadata)


def mix_name(parts: list[Part]) -> str:
    """The name in output file names: ``starry70+udnie30`` (percentages after normalising); one model's own name."""
    parts = normalised(parts)
    if len(parts) == 1:
        return parts[0].name
    return "+".join(f"{p.name}{round(100 * p.weight)}" for p in parts)


def mixed_model_file(parts: list[Part]) -> Path:
    """The mix as a model file in the cache (written once per set of models and weights)."""
    parts = normalised(parts)
    if len(parts) == 1:
        return parts[0].path
    key = json.dumps([[file_sha256(p.path), round(p.weight, 6)] for p in parts]).encode()
    path = stst_home() / MIX_FOLDER / f"{hashlib.sha256(key).hexdigest()[:16]}.pth"
    if not path.is_file():
        ckpt = mix_checkpoints(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, ckpt.build(), ckpt.metadata)
    return path


def parts_of(specs: list[str], locate: Callable[[str], tuple[Path, str]]) -> list[Part]:
    """``NAME=WEIGHT`` specs as parts, each name turned into its file and shown name by ``locate``."""
    parts = []
    for spec in specs:
        name, weight = parse_part(spec)
        parts.append(Part(*locate(name), weight))
    return parts


def resolve_mix(specs: list[str], tier: str = "full") -> tuple[Path, str]:
    """``--model`` given once or more (``NAME=WEIGHT``): the model file to run and the name for output files."""
    from .bundled import resolve_model

    parts = parts_of(specs, lambda name: resolve_model(name, tier))
    return mixed_model_file(parts), mix_name(parts)

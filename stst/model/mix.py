"""Mixing styles: ``--model a=0.7 --model b=0.3``, the parts of a mix and the arithmetic on them.

A mix is one network trained toward the mixed paintings' styles (``stst.training.mixing``); this module holds
what that needs without training: parsing ``NAME=WEIGHT``, normalising the weights, the names of mixes, which
models share a base (the lineage) and the weighted mean of their weights, where a mix of such models starts.
Averaging weights alone works only for networks that stayed close to one shared start (Wortsman et al. 2022,
"Model soups"), and even then lands as far from the mixed styles as a crossfade (docs/training.md, "Mixing").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import StstError
from ..base.fileio import file_sha256
from .checkpoint import Checkpoint, load_checkpoint


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
    """The parts with weights that add up to 1 (parts of weight 0 dropped); a model named twice is one part with
    the sum of its weights (else a style mixed with itself would train a minute to become what it was)."""
    merged: dict[Path, Part] = {}
    for p in parts:
        key = p.path.resolve()
        same = merged.get(key)
        merged[key] = Part(same.path, same.name, same.weight + p.weight) if same else p
    parts = list(merged.values())
    total = sum(p.weight for p in parts)
    if total == float("inf"):
        raise MixError("the weights of the mix are too large to add up (their sum overflows); give shares such as "
                       "0.7 and 0.3")
    if total <= 0:
        raise MixError("the weights of the mix add up to 0")
    return [Part(p.path, p.name, p.weight / total) for p in parts if p.weight > 0]


def lineage(path: Path, ckpt: Checkpoint) -> set[str]:
    """The sha256 of the file and of the model it was fine-tuned from: models whose lineages meet share a base
    (a base mixes with the models fine-tuned from it, and they with each other)."""
    init = ckpt.metadata.get("init")
    parent = {init["sha256"]} if isinstance(init, dict) and isinstance(init.get("sha256"), str) else set()
    return {file_sha256(path)} | parent


def share_base(parts: list[Part], ckpts: list[Checkpoint]) -> bool:
    """Whether the models' lineages meet: all fine-tuned from one base, or that base and its fine-tunes."""
    return bool(set.intersection(*(lineage(p.path, c) for p, c in zip(parts, ckpts))))


def check_mixable(parts: list[Part], ckpts: list[Checkpoint]) -> None:
    """Networks of one shape, each of a design that trains (not the realtime design, which is only distilled);
    else a one-line error naming the models."""
    names = " and ".join(p.name for p in parts)
    if len({c.arch for c in ckpts}) > 1:
        shapes = ", ".join(f"{p.name}: width {c.arch.tag}" for p, c in zip(parts, ckpts))
        raise MixError(f"cannot mix {names}: their networks differ ({shapes})")
    if ckpts[0].arch.design != "johnson":
        raise MixError(f"cannot mix {names}: {ckpts[0].arch.design} networks are only distilled, not trained; "
                       "mix the full or light tier")


@dataclass(frozen=True)
class Mix:
    """A mix's parts (weights normalised) with their checkpoints, loaded and checked once (:func:`checked`)."""

    parts: list[Part]
    ckpts: list[Checkpoint]


def checked(parts: list[Part]) -> Mix:
    """The parts normalised, their checkpoints loaded and checked mixable (:func:`check_mixable`)."""
    parts = normalised(parts)
    ckpts = [load_checkpoint(p.path) for p in parts]
    check_mixable(parts, ckpts)
    return Mix(parts, ckpts)


def average(parts: list[Part], ckpts: list[Checkpoint]) -> Checkpoint:
    """One checkpoint whose weights are the weighted mean of the (normalised) parts' weights."""
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


def parts_of(specs: list[str], locate: Callable[[str], tuple[Path, str]]) -> list[Part]:
    """``NAME=WEIGHT`` specs as parts, each name turned into its file and shown name by ``locate``."""
    parts = []
    for spec in specs:
        name, weight = parse_part(spec)
        parts.append(Part(*locate(name), weight))
    return parts

"""The models a server offers: the bundled styles and those in ``--models DIR``, by name only.

A client names a style and a tier; the file is looked up here and nowhere
else, so no path a client sends is ever opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import StstError
from ..model.bundled import DEFAULT_MODEL, TIERS, bundled_styles, styles_in
from ..model.checkpoint import load_checkpoint
from ..model.mix import Mix, MixError, checked, parts_of


class UnknownModel(StstError):
    """A style or tier the server does not have (the client's mistake: a 404)."""


@dataclass(frozen=True)
class Style:
    """One style with its tiers' files, and what the page shows of it."""

    name: str
    title: str  # the painting, e.g. "Vincent van Gogh, The Starry Night (1889)"
    tiers: dict[str, Path]
    macs_per_pixel: dict[str, int]
    network: str  # the full model's shape (design and width): styles of one shape can be mixed

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "tiers": list(self.tiers), "macs_per_pixel": self.macs_per_pixel,
                "network": self.network}


def _style(name: str, tiers: dict[str, Path]) -> Style:
    checkpoints = {tier: load_checkpoint(path) for tier, path in tiers.items()}
    meta = next(iter(checkpoints.values())).metadata.get("style", {})
    title = meta.get("title") or Path(meta.get("name", name)).stem.replace("_", " ")
    first = next(iter(tiers))
    arch = checkpoints[first].arch
    return Style(name, title, tiers, {tier: ckpt.arch.macs_per_pixel() for tier, ckpt in checkpoints.items()},
                 arch.tag)


class Catalog:
    """Style name -> :class:`Style`: the bundled ones, then those of ``folder`` (which win a clash of names).

    A model file that cannot be read is left out and named to ``warn``; the others are served.
    """

    def __init__(self, folder: Path | None = None, warn: Callable[[str], None] = lambda message: None) -> None:
        found = bundled_styles()
        if folder is not None:
            if not folder.is_dir():
                raise StstError(f"{folder}: --models must be a folder of .pth models")
            found.update(styles_in(folder))
        if not found:
            raise StstError("no models to serve: none are bundled and --models found no .pth file")
        self.styles = {}
        for name, tiers in found.items():
            try:
                self.styles[name] = _style(name, tiers)
            except StstError as exc:
                warn(f"warning: {exc}; {name} is not served")
        if not self.styles:
            raise StstError("no models to serve: none of the model files could be read")
        self.default = DEFAULT_MODEL if DEFAULT_MODEL in self.styles else next(iter(self.styles))

    def add(self, name: str, path: Path) -> None:
        """A style trained while the server runs (its full tier only), offered from now on."""
        self.styles[name] = _style(name, {"full": path})

    def file(self, name: str | None, tier: str | None) -> Path:
        """The model file of style ``name`` (default: the default style) at ``tier`` (default: full)."""
        style = self.styles.get(name or self.default)
        if style is None:
            raise UnknownModel(f"unknown model '{name}' (models: {', '.join(self.styles)})")
        tier = tier or "full"
        if tier not in style.tiers:
            raise UnknownModel(f"{style.name} has no {tier} tier; it has: {', '.join(style.tiers)}")
        return style.tiers[tier]

    def mix_parts(self, spec: str) -> Mix:
        """The styles of a mix, ``a=0.7,b=0.3`` (names the server has; their full tier), weights normalised and
        checkpoints loaded; a one-line refusal for fewer than two or styles that cannot be mixed."""
        mix = checked(parts_of([item.strip() for item in spec.split(",")], lambda name: (self.file(name, "full"), name)))
        if len(mix.parts) < 2:
            raise MixError(f"'{spec}': a mix needs two styles or more, with weights above 0")
        return mix

    def fastest(self, name: str | None) -> str:
        """The fastest tier that style ``name`` has (the live view's default)."""
        style = self.styles.get(name or self.default)
        return min(style.tiers, key=style.macs_per_pixel.get) if style else "full"

    def describe(self) -> dict:
        return {"default": self.default, "tiers": list(TIERS),
                "models": [style.describe() for style in self.styles.values()]}

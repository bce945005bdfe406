"""The style models and sample photo shipped with stst, and resolving ``--model`` values to files."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from ..base.errors import FileProblem, StstError

DEFAULT_MODEL = "starry_night"
# The tiers of a style: the full model NAME.pth, and faster networks taught its outputs
# (``stst distill --tier``) that sit beside it as NAME-light.pth and NAME-realtime.pth.
TIERS = ("full", "light", "realtime")


def models_folder() -> Path:
    """Installed: the package ``stst.models``; run from a source checkout: the repository's ``models/``."""
    try:
        return Path(str(resources.files("stst.models")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "models"


def example_photo() -> Path:
    """The sample photo shipped in the package (Kodak kodim23, free to copy), for ``stst stylize --example``."""
    return Path(str(resources.files("stst"))) / "examples" / "kodim23.jpg"


def bundled_models() -> dict[str, Path]:
    """Name -> file of every shipped model, each tier under its own name (``starry_night-light``)."""
    return {p.stem: p for p in sorted(models_folder().glob("*.pth"))}


def split_tier(name: str) -> tuple[str, str]:
    """``starry_night-realtime`` -> ``("starry_night", "realtime")``; a name without a tier suffix is full."""
    for tier in TIERS[1:]:
        if name.endswith(f"-{tier}"):
            return name.removesuffix(f"-{tier}"), tier
    return name, "full"


def bundled_styles() -> dict[str, dict[str, Path]]:
    """Style -> {tier: file} of the shipped models, tiers in the order of :data:`TIERS`."""
    return styles_in(models_folder())


def styles_in(folder: Path) -> dict[str, dict[str, Path]]:
    """Style -> {tier: file} of the models (``*.pth``) in ``folder``, tiers in the order of :data:`TIERS`."""
    styles: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.glob("*.pth")):
        name = path.stem
        style, tier = split_tier(name)
        styles.setdefault(style, {})[tier] = path
    return {style: {t: tiers[t] for t in TIERS if t in tiers} for style, tiers in styles.items()}


def _tier_file(beside: Path, style: str, tier: str) -> Path:
    """Where the ``tier`` of ``style`` lies, in the folder of ``beside``: NAME.pth, NAME-light.pth, ..."""
    return beside.with_name(f"{style}{'' if tier == 'full' else f'-{tier}'}{beside.suffix}")


def _not_found(path: Path, models: dict[str, dict[str, Path]]) -> str:
    """Why ``path`` names no model: a folder, or no file; with the bundled name it misspells, if one is close."""
    if path.is_dir():
        return "a folder, not a model file"
    close = difflib.get_close_matches(str(path), models, n=1)
    guess = f"did you mean {close[0]}? " if close else ""
    return f"model file not found ({guess}bundled models: {', '.join(bundled_styles())})" if models else \
        "model file not found"


def resolve_model(spec: str | Path | None, tier: str = "full") -> tuple[Path, str]:
    """A model file and the name used in output file names, for a path or a bundled model's name.

    ``None`` means the default bundled model. An existing file wins over a
    bundled name. ``tier`` asks for the model's light or realtime tier, the
    file beside it named ``NAME-light.pth`` or ``NAME-realtime.pth``.
    """
    if tier not in TIERS:
        raise StstError(f"unknown tier '{tier}' (use {', '.join(TIERS)})")
    spec = DEFAULT_MODEL if spec is None else spec
    path = Path(spec)
    models = bundled_models()
    if path.is_file():
        found = path, path.stem
    elif str(spec) in models:
        found = models[str(spec)], str(spec)
    else:
        raise FileProblem(path, _not_found(path, models))
    style, own_tier = split_tier(found[1])
    if tier == "full" or tier == own_tier:
        return found
    variant = _tier_file(found[0], style, tier)
    if not variant.is_file():
        have = [t for t in TIERS if _tier_file(found[0], style, t).is_file()]
        raise FileProblem(variant, f"no {tier} tier of {style} (it has: {', '.join(have) or 'none'}; make one with: "
                                   f"stst distill {spec} --tier {tier} --dataset PHOTOS)")
    return variant, f"{style}-{tier}"

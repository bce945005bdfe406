"""The style models and sample photo shipped with stst, and resolving ``--model`` values to files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..base.errors import FileProblem

DEFAULT_MODEL = "starry_night"
# A light variant (``stst distill``) sits beside its model as NAME-light.pth.
LIGHT_SUFFIX = "-light"


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
    """Name -> file of every shipped model."""
    return {p.stem: p for p in sorted(models_folder().glob("*.pth"))}


def resolve_model(spec: str | Path | None, light: bool = False) -> tuple[Path, str]:
    """A model file and the name used in output file names, for a path or a bundled model's name.

    ``None`` means the default bundled model. An existing file wins over a
    bundled name. ``light`` asks for the model's light variant instead.
    """
    spec = DEFAULT_MODEL if spec is None else spec
    path = Path(spec)
    models = bundled_models()
    if path.is_file():
        found = path, path.stem
    elif str(spec) in models:
        found = models[str(spec)], str(spec)
    else:
        hint = f" (bundled models: {', '.join(models)})" if models else ""
        raise FileProblem(path, f"model file not found{hint}")
    if not light or found[1].endswith(LIGHT_SUFFIX):
        return found
    variant = found[0].with_name(f"{found[0].stem}{LIGHT_SUFFIX}{found[0].suffix}")
    if not variant.is_file():
        raise FileProblem(variant, f"no light variant of {found[1]} (make one with: stst distill {spec} --dataset PHOTOS)")
    return variant, f"{found[1]}{LIGHT_SUFFIX}"

"""The style models and sample photo shipped with stst, and resolving ``--model`` values to files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import FileProblem

DEFAULT_MODEL = "starry_night"


def models_folder() -> Path:
    """Installed: the package ``stst.models``; run from a source checkout: the repository's ``models/``."""
    try:
        return Path(str(resources.files("stst.models")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "models"


def example_photo() -> Path:
    """The sample photo shipped in the package (Kodak kodim23, free to copy), for ``stst stylize --example``."""
    return Path(str(resources.files("stst"))) / "examples" / "kodim23.jpg"


def bundled_models() -> dict[str, Path]:
    """Name -> file of every shipped model."""
    return {p.stem: p for p in sorted(models_folder().glob("*.pth"))}


def resolve_model(spec: str | Path | None) -> tuple[Path, str]:
    """A model file and the name used in output file names, for a path or a bundled model's name.

    ``None`` means the default bundled model. An existing file wins over a bundled name.
    """
    spec = DEFAULT_MODEL if spec is None else spec
    path = Path(spec)
    if path.is_file():
        return path, path.stem
    models = bundled_models()
    if str(spec) in models:
        return models[str(spec)], str(spec)
    hint = f" (bundled models: {', '.join(models)})" if models else ""
    raise FileProblem(path, f"model file not found{hint}")

"""stst's cache folder, shared by the VGG weights, the engine measurements and the express lane's routes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .fileio import atomic_path


def stst_home() -> Path:
    """The stst cache folder: ``$STST_HOME`` or ``~/.cache/stst``."""
    return Path(os.environ.get("STST_HOME") or Path.home() / ".cache" / "stst")


def read_record(name: str) -> dict:
    """The JSON object ``name`` in the cache folder; {} when it is missing or unreadable (it is made again)."""
    try:
        known = json.loads((stst_home() / name).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def write_record(name: str, known: dict) -> None:
    """Write ``known`` as the JSON object ``name`` atomically; a cache that cannot be written only costs time."""
    try:
        with atomic_path(stst_home() / name) as tmp:
            tmp.write_text(json.dumps(known, indent=1))
    except OSError:
        pass

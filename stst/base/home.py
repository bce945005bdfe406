"""stst's cache folder, shared by the VGG weights, the engine caches (stst.infer.caches) and the trained styles."""

from __future__ import annotations

import os
from pathlib import Path


def stst_home() -> Path:
    """The stst cache folder: ``$STST_HOME`` or ``~/.cache/stst``."""
    return Path(os.environ.get("STST_HOME") or Path.home() / ".cache" / "stst")

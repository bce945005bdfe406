"""A client's fields (multipart form fields, or the live view's JSON settings) checked and turned into settings."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..infer.look import MAX_STROKE_SCALE, MIN_STROKE_SCALE, Look
from ..model.bundled import TIERS


class ApiError(Exception):
    """A request the server refuses: its HTTP status, a one-line reason, and for a busy server (503) the
    seconds after which to try again."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


def busy(waiting: int, what: str, queue: int, retry_after: float) -> ApiError:
    """The 503 for a request beyond the queue: ``waiting`` requests wait for ``what`` already."""
    retry = max(1, math.ceil(retry_after))
    return ApiError(503, f"busy: {waiting} waiting for {what} already (--queue {queue}); "
                         f"try again in {retry} s", retry_after=retry)


def field(form: Mapping, name: str, parse, default, check=lambda value: True, what: str = ""):
    """Form field ``name`` parsed by ``parse`` (absent or empty: ``default``); a bad value is a 400."""
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
        if check(value):
            return value
    except (TypeError, ValueError, AttributeError, KeyError):
        pass
    raise ApiError(400, f"field '{name}': '{str(raw)[:40]}' is not {what}")


def _flag(raw: str | bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw.lower() in ("1", "true", "on", "yes"):
        return True
    if raw.lower() in ("0", "false", "off", "no"):
        return False
    raise ValueError(raw)


def look_of(form: Mapping) -> Look:
    """The look controls of a request: ``strength``, ``stroke_scale``, ``preserve_colors``."""
    return Look(
        stroke_scale=field(form, "stroke_scale", float, 1.0, lambda v: MIN_STROKE_SCALE <= v <= MAX_STROKE_SCALE,
                           f"a number from {MIN_STROKE_SCALE} to {MAX_STROKE_SCALE}"),
        preserve_colors=field(form, "preserve_colors", _flag, False, what="true or false"),
        strength=field(form, "strength", float, 1.0, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1"),
    )


def tier_of(form: Mapping) -> str | None:
    """The ``tier`` asked for (None: the route's own choice); a name that is no tier is a 400, a tier the style
    lacks is the catalogue's 404."""
    return field(form, "tier", str, None, lambda v: v in TIERS, f"one of {', '.join(TIERS)}")

"""Option and input checks the detectors share (each raises InvalidArgumentError saying what it got)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceatlas.errors import InvalidArgumentError


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int when it is a whole number (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidArgumentError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(name: str, value: object, closed: bool = False) -> float:
    """``value`` as a float when it is a number (not a bool) in (0, 1), or (0, 1] when ``closed``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0.0 < float(value) < 1.0 or (closed and float(value) == 1.0)):  # type: ignore[arg-type]
        raise InvalidArgumentError(f"{name} must be a number in (0, 1{']' if closed else ')'}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_image_sequence(images: Sequence[np.ndarray]) -> None:
    """Refuse one image passed where detect_batch wants a sequence of them (it would iterate its rows)."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise InvalidArgumentError("detect_batch takes a sequence of images; use detect() for a single image")

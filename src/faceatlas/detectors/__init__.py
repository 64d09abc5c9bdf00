"""Face detectors behind a registry: ``create_detector("mtcnn")``, ``list_detectors()``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from faceatlas.registry import Registry
from faceatlas.types import Face


@runtime_checkable
class Detector(Protocol):
    """Finds faces: boxes, scores and five landmarks, for RGB uint8 images."""

    def load(self) -> Any: ...

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]: ...


# name -> "module:Class"; imported on demand so nothing heavy loads with the registry.
_REGISTRY = Registry("detector", {"mtcnn": "faceatlas.detectors.mtcnn:MTCNNDetector"})


def list_detectors() -> list[str]:
    return _REGISTRY.names()


def register_detector(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name`` (for plug-ins)."""
    _REGISTRY.register(name, target)


def create_detector(name: str = "mtcnn", **options: Any) -> Detector:
    return _REGISTRY.create(name, **options)

"""Face detectors behind a registry: ``create_detector("retinaface")``, ``list_detectors()``."""

from __future__ import annotations

import os
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
_REGISTRY = Registry(
    "detector",
    {
        "mtcnn": "faceatlas.detectors.mtcnn:MTCNNDetector",
        "retinaface": "faceatlas.detectors.retinaface:RetinaFaceDetector",
    },
)


def list_detectors() -> list[str]:
    return _REGISTRY.names()


def register_detector(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name`` (for plug-ins)."""
    _REGISTRY.register(name, target)


# RetinaFace-MobileNet-0.25 finds far more faces than MTCNN (WIDER Handshaking AP 0.87 vs 0.63,
# docs/BENCHMARKS.md) in half the time; MTCNN stays selectable as "mtcnn".
DEFAULT_DETECTOR = "retinaface"


def create_detector(name: str | os.PathLike[str] = DEFAULT_DETECTOR, **options: Any) -> Detector:
    """A registered detector by name, or a user's ONNX file / model-pack folder by path
    (SCRFD, YuNet, RetinaFace: told from the graph; see :mod:`faceatlas.models.byo`)."""
    from faceatlas.models.byo import looks_like_path

    if not (isinstance(name, str) and name in _REGISTRY.names()) and looks_like_path(name):
        from faceatlas.models.byo import detector_from_path

        return detector_from_path(name, **options)
    return _REGISTRY.create(str(name), **options)

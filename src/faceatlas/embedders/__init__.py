"""Face embedders behind a registry: ``create_embedder("dlib_resnet")``, ``list_embedders()``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from faceatlas.models.cards import ModelCard
from faceatlas.registry import Registry

if TYPE_CHECKING:  # align imports OpenCV: not needed to list or name embedders
    from faceatlas.align import AlignSpec


@runtime_checkable
class Embedder(Protocol):
    """Maps aligned face crops (uint8 N×S×S×3 RGB) to L2-normalised float32 vectors."""

    card: ModelCard
    input_size: int  # crops are input_size × input_size
    # an aligner's name for faceatlas.align.create_aligner, or the embedder's own template
    # (an ONNX ArcFace owns its 112-px 5-point template: it is not dlib's 150-px chip)
    default_aligner: str | AlignSpec

    @property
    def dim(self) -> int: ...

    def load(self) -> Any: ...

    def embed(self, crops: np.ndarray) -> np.ndarray: ...


_REGISTRY = Registry(
    "embedder",
    {
        "dlib_resnet": "faceatlas.embedders.dlib_resnet:DlibResNetEmbedder",
        "facenet": "faceatlas.embedders.facenet:FaceNetEmbedder",
        "dlib_resnet+facenet": "faceatlas.embedders.fused:FusedEmbedder",  # score fusion, one model
    },
)


def list_embedders() -> list[str]:
    return _REGISTRY.names()


def register_embedder(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name`` (for plug-ins)."""
    _REGISTRY.register(name, target)


DEFAULT_EMBEDDER = "dlib_resnet"


def create_embedder(name: str | os.PathLike[str] = DEFAULT_EMBEDDER, **options: Any) -> Embedder:
    """A registered embedder by name, or a user's ArcFace-style ONNX file / model-pack folder by
    path (told from the graph; see :mod:`faceatlas.models.byo`)."""
    from faceatlas.models.byo import looks_like_path

    if not (isinstance(name, str) and name in _REGISTRY.names()) and looks_like_path(name):
        from faceatlas.models.byo import embedder_from_path

        return embedder_from_path(name, **options)
    return _REGISTRY.create(str(name), **options)

"""Face embedders behind a registry: ``create_embedder("dlib_resnet")``, ``list_embedders()``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from faceatlas.models.cards import ModelCard
from faceatlas.registry import Registry


@runtime_checkable
class Embedder(Protocol):
    """Maps aligned face crops (uint8 N×S×S×3 RGB) to L2-normalised float32 vectors."""

    card: ModelCard
    input_size: int  # crops are input_size × input_size
    default_aligner: str  # name for faceatlas.align.create_aligner

    @property
    def dim(self) -> int: ...

    def load(self) -> Any: ...

    def embed(self, crops: np.ndarray) -> np.ndarray: ...


_REGISTRY = Registry("embedder", {"dlib_resnet": "faceatlas.embedders.dlib_resnet:DlibResNetEmbedder"})


def list_embedders() -> list[str]:
    return _REGISTRY.names()


def register_embedder(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name`` (for plug-ins)."""
    _REGISTRY.register(name, target)


def create_embedder(name: str = "dlib_resnet", **options: Any) -> Embedder:
    return _REGISTRY.create(name, **options)

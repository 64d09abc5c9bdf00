"""Face embedders behind a registry: ``create_embedder("dlib_resnet")``, ``list_embedders()``."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

from faceatlas.errors import UnknownModelError
from faceatlas.models.cards import ModelCard


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


_EMBEDDERS: dict[str, str] = {"dlib_resnet": "faceatlas.embedders.dlib_resnet:DlibResNetEmbedder"}


def list_embedders() -> list[str]:
    return sorted(_EMBEDDERS)


def register_embedder(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` under ``name`` (for plug-ins)."""
    _EMBEDDERS[name] = target


def create_embedder(name: str = "dlib_resnet", **options: Any) -> Embedder:
    try:
        target = _EMBEDDERS[name]
    except KeyError:
        raise UnknownModelError(
            f"no embedder named {name!r}; available: {', '.join(list_embedders())}"
        ) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(**options)

"""What faceatlas' ONNX embedders share: lazy session, crop checks, batching, flip averaging, L2 norm."""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceatlas.errors import InvalidArgumentError
from faceatlas.models._lazy_session import LazySession

if TYPE_CHECKING:
    import onnxruntime as ort


class SessionEmbedder(LazySession):
    """Base of the embedders that map aligned S×S RGB uint8 crops to vectors with one ONNX session.

    Subclasses set ``input_size`` and ``dim``, open their model in :meth:`_open` and run one batch
    of checked crops in :meth:`_run`. ``flip=True`` also embeds the mirrored crops and averages
    (twice the compute); ``batch_size`` crops go through the network per run.
    """

    input_size: int

    def __init__(
        self,
        flip: bool = False,
        batch_size: int = 32,
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
        self.flip = flip
        self.batch_size = batch_size
        self.providers = providers
        self.cache_dir = cache_dir
        self._init_session()

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def _run(self, session: ort.InferenceSession, crops: np.ndarray) -> np.ndarray:
        """The unnormalised vectors (n, dim) for at most ``batch_size`` checked crops (n, S, S, 3)."""

    def embed_raw(self, crops: np.ndarray) -> np.ndarray:
        """The network's own (unnormalised) vectors (N, dim) float32 for N aligned crops, uint8 (N, S, S, 3)."""
        crops = self._check(crops)
        session = self._loaded()
        out = np.empty((len(crops), self.dim), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            out[start : start + len(chunk)] = self._run(session, chunk)
        return out

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N, dim) float32 for N aligned crops; with ``flip``, the mean of
        the crops' and their mirror images' (each normalised first)."""
        crops = self._check(crops)
        if len(crops) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = normalise(self.embed_raw(crops))
        if self.flip:
            vectors = normalise(vectors + normalise(self.embed_raw(crops[:, :, ::-1])))
        return vectors

    def _check(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        size = self.input_size
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
            raise InvalidArgumentError(
                f"expected aligned crops as uint8 (N, {size}, {size}, 3) RGB, got {crops.dtype} "
                f"{crops.shape}; make them with an aligner (faceatlas.align.create_aligner)"
            )
        return np.ascontiguousarray(crops)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

"""dlib's 128-d face ResNet, converted to ONNX on first use and run with ONNX Runtime."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceatlas.errors import InvalidArgumentError
from faceatlas.models.cards import DLIB_RESNET_CARD, ModelCard

if TYPE_CHECKING:  # at run time ONNX Runtime is imported lazily, on first use
    import onnxruntime as ort


class DlibResNetEmbedder:
    """Maps aligned 150×150 RGB face crops to L2-normalised 128-d embeddings.

    ``flip=True`` also embeds the mirrored crop and averages the two (test-time augmentation):
    twice the compute, measured in docs/BENCHMARKS.md.
    """

    card: ModelCard = DLIB_RESNET_CARD
    input_size: int = 150
    default_aligner: str = "dlib_chip"  # the alignment the ResNet was trained with

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
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return 128

    def load(self) -> DlibResNetEmbedder:
        """Convert (once, into the cache) and open the model; later calls are free."""
        self._loaded()
        return self

    def _loaded(self) -> ort.InferenceSession:
        """The model's session, converted and opened on first use."""
        with self._lock:
            if self._session is None:
                from faceatlas.models.cache import cached_model
                from faceatlas.models.dlib_resnet import CONVERTER_VERSION, build_dlib_resnet_onnx
                from faceatlas.models.runtime import create_session

                (source,) = self.card.verify_source()
                path = cached_model(
                    "dlib_resnet_v1",
                    self.card.source[0].sha256,
                    CONVERTER_VERSION,
                    lambda: build_dlib_resnet_onnx(source),
                    self.cache_dir,
                )
                self._session = create_session(path, self.providers)
            return self._session

    def embed_raw(self, crops: np.ndarray) -> np.ndarray:
        """dlib's own (unnormalised) descriptors for N aligned crops, uint8 (N, 150, 150, 3)."""
        crops = self._check(crops)
        session = self._loaded()
        out = np.empty((len(crops), 128), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            out[start : start + len(chunk)] = session.run(["embedding"], {"image": chunk})[0]
        return out

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N, 128) float32 for N aligned crops."""
        crops = self._check(crops)
        if len(crops) == 0:
            return np.empty((0, 128), dtype=np.float32)
        vectors = self.embed_raw(crops)
        if self.flip:
            vectors = _normalise(vectors) + _normalise(self.embed_raw(crops[:, :, ::-1]))
        return _normalise(vectors)

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


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

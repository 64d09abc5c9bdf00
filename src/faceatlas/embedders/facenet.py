"""FaceNet (Inception-ResNet-v1, 128-d), from Keras weights installed once with
``faceatlas models install facenet`` and run with ONNX Runtime."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceatlas.align import AlignSpec, arcface_template
from faceatlas.errors import InvalidArgumentError
from faceatlas.models.cards import FACENET_CARD, ModelCard

if TYPE_CHECKING:  # at run time ONNX Runtime is imported lazily, on first use
    import onnxruntime as ort


class FaceNetEmbedder:
    """Maps aligned 160×160 RGB face crops to L2-normalised 128-d embeddings.

    The weights are not on disk after ``pip install``: ``faceatlas models install facenet``
    (:func:`faceatlas.models.install.install_model`) fetches and converts them once. Prewhitening
    happens inside the ONNX graph, so crops go in as plain uint8. ``flip=True`` also embeds the
    mirrored crop and averages the two (twice the compute).
    """

    card: ModelCard = FACENET_CARD
    input_size: int = 160
    # ArcFace's 5-point template scaled ×160/112: the best of the templates tried on LFW DevTest
    default_aligner: AlignSpec = arcface_template(160)

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

    def load(self) -> FaceNetEmbedder:
        """Open the installed model (:class:`ModelError` naming the install command if it is not)."""
        self._loaded()
        return self

    def _loaded(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                from faceatlas.models.install import installed_path
                from faceatlas.models.runtime import create_session

                self._session = create_session(installed_path("facenet", self.cache_dir), self.providers)
            return self._session

    def embed_raw(self, crops: np.ndarray) -> np.ndarray:
        """The network's unnormalised bottleneck (N, 128) for N aligned crops, uint8 (N, 160, 160, 3)."""
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
        vectors = _normalise(self.embed_raw(crops))
        if self.flip:
            vectors = vectors + _normalise(self.embed_raw(np.ascontiguousarray(crops[:, :, ::-1])))
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

"""An ArcFace-style embedder from a user's ONNX file (InsightFace's ``w600k_r50``, ``w600k_mbf``...).

The graph takes aligned square crops (N×3×S×S, or N×S×S×3) and returns N×D vectors; faceatlas
feeds it RGB ``(pixel - 127.5) / 127.5`` by default (InsightFace's recognition models get RGB:
``blobFromImage(..., swapRB=True)`` from BGR), overridable per model (sidecar) or per call
(``channel_order``/``mean``/``std``). Crops are aligned onto ArcFace's 5-point template scaled to
S (``default_aligner``, an :class:`~faceatlas.align.AlignSpec`). Float and INT8-quantised graphs
run alike. A graph with a fixed batch axis of 1 gets one crop a run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from faceatlas.align import AlignSpec, arcface_template
from faceatlas.embedders._session import SessionEmbedder
from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.models.byo import ByoModel, model_info
from faceatlas.models.cards import ModelCard
from faceatlas.models.onnx_graph import EmbedderGraph

if TYPE_CHECKING:
    import onnxruntime as ort


class OnnxEmbedder(SessionEmbedder):
    """Maps aligned S×S RGB crops to L2-normalised float32 vectors with a user's ONNX graph.

    Args:
        model_path: the ``.onnx`` file, or a model-pack folder holding one embedder.
        flip: also embed the mirrored crops and average (twice the compute).
        batch_size: crops per run (1 when the graph fixes its batch axis at 1).
        channel_order, mean, std: override the preprocessing (else the sidecar's, else ArcFace's).
        providers: onnxruntime execution providers (default: CUDA when available, then CPU).
        cache_dir: accepted like every embedder's; a user's file is run as it is, nothing is cached.
    """

    card: ModelCard
    input_size: int
    default_aligner: str | AlignSpec

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        flip: bool = False,
        batch_size: int = 32,
        channel_order: str | None = None,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        model = model_info(model_path, "embedding", channel_order=channel_order, mean=mean, std=std)
        graph = model.graph
        assert isinstance(graph, EmbedderGraph)
        if graph.input.dtype not in ("float32", "float16"):
            raise ModelError(
                f"{model.path.name} takes {graph.input.dtype} input; faceatlas feeds embedders float32 or float16"
            )
        self.model: ByoModel = model
        self.model_path: Path = model.path
        self.graph: EmbedderGraph = graph
        self.card = model.card
        self.preprocessing = model.preprocessing
        self.input_size = graph.size
        self.default_aligner = arcface_template(graph.size)  # the embedder owns its template
        fixed = graph.fixed_batch
        super().__init__(
            bool(flip), fixed if fixed is not None else batch_size, list(providers) if providers else None, cache_dir
        )

    def __repr__(self) -> str:
        return f"OnnxEmbedder({str(self.model_path)!r}, dim={self.dim}, input_size={self.input_size}, flip={self.flip})"

    @property
    def dim(self) -> int:
        return self.graph.dim

    def _open(self) -> ort.InferenceSession:
        from faceatlas.models.runtime import create_session

        return create_session(self.model_path, self.providers)

    def _run(self, session: ort.InferenceSession, crops: np.ndarray) -> np.ndarray:
        """The graph's own (unnormalised) vectors (n, dim) float32 for n checked crops."""
        chunk = self._input(crops)
        n = len(chunk)
        fixed = self.graph.fixed_batch
        if fixed is not None and n < fixed:  # a graph fixed at a batch of B: pad with blank crops
            chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), chunk.dtype)])
        try:
            (result,) = session.run([self.graph.output.name], {self.graph.input.name: chunk})
        except Exception as exc:
            raise ModelError(f"onnxruntime failed on {self.model_path.name} (input {chunk.shape}): {exc}") from exc
        result = np.asarray(result, dtype=np.float32).reshape(len(chunk), -1)
        if result.shape[1] != self.dim:
            raise ModelError(
                f"{self.model_path.name} returned {result.shape[1]}-d vectors, not the {self.dim} its graph declares"
            )
        return result[:n]

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N, dim) float32 for N aligned crops."""
        vectors = super().embed(crops)
        if not np.isfinite(vectors).all():
            raise ModelError(f"{self.model_path.name} returned non-finite values (NaN or inf) for some crops")
        return vectors

    def _input(self, crops: np.ndarray) -> np.ndarray:
        """uint8 RGB NHWC crops → the graph's channel order, normalised, in its layout and dtype."""
        x = crops[..., ::-1] if self.preprocessing.channel_order == "BGR" else crops
        mean, std = (np.asarray(v, np.float32) for v in (self.preprocessing.mean, self.preprocessing.std))
        x = (x.astype(np.float32) - mean) / std
        if self.graph.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x.astype(self.graph.input.dtype))

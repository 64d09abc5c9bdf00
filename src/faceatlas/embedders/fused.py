"""Several embedders as one model: score fusion that galleries, indexes and clustering can use.

Each part embeds the face from its own aligned crop (dlib's ResNet its 150-px chip, FaceNet its
160-px ArcFace-template crop); the parts' unit vectors are concatenated with weights √wᵢ
(Σ wᵢ = 1). The fused vector has unit norm, and the cosine of two fused vectors is
Σ wᵢ · cosᵢ: a weighted sum of the parts' similarities, computed by one dot product, so every
part of faceatlas that compares embeddings works on it unchanged. The fused model is calibrated
as one model (its own card and thresholds).

The default weights equalise the parts' impostor spread: wᵢ ∝ 1 / σᵢ, σᵢ being the standard
deviation of a part's different-person similarities (dlib 0.0348, FaceNet 0.1415 on full LFW),
which makes Σ wᵢ cosᵢ the sum of z-normalised scores. They are a normalisation, not fitted to
accuracy: on LFW View 2 the fusion scores 99.52 % against FaceNet's 99.20 % and dlib's 98.97 %
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from faceatlas.errors import InvalidArgumentError, UnknownModelError
from faceatlas.models.cards import ModelCard, get_card

if TYPE_CHECKING:
    from faceatlas.align import AlignSpec
    from faceatlas.embedders import Embedder

# 1 / σ of each part's impostor similarities on full LFW (RetinaFace + each part's alignment)
DLIB_FACENET_WEIGHTS = (1 / 0.0348, 1 / 0.1415)


class FusedEmbedder:
    """``FusedEmbedder(("dlib_resnet", "facenet"))``: the registered ``"dlib_resnet+facenet"``.

    The pipeline aligns each face once per part (:attr:`parts`, each with its own
    ``default_aligner``) and calls :meth:`combine`; :meth:`embed` takes crops only when every
    part shares one alignment.
    """

    def __init__(
        self,
        parts: Sequence[str | Embedder] = ("dlib_resnet", "facenet"),
        weights: Sequence[float] | None = None,
        card: ModelCard | None = None,
        flip: bool = False,
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from faceatlas.embedders import create_embedder

        if len(parts) < 2:
            raise InvalidArgumentError(f"a fused embedder needs at least two parts, got {len(parts)}")
        self.parts: list[Embedder] = [
            create_embedder(p, flip=flip, providers=providers, cache_dir=cache_dir) if isinstance(p, str) else p
            for p in parts
        ]
        names = tuple(p.card.name for p in self.parts)
        if weights is None:
            weights = DLIB_FACENET_WEIGHTS if names == ("dlib_resnet", "facenet") else [1.0] * len(self.parts)
        w = np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(self.parts),) or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise InvalidArgumentError(f"weights must be {len(self.parts)} positive numbers, got {list(weights)!r}")
        self.weights = tuple(float(x) for x in w / w.sum())
        self._scale = np.sqrt(np.asarray(self.weights, dtype=np.float32))
        self.card = card or _fused_card(self.parts, self.weights)
        self.flip = flip
        self.input_size = self.parts[0].input_size

    @property
    def default_aligner(self) -> str | AlignSpec:
        """The first part's alignment: the crops quality is measured on."""
        return self.parts[0].default_aligner

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    def load(self) -> FusedEmbedder:
        for part in self.parts:
            part.load()
        return self

    def combine(self, vectors: Sequence[np.ndarray]) -> np.ndarray:
        """The fused unit vectors from each part's (n, dimᵢ) unit vectors."""
        if len(vectors) != len(self.parts):
            raise InvalidArgumentError(f"expected {len(self.parts)} arrays of part embeddings, got {len(vectors)}")
        scaled = [np.asarray(v, dtype=np.float32) * s for v, s in zip(vectors, self._scale, strict=True)]
        out = np.concatenate(scaled, axis=1)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Only when every part takes the same crops; the pipeline uses :meth:`combine`."""
        aligners = {repr(p.default_aligner) for p in self.parts}
        if len(aligners) > 1:
            raise InvalidArgumentError(
                "the parts of this fused embedder align faces differently: embed through FaceAnalyzer "
                "(it aligns each face once per part), or call combine() with each part's embeddings"
            )
        return self.combine([p.embed(crops) for p in self.parts])


def _fused_card(parts: Sequence[Any], weights: Sequence[float]) -> ModelCard:
    """The registered card when it describes exactly these parts and weights, else an uncalibrated one."""
    name = "+".join(p.card.name for p in parts)
    try:
        card: ModelCard | None = get_card(name)
    except UnknownModelError:
        card = None
    if card is not None and card.version == _version(parts, weights):
        return card
    return ModelCard(
        name=name,
        version=_version(parts, weights),
        task="embedding",
        summary="score fusion of " + ", ".join(f"{p.card.name} (weight {w:.3f})" for p, w in zip(parts, weights)),
        source=(),
        license="; ".join(f"{p.card.name}: {p.card.license}" for p in parts),
        input_size=parts[0].card.input_size,
        preprocessing="each part's own alignment and preprocessing; unit vectors concatenated with weights √w",
        embedding_dim=sum(p.dim for p in parts),
        metric="cosine",
    )


def _version(parts: Sequence[Any], weights: Sequence[float]) -> str:
    """Names the parts' versions and the weights: a change makes another embedding space."""
    described = ",".join(f"{p.card.name}@{p.card.version}" for p in parts)
    return f"{described};w=" + "/".join(f"{w:.4f}" for w in weights)

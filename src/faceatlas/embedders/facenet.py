"""FaceNet (Inception-ResNet-v1, 128-d), from Keras weights installed once with
``faceatlas models install facenet`` and run with ONNX Runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from faceatlas.align import AlignSpec, arcface_template
from faceatlas.embedders._session import SessionEmbedder
from faceatlas.models.cards import FACENET_CARD, ModelCard

if TYPE_CHECKING:  # at run time ONNX Runtime is imported lazily, on first use
    import onnxruntime as ort


class FaceNetEmbedder(SessionEmbedder):
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

    @property
    def dim(self) -> int:
        return 128

    def _open(self) -> ort.InferenceSession:
        """The installed model's session (:class:`ModelError` naming the install command if it is not)."""
        from faceatlas.models.install import installed_path
        from faceatlas.models.runtime import create_session

        return create_session(installed_path("facenet", self.cache_dir), self.providers)

    def _run(self, session: ort.InferenceSession, crops: np.ndarray) -> np.ndarray:
        """The network's unnormalised bottleneck (n, 128); prewhitening is inside the graph."""
        return np.asarray(session.run(["embedding"], {"image": crops})[0])

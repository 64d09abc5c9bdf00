"""dlib's 128-d face ResNet, converted to ONNX on first use and run with ONNX Runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from faceatlas.embedders._session import SessionEmbedder
from faceatlas.models.cards import DLIB_RESNET_CARD, ModelCard

if TYPE_CHECKING:  # at run time ONNX Runtime is imported lazily, on first use
    import onnxruntime as ort


class DlibResNetEmbedder(SessionEmbedder):
    """Maps aligned 150×150 RGB face crops to L2-normalised 128-d embeddings.

    ``flip=True`` also embeds the mirrored crop and averages the two (test-time augmentation):
    twice the compute, measured in docs/BENCHMARKS.md. ``embed_raw`` gives dlib's own
    (unnormalised) descriptors.
    """

    card: ModelCard = DLIB_RESNET_CARD
    input_size: int = 150
    default_aligner: str = "dlib_chip"  # the alignment the ResNet was trained with

    @property
    def dim(self) -> int:
        return 128

    def _open(self) -> ort.InferenceSession:
        """The model's session, converted (once, into the cache) and opened; later loads are free."""
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
        return create_session(path, self.providers)

    def _run(self, session: ort.InferenceSession, crops: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(["embedding"], {"image": crops})[0])

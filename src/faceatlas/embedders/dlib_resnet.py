"""dlib's 128-d face ResNet, converted to ONNX on first use and run with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceatlas.embedders._session import SessionEmbedder
from faceatlas.errors import ModelError
from faceatlas.models.cards import DLIB_RESNET_CARD, ModelCard

if TYPE_CHECKING:  # at run time ONNX Runtime is imported lazily, on first use
    import onnxruntime as ort

    from faceatlas.align import AlignSpec


class DlibResNetEmbedder(SessionEmbedder):
    """Maps aligned 150×150 RGB face crops to L2-normalised 128-d embeddings.

    ``flip=True`` also embeds the mirrored crop and averages the two (test-time augmentation):
    twice the compute, measured in docs/BENCHMARKS.md. ``embed_raw`` gives dlib's own
    (unnormalised) descriptors. ``int8=True`` (None: ``$FACEATLAS_INT8``) runs the int8 model
    that ``faceatlas models quantize dlib_resnet`` made (``faceatlas.models.quantize``).
    """

    card: ModelCard = DLIB_RESNET_CARD
    input_size: int = 150
    default_aligner: str | AlignSpec = "dlib_chip"  # the alignment the ResNet was trained with

    def __init__(self, *args: Any, int8: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from faceatlas.models.quantize import int8_wanted

        self.int8 = int8_wanted() if int8 is None else int8

    @property
    def dim(self) -> int:
        return 128

    def source_key(self) -> tuple[str, str]:
        """(sha256 of dlib's weights, converter version): what the ONNX model is built from."""
        from faceatlas.models.dlib_resnet import CONVERTER_VERSION

        return self.card.source[0].sha256, CONVERTER_VERSION

    def model_path(self) -> Path:
        """The float32 ONNX model, converted into the cache on first use."""
        from faceatlas.models.cache import cached_model
        from faceatlas.models.dlib_resnet import build_dlib_resnet_onnx

        (source,) = self.card.verify_source()
        sha, version = self.source_key()
        return cached_model("dlib_resnet_v1", sha, version, lambda: build_dlib_resnet_onnx(source), self.cache_dir)

    def _open(self) -> ort.InferenceSession:
        """The model's session, converted (once, into the cache) and opened; later loads are free."""
        from faceatlas.models.runtime import create_session

        return create_session(self._int8_path() if self.int8 else self.model_path(), self.providers)

    def _int8_path(self) -> Path:
        from faceatlas.models.cache import cached_path
        from faceatlas.models.quantize import INT8_ENV, QUANTIZER_VERSION, int8_cache_name, int8_source_key

        path = cached_path(
            int8_cache_name("dlib_resnet_v1"), int8_source_key(*self.source_key()), QUANTIZER_VERSION, self.cache_dir
        )
        if path is None:
            raise ModelError(
                f"the int8 dlib_resnet model was asked for (int8=True or ${INT8_ENV}) but is not in the model cache, "
                "or is stale: make it with `faceatlas models quantize dlib_resnet --images FOLDER_OF_PHOTOS`"
            )
        return path

    def _run(self, session: ort.InferenceSession, crops: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(["embedding"], {"image": crops})[0])

"""INT8 models: ONNX Runtime static quantization, and where the results live in the model cache.

The job itself (find and align calibration faces, quantize, measure) is
``faceatlas.quantization.quantize_embedder``, behind ``faceatlas models quantize``:
``faceatlas models quantize dlib_resnet --images DIR`` aligns faces from DIR, feeds them through
the float32 model to set each activation's range (min-max, the ``QDQ`` format with per-channel
int8 weights and uint8 activations on every convolution and the final projection), writes the
int8 model into the model cache beside the float32 one and reports how closely it agrees with
float32 on faces held out from the calibration. ``$FACEATLAS_INT8=1`` (or
``DlibResNetEmbedder(int8=True)``) then runs it.

Measured on this project's 2-core machine (docs/BENCHMARKS.md, "INT8"): 1.9× the embedder's
faces/s on one thread; cosine with the float32 embedding 0.9995 on average. The embeddings stay
comparable with float32 ones (same model tag: a gallery may hold both), and the card's
thresholds are those of float32, whose accuracy cost is measured there, not assumed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from faceatlas.errors import ModelError

INT8_ENV = "FACEATLAS_INT8"
QUANTIZER_VERSION = "1"  # bump when the recipe below changes: cached int8 models are then stale
MIN_CALIBRATION_FACES = 20
HELD_OUT_FRACTION = 0.2  # of the faces found: agreement is measured on faces calibration never saw


def int8_wanted() -> bool:
    """Whether ``$FACEATLAS_INT8`` asks for int8 models (1/true/yes)."""
    return os.environ.get(INT8_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def int8_cache_name(fp32_name: str) -> str:
    return f"{fp32_name}.int8"


def int8_source_key(source_sha256: str, converter_version: str) -> str:
    """What an int8 model is derived from: the float32 model's weights and converter."""
    return f"{source_sha256}:{converter_version}"


def quantize_onnx(source: Path, calibration: np.ndarray, input_name: str = "image") -> bytes:
    """The int8 (QDQ) version of the float32 model ``source``, its ranges set on ``calibration``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{input_name: calibration[i : i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="faceatlas-int8-") as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(prepared))
            quantize_static(
                str(prepared),
                str(out),
                Batches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["Conv", "MatMul"],
            )
        except Exception as exc:
            raise ModelError(f"ONNX Runtime could not quantize {source}: {type(exc).__name__}: {exc}") from exc
        return out.read_bytes()

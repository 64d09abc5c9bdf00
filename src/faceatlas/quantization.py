"""``quantize_embedder``: an int8 embedder made from the user's photos, measured against float32.

See :mod:`faceatlas.models.quantize` for the recipe, the cache and the measured costs.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.errors import InvalidArgumentError
from faceatlas.models.quantize import (
    HELD_OUT_FRACTION,
    INT8_ENV,
    MIN_CALIBRATION_FACES,
    QUANTIZER_VERSION,
    int8_cache_name,
    int8_source_key,
    quantize_onnx,
)


@dataclasses.dataclass(frozen=True)
class QuantizeReport:
    """What ``quantize_embedder`` did and measured."""

    path: Path
    calibration_faces: int
    held_out_faces: int
    cosine_min: float
    cosine_mean: float
    faces_per_s_fp32: float
    faces_per_s_int8: float

    def __str__(self) -> str:
        return (
            f"int8 model written to {self.path}\n"
            f"calibrated on {self.calibration_faces} faces; on {self.held_out_faces} held-out faces its embeddings "
            f"agree with float32 at cosine {self.cosine_mean:.4f} on average ({self.cosine_min:.4f} at worst)\n"
            f"speed on one thread here: {self.faces_per_s_int8:.0f} faces/s against {self.faces_per_s_fp32:.0f} "
            f"({self.faces_per_s_int8 / max(self.faces_per_s_fp32, 1e-9):.2f}x)\n"
            f"use it with ${INT8_ENV}=1"
        )


def aligned_faces(images: Sequence[Path], analyzer: Any, limit: int) -> np.ndarray:
    """Up to ``limit`` aligned crops, the largest face of each image that has one."""
    from faceatlas.errors import InvalidImageError
    from faceatlas.image import load_image

    crops: list[np.ndarray] = []
    for path in images:
        if len(crops) >= limit:
            break
        try:
            image = load_image(path)
        except InvalidImageError:
            continue
        faces = sorted(analyzer.detect(image), key=lambda f: -f.box.area)
        if faces:
            crops.append(analyzer.aligner.align(image, faces[:1])[0])
    return np.stack(crops) if crops else np.zeros((0, 0, 0, 3), np.uint8)


def quantize_embedder(
    name: str,
    images: Sequence[Path],
    limit: int = 400,
    cache_dir: str | os.PathLike[str] | None = None,
) -> QuantizeReport:
    """Quantize the registered embedder ``name`` (only ``dlib_resnet`` so far), calibrated on the
    largest face of each of ``images`` (at most ``limit``); see the module docstring.
    ``cache_dir``: where the int8 model and the float32 one it is made from live."""
    from faceatlas.embedders.dlib_resnet import DlibResNetEmbedder
    from faceatlas.models.cache import cache_dir as model_cache
    from faceatlas.models.cache import cached_model
    from faceatlas.pipeline import FaceAnalyzer

    if name != "dlib_resnet":
        raise InvalidArgumentError(f"only dlib_resnet can be quantized so far, not {name!r}")
    fp32 = DlibResNetEmbedder(cache_dir=cache_dir, int8=False)
    analyzer = FaceAnalyzer(embedder=fp32)  # for its detector and aligner (from the default cache)
    crops = aligned_faces(images, analyzer, limit)
    if len(crops) < MIN_CALIBRATION_FACES:
        raise InvalidArgumentError(
            f"found {len(crops)} faces in the {len(images)} images given; calibration needs at least "
            f"{MIN_CALIBRATION_FACES} (a few hundred photos of varied people, light and pose are best)"
        )
    held = max(1, int(len(crops) * HELD_OUT_FRACTION))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(crops))
    calibration, held_out = crops[order[held:]], crops[order[:held]]
    source = fp32.model_path()
    target = int8_cache_name("dlib_resnet_v1")
    key = int8_source_key(*fp32.source_key())
    (model_cache(cache_dir) / f"{target}.onnx").unlink(missing_ok=True)  # a new calibration replaces the old
    path = cached_model(target, key, QUANTIZER_VERSION, lambda: quantize_onnx(source, calibration), cache_dir)
    int8 = DlibResNetEmbedder(cache_dir=cache_dir, int8=True)
    a, b = fp32.embed(held_out), int8.embed(held_out)
    cosine = np.sum(a * b, axis=1)
    return QuantizeReport(
        path,
        len(calibration),
        len(held_out),
        float(cosine.min()),
        float(cosine.mean()),
        _faces_per_s(source, held_out),
        _faces_per_s(path, held_out),
    )


def _faces_per_s(model: Path, crops: np.ndarray) -> float:
    """One-thread throughput of ``model`` on batches of up to 32 crops (best of three runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    batch = np.resize(crops, (32, *crops.shape[1:]))
    session.run(None, {"image": batch})
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        session.run(None, {"image": batch})
        best = min(best, time.perf_counter() - started)
    return len(batch) / best

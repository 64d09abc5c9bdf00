"""A learned quality score: how useful a face is *for this embedder* (CR-FIQA's idea).

The heuristic of ``faceatlas.quality`` names physical problems (small, blurred, turned, dark) but
does not know what the embedder copes with. A small regressor, trained offline per embedder card
(``benchmarks/train_quality.py``), predicts a face's relative classifiability: the similarity to its
own identity's centre over that to the nearest other identity's centre, on labelled faces. It sees
only what the pipeline has or gets cheaply: the heuristic's components and the raw measurements behind
them, the pose, the detector's score, and the agreement between the face's embedding and its mirror
image's (one more embedding of the flipped crop: a face the embedder reads the same both ways is one it
reads reliably). The embedding itself was tried as an input and left out: on LFW it overfits the
training identities and predicted errors worse (docs/BENCHMARKS.md, "Quality that predicts errors").

Its raw output is mapped onto the heuristic's scale by quantiles on the training faces (a face the
model ranks at the 30th percentile gets the heuristic's 30th-percentile score): the order is the
model's, while the population's spread stays the heuristic's, so the floors that gate enrolment and
clustering (``min_quality`` 0.3) keep about as many faces as before.

The model is a one-hidden-layer perceptron stored as an ``.npz`` of numpy arrays in the package
(``faceatlas/models/quality/<card>.npz``), evaluated with numpy (well under 0.1 ms a face).

A model file that is missing, corrupt or made for another embedder raises ``QualityModelError``
(``FaceAnalyzer(quality=PATH)``). An embedder without a shipped model keeps the heuristic, and every
face's ``Quality.method`` says "heuristic", never silently.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceatlas.errors import FaceAtlasError
from faceatlas.quality import face_region, laplacian_variance
from faceatlas.types import Landmarks, Pose, Quality

FORMAT = "faceatlas-quality-mlp/1"
MODELS = Path(__file__).parent / "models" / "quality"
#: the measurements the regressor may see, in order (besides the face/mirror cosine)
MEASUREMENTS = (
    "size", "sharpness", "pose", "exposure", "confidence", "heuristic",
    "log_iod", "log_laplacian", "abs_yaw", "abs_pitch", "abs_roll", "brightness", "contrast",
)  # fmt: skip
MIRROR = "mirror"  # cosine of the face's embedding and its mirror image's


class QualityModelError(FaceAtlasError):
    """A quality model that is missing, unreadable, or not made for the embedder in use."""


def measurements(grey_crop: np.ndarray, landmarks: Landmarks, pose: Pose, quality: Quality) -> np.ndarray:
    """The measurement vector (``MEASUREMENTS``) of one face, from what the pipeline already holds."""
    region = face_region(grey_crop).astype(np.float64)
    iod = float(np.linalg.norm(landmarks.points[1] - landmarks.points[0]))
    laplacian = laplacian_variance(grey_crop)
    return np.array(
        [
            quality.size, quality.sharpness, quality.pose, quality.exposure, quality.confidence, quality.score,
            math.log1p(iod), math.log1p(laplacian), abs(pose.yaw) / 90.0, abs(pose.pitch) / 90.0,
            abs(pose.roll) / 90.0, region.mean() / 255.0, region.std() / 64.0,
        ],
        dtype=np.float32,
    )  # fmt: skip


@dataclass(frozen=True)
class QualityModel:
    """A trained regressor for one embedder card: ``score(features)`` in [0, 1]."""

    embedder: str  # the card's name-version the model was trained for
    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float
    ranks: np.ndarray  # quantiles of the raw output on the training faces ...
    levels: np.ndarray  # ... and the heuristic's scores at the same quantiles: raw -> [0, 1]
    trained_on: str = ""
    inputs: tuple[str, ...] = (*MEASUREMENTS, MIRROR)

    @property
    def method(self) -> str:
        return f"learned:{self.embedder}"

    def raw(self, features: np.ndarray) -> np.ndarray:
        x = (np.atleast_2d(np.asarray(features, dtype=np.float32)) - self.mean) / self.scale
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        return hidden @ self.w2 + self.b2

    def score(self, features: np.ndarray) -> np.ndarray:
        """[0, 1] scores of (n, d) feature rows, on the heuristic's scale (see the module doc)."""
        return np.interp(self.raw(features), self.ranks, self.levels).astype(np.float32)

    def save(self, path: str | os.PathLike[str]) -> None:
        np.savez_compressed(
            path, format=np.array(FORMAT), embedder=np.array(self.embedder), trained_on=np.array(self.trained_on),
            mean=self.mean, scale=self.scale, w1=self.w1, b1=self.b1, w2=self.w2, b2=np.array(self.b2),
            ranks=self.ranks, levels=self.levels, inputs=np.array(self.inputs),
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str], embedder: str | None = None) -> QualityModel:
        """The model at ``path``; ``embedder`` (card name-version), if given, must be the one it was made for."""
        target = Path(path)
        if not target.is_file():
            raise QualityModelError(f"no quality model at {target}")
        try:
            with np.load(target, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise QualityModelError(f"{target} is a {data['format']!s} file, not a {FORMAT} quality model")
                model = cls(
                    embedder=str(data["embedder"]), mean=data["mean"], scale=data["scale"], w1=data["w1"],
                    b1=data["b1"], w2=data["w2"], b2=float(data["b2"]), ranks=data["ranks"], levels=data["levels"],
                    trained_on=str(data["trained_on"]), inputs=tuple(str(v) for v in data["inputs"].tolist()),
                )  # fmt: skip
        except QualityModelError:
            raise
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise QualityModelError(f"the quality model {target} is unreadable ({exc})") from exc
        d = model.mean.shape[0]
        shapes_ok = model.scale.shape == (d,) and model.w1.shape[0] == d and model.w2.shape == (model.w1.shape[1],)
        known = set(MEASUREMENTS) | {MIRROR}
        if not shapes_ok or not len(model.ranks) or model.ranks.shape != model.levels.shape or len(model.inputs) != d:
            raise QualityModelError(f"the quality model {target} is corrupt (inconsistent array shapes)")
        if not set(model.inputs) <= known:
            raise QualityModelError(f"the quality model {target} needs inputs this version lacks: {model.inputs}")
        if embedder is not None and model.embedder != embedder:
            raise QualityModelError(
                f"the quality model {target} was trained for the embedder {model.embedder}, not {embedder}"
            )
        return model

    @property
    def needs_mirror(self) -> bool:
        return MIRROR in self.inputs

    def features(self, measured: np.ndarray, mirror: np.ndarray | None = None) -> np.ndarray:
        """The model's input rows from ``measurements`` rows and the face/mirror cosines."""
        columns = {name: np.atleast_2d(measured)[:, i] for i, name in enumerate(MEASUREMENTS)}
        if mirror is not None:
            columns[MIRROR] = np.asarray(mirror, dtype=np.float32).reshape(-1)
        missing = [name for name in self.inputs if name not in columns]
        if missing:
            raise QualityModelError(f"the quality model for {self.embedder} needs {missing}")
        return np.stack([columns[name] for name in self.inputs], axis=1).astype(np.float32)


def card_key(card: object) -> str:
    """A card's ``name-version``, the key quality models are stored and checked under."""
    return f"{getattr(card, 'name', 'unknown')}-{getattr(card, 'version', '0')}"


def model_file(key: str) -> str:
    """The file name a model for the card ``key`` ships under: a fused card's version holds ``/``
    and ``;`` (its parts and weights), which become ``_``; the key inside the file stays exact."""
    return re.sub(r"[^A-Za-z0-9@.,+=-]", "_", key) + ".npz"


def shipped_model(card: object) -> QualityModel | None:
    """The model shipped for ``card`` (None: none ships for it); QualityModelError if it is unusable."""
    key = card_key(card)
    path = MODELS / model_file(key)
    return QualityModel.load(path, embedder=key) if path.is_file() else None


def with_learned(quality: Quality, learned: float, method: str) -> Quality:
    """``quality`` scored by a learned model: the heuristic's score is kept as ``heuristic``."""
    from dataclasses import replace

    return replace(quality, score=float(learned), heuristic=quality.score, method=method)

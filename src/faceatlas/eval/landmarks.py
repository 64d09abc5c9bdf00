"""Landmark and head-pose accuracy: dataset readers, matching to detections, NME, CED and pose MAE.

Pure data and metrics: the caller runs the detector and passes its faces in.

Formats read
------------
* **MTFL** (``training.txt`` / ``testing.txt``): one face per line,
  ``path x1 x2 x3 x4 x5 y1 y2 y3 y4 y5 [gender smile glasses pose]``; paths use Windows
  backslashes (``lfw_5590\\Aaron_Eckhart_0001.jpg``) and are relative to the dataset folder.
  The points are the left eye, right eye, nose, left and right mouth corner *in image terms*
  (x1 < x2 on a frontal face), i.e. already faceatlas' ``mtcnn5`` order. The attributes
  (1/2 gender male/female, smile yes/no, glasses yes/no; pose 1..5 left profile → right
  profile) are kept in :attr:`LandmarkSample.attributes`. MTFL has no face boxes.
* **dlib imglab XML**: ``<images><image file=..><box top left width height [ignore='1']>
  <part name='00' x y/>…``, 68 points in the iBUG 300-W numbering, image paths relative to
  the XML file. Reduced to five points: eye centres = mean of points 36–41 (the eye on the
  image's left) and 42–47, nose tip = 30, mouth corners = 48 and 54. Boxes marked ignored or
  without all 68 parts are skipped and counted.
* **AFLW2000-3D**: ``imageNNNNN.jpg`` + ``imageNNNNN.mat`` with ``Pose_Para`` (1×7: pitch,
  yaw, roll in radians, then tx, ty, tz, scale) and ``pt3d_68`` (3×68; rows x, y, z). See
  :func:`aflw_to_faceatlas` for the angle conventions.

Definitions
-----------
* **NME** of a face: the mean over the five points of the Euclidean distance between predicted
  and true point, divided by the true distance between the two eye centres (points 0 and 1;
  300-W would call this the inter-pupil distance — for five-point sets the eye centres are
  the only eye points there are). A value of 0.1 means "off by 10% of the eye spacing".
* **Missed face**: a ground-truth face that no detected face matches. It has no NME; it counts
  as a failure and sits at NME = ∞ in the CED (so the CED tops out at 1 − missed share).
  Mean / median NME and the per-landmark errors are over matched faces only.
* **Failure rate**: (matched faces with NME > threshold + missed faces) / all faces;
  threshold 0.1 by default.
* **CED**: ``CED(x)`` = share of all faces with NME ≤ x. **AUC@T** = (1/T) ∫₀ᵀ CED(x) dx,
  integrated exactly (the CED is a step function, so the integral is mean(max(0, T − eᵢ))),
  normalised to [0, 1]: 1 means every face is perfect, 0 that none is within T.
* **Pose errors**: absolute angle differences in degrees, wrapped to [0°, 180°]; MAE per angle,
  their mean, the same by |true yaw| bucket (0–30°, 30–60°, ≥ 60°), and the geodesic error
  (the angle of the rotation between truth and prediction), which does not depend on an
  Euler-angle convention. A face with no prediction is missed: counted, not averaged.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceatlas.errors import FaceAtlasError, InvalidArgumentError
from faceatlas.types import LANDMARK_NAMES, Box, Pose

FAILURE_THRESHOLD = 0.1
MIN_IOU = 0.3
MAX_EYE_SHIFT = 1.0  # in inter-ocular distances, for samples without a box
AFLW_MAX_ANGLE = 99.0  # degrees; the usual AFLW2000 protocol drops faces beyond this
YAW_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("0-30", 0.0, 30.0),
    ("30-60", 30.0, 60.0),
    ("60-90+", 60.0, math.inf),
)

# iBUG 300-W 68-point indices behind each of the five mtcnn5 points
IBUG_LEFT_EYE = tuple(range(36, 42))  # the subject's right eye: on the image's left
IBUG_RIGHT_EYE = tuple(range(42, 48))
IBUG_NOSE_TIP = 30
IBUG_MOUTH_LEFT = 48
IBUG_MOUTH_RIGHT = 54


# --------------------------------------------------------------------------------------------
# Samples and readers


@dataclass(frozen=True, eq=False)
class LandmarkSample:
    """One annotated face: its image, five points in ``mtcnn5`` order, and its box if known."""

    image: Path
    points: np.ndarray  # (5, 2) float64
    box: np.ndarray | None = None  # (4,) float64 xyxy
    attributes: dict[str, int] = field(default_factory=dict)  # e.g. MTFL's gender/smile/glasses/pose


@dataclass(frozen=True, eq=False)
class LandmarkSet:
    """What a reader found: the samples (iterate it like a list) and what it skipped."""

    samples: tuple[LandmarkSample, ...]
    skipped: int = 0
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[LandmarkSample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> LandmarkSample:
        return self.samples[index]


def ibug68_to_mtcnn5(points68: np.ndarray) -> np.ndarray:
    """Five ``mtcnn5`` points from 68 iBUG points ((68, 2) or more columns; x, y first)."""
    p = np.asarray(points68, dtype=np.float64)[:, :2]
    return np.stack(
        [
            p[list(IBUG_LEFT_EYE)].mean(axis=0),
            p[list(IBUG_RIGHT_EYE)].mean(axis=0),
            p[IBUG_NOSE_TIP],
            p[IBUG_MOUTH_LEFT],
            p[IBUG_MOUTH_RIGHT],
        ]
    )


MTFL_ATTRIBUTES = ("gender", "smile", "glasses", "pose")


def read_mtfl(file: str | Path, images_dir: str | Path) -> LandmarkSet:
    """Read an MTFL annotation file (see the module docstring); paths join ``images_dir``."""
    file, root = Path(file), Path(images_dir)
    samples = []
    for line_no, line in enumerate(_read_text(file).splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        where = f"{file}: line {line_no}"
        if len(parts) < 11:
            raise FaceAtlasError(f"{where} has {len(parts)} fields; expected 'path x1..x5 y1..y5 [attributes]'")
        numbers = _floats(parts[1:], where)
        points = np.stack([numbers[0:5], numbers[5:10]], axis=1)
        extra = numbers[10:]
        attributes = {name: int(v) for name, v in zip(MTFL_ATTRIBUTES, extra, strict=False)}
        samples.append(LandmarkSample(root / parts[0].replace("\\", "/"), points, None, attributes))
    return LandmarkSet(tuple(samples))


def read_dlib_xml(xml_file: str | Path) -> LandmarkSet:
    """Read a dlib imglab XML file with 68-point shapes (see the module docstring)."""
    xml_file = Path(xml_file)
    try:
        root = ET.fromstring(_read_bytes(xml_file))
    except ET.ParseError as exc:
        raise FaceAtlasError(f"{xml_file}: not valid XML ({exc})") from None
    images = root.findall(".//images/image") or root.findall(".//image")
    samples, ignored, incomplete = [], 0, 0
    for n_image, image in enumerate(images, 1):
        name = image.get("file")
        if not name:
            raise FaceAtlasError(f"{xml_file}: <image> number {n_image} has no 'file' attribute")
        path = xml_file.parent / name.replace("\\", "/")
        for n_box, box in enumerate(image.findall("box"), 1):
            where = f"{xml_file}: image {name!r}, box {n_box}"
            if box.get("ignore", "0").strip() not in ("", "0"):
                ignored += 1
                continue
            xyxy = _dlib_box(box, where)
            points = _dlib_parts(box, where)
            if points is None:
                incomplete += 1
            else:
                samples.append(LandmarkSample(path, ibug68_to_mtcnn5(points), xyxy))
    # one summary line, not a line per box: a detection-only file would print hundreds
    notes = [
        f"{xml_file.name}: {k} box(es) {why}, skipped"
        for k, why in ((ignored, "marked ignore"), (incomplete, "without all 68 parts"))
        if k
    ]
    return LandmarkSet(tuple(samples), ignored + incomplete, tuple(notes))


def _dlib_box(box: ET.Element, where: str) -> np.ndarray:
    try:
        top, left, width, height = (float(box.attrib[k]) for k in ("top", "left", "width", "height"))
    except KeyError as exc:
        raise FaceAtlasError(f"{where}: <box> lacks the attribute {exc.args[0]!r}") from None
    except ValueError:
        raise FaceAtlasError(f"{where}: <box> has a non-numeric coordinate: {dict(box.attrib)}") from None
    return np.array([left, top, left + width, top + height])


# dlib writes parts it could not place at this coordinate (OBJECT_PART_NOT_PRESENT)
_DLIB_PART_NOT_PRESENT = 0x7FFFFFFF


def _dlib_parts(box: ET.Element, where: str) -> np.ndarray | None:
    """The 68 parts as (68, 2), or None when some are absent."""
    points: dict[int, tuple[float, float]] = {}
    for part in box.findall("part"):
        try:
            index, x, y = int(part.attrib["name"]), float(part.attrib["x"]), float(part.attrib["y"])
        except (KeyError, ValueError):
            raise FaceAtlasError(f"{where}: malformed <part> {dict(part.attrib)}") from None
        if max(abs(x), abs(y)) < _DLIB_PART_NOT_PRESENT:
            points[index] = (x, y)
    if any(i not in points for i in range(68)):
        return None
    return np.array([points[i] for i in range(68)], dtype=np.float64)


def _read_text(file: Path) -> str:
    return _read_bytes(file).decode("utf-8", errors="replace")


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise FaceAtlasError(f"cannot read {file}: {exc.strerror or exc}") from None


def _floats(tokens: Sequence[str], where: str) -> np.ndarray:
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise FaceAtlasError(f"{where}: expected numbers after the path, got {' '.join(tokens)!r}") from None
    if not np.isfinite(values).all():
        raise FaceAtlasError(f"{where}: a coordinate is not finite: {' '.join(tokens)!r}")
    return values


# --------------------------------------------------------------------------------------------
# NME and matching


def landmark_nme(pred: np.ndarray, gt: np.ndarray) -> np.ndarray | float:
    """Per-face NME: mean point error / true eye-centre distance (see the module docstring).

    ``pred`` and ``gt`` are (5, 2) for one face (returns a float) or (N, 5, 2) (returns (N,)).
    """
    errors = point_errors(pred, gt).mean(axis=-1)
    return float(errors) if errors.ndim == 0 else errors


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Each point's error divided by the true eye-centre distance: (..., 5)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-2:] != (5, 2):
        raise InvalidArgumentError(f"need matching (..., 5, 2) arrays, got {pred.shape} and {gt.shape}")
    iod = np.linalg.norm(gt[..., 0, :] - gt[..., 1, :], axis=-1)
    if np.any(iod <= 0):
        raise FaceAtlasError("a ground-truth face has both eyes at the same point: its NME is undefined")
    return np.linalg.norm(pred - gt, axis=-1) / iod[..., None]


Prediction = tuple[np.ndarray, np.ndarray]  # (box xyxy (4,), points (5, 2))


@dataclass(frozen=True, eq=False)
class LandmarkMatches:
    """Ground-truth faces paired with detected ones; ``pred`` rows of missed faces are NaN."""

    samples: tuple[LandmarkSample, ...]
    gt: np.ndarray  # (N, 5, 2)
    pred: np.ndarray  # (N, 5, 2), NaN where missed
    missed: np.ndarray  # (N,) bool
    notes: tuple[str, ...] = ()

    def report(self, threshold: float = FAILURE_THRESHOLD) -> LandmarkReport:
        return landmark_report(self.gt, self.pred, missed=self.missed, threshold=threshold, notes=self.notes)


def match_predictions(
    samples: Sequence[LandmarkSample] | LandmarkSet,
    predictions: Mapping[Path | str, Sequence[Prediction] | None],
    min_iou: float = MIN_IOU,
    max_eye_shift: float = MAX_EYE_SHIFT,
) -> LandmarkMatches:
    """Pair each ground-truth face with at most one detected face in the same image.

    ``predictions`` maps an image path to its detected faces, each ``(box xyxy, points (5, 2))``,
    or to None when the image could not be read. Matching is one-to-one and greedy: the pair
    with the highest IoU (gt box vs detected box) is taken first, and so on, down to
    ``min_iou``. A sample without a box instead takes the detection whose eye midpoint is
    nearest to its own, within ``max_eye_shift`` true eye distances. Ground-truth faces left
    over — and all faces of an unreadable image, or of an image absent from ``predictions`` —
    are missed.
    """
    samples = tuple(samples)
    preds = {Path(k): v for k, v in predictions.items()}
    gt = np.array([s.points for s in samples], dtype=np.float64).reshape(-1, 5, 2)
    out = np.full_like(gt, np.nan)
    by_image: dict[Path, list[int]] = {}
    for i, s in enumerate(samples):
        by_image.setdefault(Path(s.image), []).append(i)
    notes = []
    absent = [image for image in by_image if image not in preds]
    if absent:
        notes.append(f"{len(absent)} image(s) had no prediction entry; their faces count as missed")
    unreadable = [image for image in by_image if image in preds and preds[image] is None]
    if unreadable:
        notes.append(f"{len(unreadable)} image(s) could not be read; their faces count as missed")
    for image, indices in by_image.items():
        faces = preds.get(image)
        if not faces:
            continue
        boxes = [np.asarray(b, dtype=np.float64).reshape(4) for b, _ in faces]
        points = [np.asarray(p, dtype=np.float64).reshape(5, 2) for _, p in faces]
        for gi, pi in _assign([samples[i] for i in indices], boxes, points, min_iou, max_eye_shift):
            out[indices[gi]] = points[pi]
    missed = np.asarray(np.isnan(out).any(axis=(1, 2)))  # a 1-d mask (numpy types any() as maybe a scalar)
    if missed.any():
        notes.append(f"{int(missed.sum())} of {len(samples)} faces missed (no detection matched): failures")
    return LandmarkMatches(samples, gt, out, missed, tuple(notes))


def _assign(
    samples: list[LandmarkSample], boxes: list[np.ndarray], points: list[np.ndarray], min_iou: float, max_shift: float
) -> list[tuple[int, int]]:
    """Greedy one-to-one matching inside one image: IoU pairs first (best first), then eye distance."""
    candidates = []
    for gi, s in enumerate(samples):
        for pi in range(len(boxes)):
            if s.box is not None:
                iou = Box(*s.box).iou(Box(*boxes[pi]))
                if iou >= min_iou and iou > 0:
                    candidates.append((0, -iou, gi, pi))
            else:
                iod = float(np.linalg.norm(s.points[0] - s.points[1]))
                shift = float(np.linalg.norm(points[pi][:2].mean(axis=0) - s.points[:2].mean(axis=0)))
                if iod > 0 and shift <= max_shift * iod:
                    candidates.append((1, shift / iod, gi, pi))
    taken_gt, taken_pred, pairs = set(), set(), []
    for _, _, gi, pi in sorted(candidates):
        if gi not in taken_gt and pi not in taken_pred:
            taken_gt.add(gi)
            taken_pred.add(pi)
            pairs.append((gi, pi))
    return pairs


# --------------------------------------------------------------------------------------------
# Landmark report


@dataclass
class LandmarkReport:
    faces: int
    matched: int
    missed: int
    nme_mean: float | None  # over matched faces
    nme_median: float | None
    threshold: float
    failure_rate: float  # (NME > threshold or missed) / faces
    auc: float  # (1/T) ∫₀ᵀ CED, T = threshold, over all faces
    ced_x: list[float]
    ced_y: list[float]
    per_landmark: dict[str, float | None]  # mean NME of each point, matched faces
    notes: list[str] = field(default_factory=list)
    nme: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # per face, inf where missed

    def to_dict(self) -> dict:
        return {
            "faces": self.faces,
            "matched": self.matched,
            "missed": self.missed,
            "nme_mean": self.nme_mean,
            "nme_median": self.nme_median,
            "failure_threshold": self.threshold,
            "failure_rate": self.failure_rate,
            "auc": self.auc,  # (1/T) ∫₀ᵀ CED, T = failure_threshold
            "per_landmark_nme": dict(self.per_landmark),
            "ced": {"nme": list(self.ced_x), "fraction": list(self.ced_y)},
            "normalisation": "mean point error / ground-truth eye-centre distance",
            "notes": list(self.notes),
        }

    def table(self) -> str:
        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{100 * v:.2f}%"

        rows = [
            ("faces", f"{self.faces} (matched {self.matched}, missed {self.missed} — missed count as failures)"),
            ("NME mean / median", f"{pct(self.nme_mean)} / {pct(self.nme_median)} (of eye-centre distance)"),
            (f"failure rate (NME > {self.threshold:g})", pct(self.failure_rate)),
            (f"AUC@{self.threshold:g}", f"{self.auc:.4f}"),
            ("per landmark", "  ".join(f"{k} {pct(v)}" for k, v in self.per_landmark.items())),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join([f"{name:<{width}}  {value}" for name, value in rows] + [f"note: {n}" for n in self.notes])


def landmark_report(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    missed: np.ndarray | None = None,
    threshold: float = FAILURE_THRESHOLD,
    ced_points: int = 101,
    notes: Sequence[str] = (),
) -> LandmarkReport:
    """NME statistics of (N, 5, 2) predictions against truth; rows flagged ``missed`` (or NaN) are misses."""
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape or gt.shape[1:] != (5, 2):
        raise InvalidArgumentError(f"need matching (N, 5, 2) arrays, got {gt.shape} and {pred.shape}")
    miss = np.isnan(pred).any(axis=(1, 2))
    if missed is not None:
        miss |= np.asarray(missed, dtype=bool)
    per_point = np.full((len(gt), 5), np.inf)
    if (~miss).any():
        per_point[~miss] = point_errors(pred[~miss], gt[~miss])
    nme = per_point.mean(axis=1)
    ok = nme[~miss]
    ced_x = np.linspace(0.0, threshold, ced_points)
    n = max(len(nme), 1)
    return LandmarkReport(
        faces=len(nme),
        matched=int((~miss).sum()),
        missed=int(miss.sum()),
        nme_mean=float(ok.mean()) if ok.size else None,
        nme_median=float(np.median(ok)) if ok.size else None,
        threshold=threshold,
        failure_rate=float((nme > threshold).sum() / n),
        auc=ced_auc(nme, threshold),
        ced_x=[float(x) for x in ced_x],
        ced_y=[float((nme <= x).sum() / n) for x in ced_x],
        per_landmark={
            name: (float(per_point[~miss, k].mean()) if ok.size else None) for k, name in enumerate(LANDMARK_NAMES)
        },
        notes=list(notes),
        nme=nme,
    )


def ced_auc(nme: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """(1/T) ∫₀ᵀ CED(x) dx, exactly: the CED steps up by 1/N at each error eᵢ, so the area is mean(max(0, T − eᵢ))."""
    nme = np.asarray(nme, dtype=np.float64)
    if nme.size == 0:
        return 0.0
    return float(np.clip(threshold - nme, 0.0, None).mean() / threshold)


def plot_ced(report: LandmarkReport | Mapping[str, LandmarkReport], path: str | Path, title: str = "") -> None:
    """Cumulative error distribution(s): share of faces with NME ≤ x, one line per report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = {"": report} if isinstance(report, LandmarkReport) else dict(report)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, r in reports.items():
        label = f"{name} " if name else ""
        ax.step(r.ced_x, r.ced_y, where="post", label=f"{label}AUC@{r.threshold:g} {r.auc:.3f}, missed {r.missed}")
    ax.set(xlabel="NME (fraction of eye-centre distance)", ylabel="fraction of faces", ylim=(0, 1.01))
    ax.set_title(title or "cumulative error distribution")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# AFLW2000-3D head pose
#
# AFLW2000-3D was fitted with 3DDFA, whose code builds R = Rx(pitch)·Ry(yaw)·Rz(roll) with
#   Rx = [1 0 0; 0 c s; 0 -s c], Ry = [c 0 -s; 0 1 0; s 0 c], Rz = [c s 0; -s c 0; 0 0 1]
# acting on a face model with x to the image's right, y up and z toward the camera, and
# projects with y flipped (image_y = height + 1 - y). Hence, one angle at a time:
#   yaw > 0   moves the nose (0,0,1) to x = -sin(yaw) < 0: the face turns to the image's LEFT.
#             Hopenet's/6DRepNet's draw_axis agree: their face-direction axis is drawn at
#             x = sin(-yaw). faceatlas' yaw is positive toward the image's right → negated.
#   pitch > 0 moves the nose to model y = +sin(pitch), i.e. up in the image: looking up.
#             Hopenet draws it at y = -sin(pitch) (image up). faceatlas: looking up → kept.
#   roll > 0  moves the image-right eye (1,0,0) to model y = -sin(roll), i.e. down in the
#             image: a clockwise tilt. Hopenet's x axis goes down (y = +sin(roll)).
#             faceatlas: clockwise → kept.
# Mirroring an image negates yaw and roll (as Hopenet's flip augmentation does) under both.
# The orders of the Euler angles differ, though: AFLW composes X·Y·Z, faceatlas Z·Y·X
# (faceatlas.pose.rotation_to_pose). They agree one angle at a time but not when combined: at
# yaw 60°, pitch 20°, roll 10° the same rotation reads roll −14.6° in faceatlas' convention.
# So the exact conversion re-expresses AFLW's rotation in faceatlas' camera frame
# (x right, y down, z away: D = diag(1, -1, -1), R_fa = D·R_aflw·D) and decomposes it.

AFLW_SIGNS: dict[str, int] = {"yaw": -1, "pitch": 1, "roll": 1}  # first-order: faceatlas = sign × AFLW
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def aflw_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """AFLW2000-3D / 3DDFA's rotation matrix (angles in degrees), acting on its y-up model frame."""
    x, y, z = (math.radians(a) for a in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(x), math.sin(x)], [0, -math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), math.sin(z), 0], [-math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return rx @ ry @ rz


def aflw_to_faceatlas(pitch: float, yaw: float, roll: float, *, exact: bool = True) -> Pose:
    """AFLW2000-3D angles in degrees (``Pose_Para[:3] * 180 / π``: pitch, yaw, roll) → :class:`Pose`.

    ``exact``: re-decompose the same rotation in faceatlas' Euler order (what
    :func:`faceatlas.pose.estimate_pose` outputs, so errors measure the estimate, not the
    convention). ``exact=False``: the first-order sign mapping :data:`AFLW_SIGNS` only
    (yaw negated, pitch and roll kept) — the literature's per-angle numbers, for a model
    that outputs AFLW's convention. See the comment block above for the derivation.
    """
    if not exact:
        return Pose(yaw=AFLW_SIGNS["yaw"] * yaw, pitch=AFLW_SIGNS["pitch"] * pitch, roll=AFLW_SIGNS["roll"] * roll)
    from faceatlas.pose import rotation_to_pose

    return rotation_to_pose(_FLIP_YZ @ aflw_rotation(pitch, yaw, roll) @ _FLIP_YZ)


@dataclass(frozen=True, eq=False)
class PoseSample:
    image: Path
    pose: Pose  # faceatlas convention
    aflw_angles: tuple[float, float, float]  # (pitch, yaw, roll) in degrees, as in the file
    box: np.ndarray  # xyxy: the extent of the 68 landmarks' x/y (tight: brows to chin)
    points: np.ndarray  # (5, 2) mtcnn5 points from the 68 landmarks (occluded ones included)


@dataclass(frozen=True, eq=False)
class PoseSet:
    samples: tuple[PoseSample, ...]
    dropped: int = 0  # faces with an angle beyond ±99°
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[PoseSample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> PoseSample:
        return self.samples[index]


def read_aflw2000(folder: str | Path, *, max_angle: float = AFLW_MAX_ANGLE, exact: bool = True) -> PoseSet:
    """Read AFLW2000-3D's ``image*.mat`` files (with their ``.jpg``); drop faces with |angle| > ``max_angle``°."""
    folder = Path(folder)
    mats = sorted(folder.glob("image*.mat"))
    if not mats:
        raise FaceAtlasError(f"no AFLW2000-3D image*.mat files in {folder}")
    samples, dropped = [], 0
    for mat in mats:
        image = mat.with_suffix(".jpg")
        if not image.exists():
            raise FaceAtlasError(f"{mat}: its image {image.name} is missing")
        angles, pt3d = _read_aflw_mat(mat)
        if np.any(np.abs(angles) > max_angle):
            dropped += 1
            continue
        pitch, yaw, roll = (float(a) for a in angles)
        xy = pt3d[:2].T
        samples.append(
            PoseSample(
                image=image,
                pose=aflw_to_faceatlas(pitch, yaw, roll, exact=exact),
                aflw_angles=(pitch, yaw, roll),
                box=np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()]),
                points=ibug68_to_mtcnn5(xy),
            )
        )
    notes = (f"{dropped} of {len(mats)} faces dropped: an angle beyond ±{max_angle:g}° (the usual protocol)",)
    return PoseSet(tuple(samples), dropped, notes if dropped else ())


def _read_aflw_mat(mat: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pitch, yaw, roll) in degrees and the (3, 68) landmarks of one AFLW2000-3D .mat file."""
    import scipy.io

    try:
        data = scipy.io.loadmat(str(mat))
    except Exception as exc:  # noqa: BLE001 - scipy raises several unrelated types for a bad file
        raise FaceAtlasError(f"{mat}: not a readable .mat file ({exc})") from None
    for key in ("Pose_Para", "pt3d_68"):
        if key not in data:
            raise FaceAtlasError(f"{mat}: no '{key}' entry (found {sorted(k for k in data if not k.startswith('__'))})")
    pose = np.asarray(data["Pose_Para"], dtype=np.float64).ravel()
    pt3d = np.asarray(data["pt3d_68"], dtype=np.float64)
    if pose.size < 3 or not np.isfinite(pose[:3]).all():
        raise FaceAtlasError(f"{mat}: Pose_Para should hold 7 numbers (pitch yaw roll tx ty tz scale), got {pose}")
    if pt3d.shape != (3, 68) or not np.isfinite(pt3d).all():
        raise FaceAtlasError(f"{mat}: pt3d_68 should be a finite 3×68 array, got shape {pt3d.shape}")
    return np.degrees(pose[:3]), pt3d


# --------------------------------------------------------------------------------------------
# Pose report


@dataclass
class PoseReport:
    faces: int
    missed: int
    mae_yaw: float | None
    mae_pitch: float | None
    mae_roll: float | None
    mae_mean: float | None  # mean of the three MAEs
    geodesic_mean: float | None  # mean rotation angle between truth and prediction
    by_yaw: dict[str, dict[str, float | int | None]]  # bucket → faces, missed, mae_*
    notes: list[str] = field(default_factory=list)
    true_yaw: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # matched faces
    pred_yaw: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_dict(self) -> dict:
        return {
            "faces": self.faces,
            "missed": self.missed,
            "mae_yaw": self.mae_yaw,
            "mae_pitch": self.mae_pitch,
            "mae_roll": self.mae_roll,
            "mae_mean": self.mae_mean,
            "geodesic_mean": self.geodesic_mean,
            "by_abs_yaw": {k: dict(v) for k, v in self.by_yaw.items()},
            "units": "degrees",
            "notes": list(self.notes),
        }

    def table(self) -> str:
        def deg(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}°"

        lines = [
            f"faces {self.faces} (missed {self.missed}, not averaged)",
            (
                f"MAE yaw {deg(self.mae_yaw)}  pitch {deg(self.mae_pitch)}  roll {deg(self.mae_roll)}  "
                f"mean {deg(self.mae_mean)}   geodesic {deg(self.geodesic_mean)}"
            ),
        ]
        for name, b in self.by_yaw.items():
            lines.append(
                f"  |yaw| {name:>6}: faces {b['faces']:>5} missed {b['missed']:>4}  yaw {deg(b['mae_yaw'])}  "
                f"pitch {deg(b['mae_pitch'])}  roll {deg(b['mae_roll'])}  mean {deg(b['mae_mean'])}"
            )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| in degrees, wrapped to [0, 180] (179° and −179° are 2° apart)."""
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) % 360.0
    return np.minimum(d, 360.0 - d)


def geodesic_error(gt: Pose, pred: Pose) -> float:
    """The angle in degrees of the rotation taking the true head orientation to the predicted one."""
    from faceatlas.pose import pose_to_rotation

    r = pose_to_rotation(gt).T @ pose_to_rotation(pred)
    return math.degrees(math.acos(float(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


def pose_errors(gt_poses: Sequence[Pose], pred_poses: Sequence[Pose | None]) -> PoseReport:
    """MAE of yaw, pitch and roll (degrees) overall and by |true yaw|; None predictions are missed."""
    if len(gt_poses) != len(pred_poses):
        raise InvalidArgumentError(f"{len(gt_poses)} true poses but {len(pred_poses)} predictions")
    gt = np.array([[p.yaw, p.pitch, p.roll] for p in gt_poses], dtype=np.float64).reshape(-1, 3)
    found = np.array([p is not None for p in pred_poses], dtype=bool)
    pred = np.array([[p.yaw, p.pitch, p.roll] if p is not None else [np.nan] * 3 for p in pred_poses]).reshape(-1, 3)
    err = angle_error(gt, pred)
    geodesic = [geodesic_error(g, p) for g, p in zip(gt_poses, pred_poses, strict=True) if p is not None]
    overall = _mae(err, found, np.ones(len(gt), dtype=bool))
    by_yaw = {
        name: _mae(err, found, (np.abs(gt[:, 0]) >= lo) & (np.abs(gt[:, 0]) < hi)) for name, lo, hi in YAW_BUCKETS
    }
    notes = []
    if (~found).any():
        notes.append(f"{int((~found).sum())} faces had no prediction (missed): counted, not in the MAE")
    return PoseReport(
        faces=len(gt),
        missed=int((~found).sum()),
        mae_yaw=overall["mae_yaw"],
        mae_pitch=overall["mae_pitch"],
        mae_roll=overall["mae_roll"],
        mae_mean=overall["mae_mean"],
        geodesic_mean=float(np.mean(geodesic)) if geodesic else None,
        by_yaw=by_yaw,
        notes=notes,
        true_yaw=gt[found, 0],
        pred_yaw=pred[found, 0],
    )


def _mae(err: np.ndarray, found: np.ndarray, mask: np.ndarray) -> dict[str, float | int | None]:
    ok = mask & found
    out: dict[str, float | int | None] = {"faces": int(mask.sum()), "missed": int((mask & ~found).sum())}
    for k, name in enumerate(("yaw", "pitch", "roll")):
        out[f"mae_{name}"] = float(err[ok, k].mean()) if ok.any() else None
    out["mae_mean"] = float(err[ok].mean()) if ok.any() else None
    return out


def plot_pose_errors(report: PoseReport, path: str | Path, title: str = "") -> None:
    """Left: MAE of each angle by |true yaw| bucket. Right: predicted vs true yaw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_bar, ax_sc) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(report.by_yaw)
    x = np.arange(len(names))
    for k, angle in enumerate(("yaw", "pitch", "roll")):
        values = [report.by_yaw[n][f"mae_{angle}"] for n in names]
        ax_bar.bar(x + (k - 1) * 0.27, [np.nan if v is None else v for v in values], width=0.27, label=angle)
    ax_bar.set_xticks(x, [f"{n}°\n({report.by_yaw[n]['faces']} faces)" for n in names])
    ax_bar.set(xlabel="|true yaw|", ylabel="MAE (degrees)", title="error by yaw")
    ax_bar.legend()
    ax_bar.grid(True, axis="y", alpha=0.3)
    ax_sc.scatter(report.true_yaw, report.pred_yaw, s=6, alpha=0.5)
    lim = max(90.0, float(np.abs(np.concatenate([report.true_yaw, report.pred_yaw, [0.0]])).max()))
    ax_sc.plot([-lim, lim], [-lim, lim], color="grey", lw=1)
    ax_sc.set(xlabel="true yaw (°)", ylabel="predicted yaw (°)", title="yaw", xlim=(-lim, lim), ylim=(-lim, lim))
    ax_sc.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

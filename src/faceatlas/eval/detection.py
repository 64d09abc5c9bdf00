"""Face detection evaluation: WIDER FACE's protocol (AP per setting), recall by face size, a PR plot.

Nothing here runs a detector: the caller passes one ``(boxes, scores)`` per image (or ``None``
for an image that could not be read) and gets a :class:`DetectionReport`.

Ground truth is a list of :class:`DetectionSample`: an image path, its face boxes (``xyxy``
pixels, float64) and, per *setting*, a boolean mask of the faces that count in it. Faces a
setting does not keep are *ignored*: a detection matching one is neither a true nor a false
positive. Every sample has the setting ``"all"``; WIDER's difficulty lists add ``"easy"``,
``"medium"`` and ``"hard"``.

Formats read
------------
* **WIDER FACE ground truth** (``wider_face_{train,val}_bbx_gt.txt``), :func:`read_wider_gt`::

      0--Parade/0_Parade_marchingband_1_465.jpg      <- image path, relative to images_dir
      2                                              <- number of faces n
      345 211 4 4 2 0 0 0 2 0                        <- n lines: x y w h blur expression
      331 126 3 3 0 0 0 1 0 0                           illumination invalid occlusion pose

  An image with ``n = 0`` is followed by one all-zero placeholder line. Boxes become
  ``(x, y, x + w, y + h)``; a face is kept in ``"all"`` unless ``invalid == 1`` or ``w <= 0`` or
  ``h <= 0``. The six attribute columns are kept in ``DetectionSample.attributes`` (int64,
  columns named by :data:`WIDER_ATTRIBUTES`).

* **WIDER FACE difficulty lists** (``wider_easy_val.mat``, ``wider_medium_val.mat``,
  ``wider_hard_val.mat`` and, optionally, ``wider_face_val.mat``), :func:`apply_wider_difficulty`.
  MATLAB cells as ``scipy.io.loadmat`` returns them: ``event_list`` (E x 1 cell of event folder
  names), ``file_list`` (per event an n x 1 cell of image names without extension),
  ``face_bbx_list`` (per event, per image a k x 4 ``x y w h`` matrix) and, in each difficulty
  file, ``gt_list`` (per event, per image a column of the 1-based indices of the faces that count
  in that setting). The official Python port reads them as ``event_list[i][0][0]``,
  ``file_list[i][0][j][0][0]``, ``face_bbx_list[i][0][j][0]`` and ``gt_list[i][0][j][0]``; the
  face order is that of the ``*_bbx_gt.txt`` file written from the same ``.mat``.

* **JSON** for other data, :func:`read_json_annotations`: one JSON file holding a list of
  entries, or a folder of ``*.json`` files each holding one entry (or a list). An entry is::

      {"image": "photos/group.jpg",             <- relative to the JSON file's folder, or absolute
       "faces": [{"box": [x1, y1, x2, y2]},     <- pixels, x2 > x1 and y2 > y1
                 {"box": [...], "ignore": true}]}  <- ignored: neither found nor missed

  ``"faces": []`` marks an image with no face. A ``"group"`` (on the entry, or on a face to
  override it) adds a setting ``group=<name>`` that keeps only that group's faces: the group
  fairness report is AP and recall per such setting. As with WIDER's easy/medium/hard, the
  other faces are ignored in it, and a detection matching no face is a false positive in
  every setting.

The protocol
------------
:func:`evaluate_detections` reproduces the official WIDER FACE evaluation (the MATLAB
``eval_tools`` and its Python port ``widerface_evaluate/evaluation.py`` used by RetinaFace),
quirks included; a test compares it with a transcription of that code to 1e-9. See
:func:`evaluate_detections` for the quirks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceatlas.errors import FaceAtlasError

WIDER_ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
WIDER_DIFFICULTIES = ("easy", "medium", "hard")
DEFAULT_SIZE_BUCKETS: tuple[tuple[float, float], ...] = ((0, 20), (20, 40), (40, 80), (80, math.inf))
THRESH_NUM = 1000  # the official evaluation samples the PR curve at 1000 score thresholds

Prediction = tuple[np.ndarray, np.ndarray] | None


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class DetectionSample:
    """One image's ground truth: ``boxes`` (n, 4) xyxy pixels and, per setting, which faces count."""

    image: Path
    boxes: np.ndarray
    keep: dict[str, np.ndarray]
    attributes: np.ndarray | None = None  # WIDER's raw columns (n, 6), see WIDER_ATTRIBUTES

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        keep = {name: np.asarray(mask, dtype=bool).reshape(-1) for name, mask in self.keep.items()}
        if "all" not in keep:
            raise FaceAtlasError(f"{self.image}: a DetectionSample needs the keep mask 'all'")
        for name, mask in keep.items():
            if len(mask) != n:
                raise FaceAtlasError(f"{self.image}: keep mask {name!r} has {len(mask)} entries for {n} boxes")
        object.__setattr__(self, "image", Path(self.image))
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "keep", keep)


@dataclass(frozen=True, slots=True)
class SettingResult:
    """One setting's figures; the curves are the official 1000-threshold PR curve."""

    name: str
    faces: int  # faces that count in this setting (unreadable images included)
    ap: float
    recall: float  # at all detections (the curve's last point), official matching
    precision_curve: np.ndarray  # per threshold; nan where no detection counts yet
    recall_curve: np.ndarray


@dataclass(frozen=True, slots=True)
class SizeBucketResult:
    low: float  # longer side of the ground-truth box, low <= size < high
    high: float
    faces: int
    found: int

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else math.nan

    @property
    def label(self) -> str:
        return f"{self.low:g}+ px" if math.isinf(self.high) else f"{self.low:g}-{self.high:g} px"


@dataclass
class DetectionReport:
    n_images: int
    n_unreadable: int  # images whose prediction was None: all their faces are missed
    n_detections: int
    iou_threshold: float
    settings: dict[str, SettingResult]
    size_buckets: list[SizeBucketResult]
    thresholds: np.ndarray  # the normalised-score thresholds of the PR curves, descending
    notes: list[str] = field(default_factory=list)

    @property
    def aps(self) -> dict[str, float]:
        return {name: s.ap for name, s in self.settings.items()}

    def to_dict(self, curve_points: int = 100) -> dict:
        """JSON-safe (nan and inf become None); PR curves subsampled to about ``curve_points`` points."""
        pick = np.unique(np.linspace(0, len(self.thresholds) - 1, max(curve_points, 2)).round().astype(int))
        return {
            "n_images": self.n_images,
            "n_unreadable": self.n_unreadable,
            "n_detections": self.n_detections,
            "iou_threshold": self.iou_threshold,
            "settings": {
                name: {
                    "faces": s.faces,
                    "ap": _json_float(s.ap),
                    "recall": _json_float(s.recall),
                    "pr_curve": {
                        "score_threshold": [_json_float(v) for v in self.thresholds[pick]],
                        "precision": [_json_float(v) for v in s.precision_curve[pick]],
                        "recall": [_json_float(v) for v in s.recall_curve[pick]],
                    },
                }
                for name, s in self.settings.items()
            },
            "size_buckets": [
                {
                    "min_size": _json_float(b.low),
                    "max_size": _json_float(b.high),
                    "faces": b.faces,
                    "found": b.found,
                    "recall": _json_float(b.recall),
                }
                for b in self.size_buckets
            ],
            "notes": list(self.notes),
        }

    def table(self) -> str:
        lines = [f"{'setting':<10}{'faces':>8}{'AP':>9}{'recall':>9}"]
        for name, s in self.settings.items():
            lines.append(f"{name:<10}{s.faces:>8}{_pct(s.ap):>9}{_pct(s.recall):>9}")
        lines.append("")
        lines.append(f"{'face size':<12}{'faces':>6}{'found':>7}{'recall':>9}   (setting 'all', one-to-one)")
        for b in self.size_buckets:
            lines.append(f"{b.label:<12}{b.faces:>6}{b.found:>7}{_pct(b.recall):>9}")
        lines.append("")
        lines.append(
            f"images {self.n_images} (unreadable {self.n_unreadable}), detections {self.n_detections}, "
            f"IoU >= {self.iou_threshold:g}"
        )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.2f}%"


# --------------------------------------------------------------------------- WIDER gt text


def read_wider_gt(gt_file: str | Path, images_dir: str | Path) -> list[DetectionSample]:
    """Read ``wider_face_{train,val}_bbx_gt.txt`` (format in the module docstring)."""
    path, root = Path(gt_file), Path(images_dir)
    lines = path.read_text().splitlines()
    samples: list[DetectionSample] = []
    i = 0
    while i < len(lines):
        name = lines[i].strip()
        i += 1
        if not name:
            continue
        if i >= len(lines):
            raise FaceAtlasError(f"{path}: the file ends after image {name!r} (line {i}): its face count is missing")
        n = _parse_count(lines[i], path, i + 1, name)
        i += 1
        if i + n > len(lines):
            raise FaceAtlasError(
                f"{path}: the file ends at line {len(lines)} inside image {name!r}: "
                f"{n} face lines expected, {len(lines) - i} found (truncated file?)"
            )
        rows = [_parse_face_line(lines[i + k], path, i + k + 1) for k in range(n)]
        i += n
        if n == 0 and i < len(lines) and _is_numeric(lines[i]):
            i += 1  # the placeholder line that follows a zero count
        samples.append(_wider_sample(root / name, np.array(rows, dtype=np.float64).reshape(-1, 10)))
    if not samples:
        raise FaceAtlasError(f"{path} holds no images")
    return samples


def _parse_count(text: str, path: Path, line_no: int, name: str) -> int:
    try:
        n = int(text.strip())
    except ValueError:
        raise FaceAtlasError(
            f"{path}: line {line_no} should be the number of faces of {name!r}, got {text.strip()!r}"
        ) from None
    if n < 0:
        raise FaceAtlasError(f"{path}: line {line_no}: negative face count {n} for {name!r}")
    return n


def _parse_face_line(text: str, path: Path, line_no: int) -> list[float]:
    fields = text.split()
    if len(fields) != 10:
        raise FaceAtlasError(
            f"{path}: line {line_no} has {len(fields)} fields; expected 10 "
            f"(x y w h {' '.join(WIDER_ATTRIBUTES)}): {text.strip()!r}"
        )
    try:
        return [float(f) for f in fields]
    except ValueError:
        raise FaceAtlasError(f"{path}: line {line_no} has a non-numeric field: {text.strip()!r}") from None


def _is_numeric(text: str) -> bool:
    try:
        return bool(text.split()) and all(math.isfinite(float(f)) for f in text.split())
    except ValueError:
        return False


def _wider_sample(image: Path, rows: np.ndarray) -> DetectionSample:
    x, y, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    attributes = rows[:, 4:].astype(np.int64)
    valid = (attributes[:, WIDER_ATTRIBUTES.index("invalid")] != 1) & (w > 0) & (h > 0)
    return DetectionSample(image, np.stack([x, y, x + w, y + h], axis=1), {"all": valid}, attributes)


# --------------------------------------------------------------------------- WIDER difficulty .mat


def apply_wider_difficulty(
    samples: Sequence[DetectionSample], mat_dir_or_files: str | Path | Iterable[str | Path]
) -> list[DetectionSample]:
    """Add the keep masks ``"easy"``, ``"medium"``, ``"hard"`` from WIDER's official ``.mat`` lists.

    ``mat_dir_or_files`` is the ``ground_truth`` folder (``wider_{easy,medium,hard}_val.mat`` and,
    if present, ``wider_face_val.mat``) or the files themselves, recognised by name. Images are
    matched by event folder and file stem. Event and file lists come from each difficulty file,
    or from ``wider_face_val.mat`` where the difficulty file lacks them (the Python port takes
    them from there). When ``face_bbx_list`` is available, each image's boxes must equal it, so
    that the 1-based indices address the right faces.

    Every sample must appear in every list: otherwise this raises :class:`FaceAtlasError` naming
    the missing images, because an image silently left out of a setting would change its AP.
    Images in the lists but not among ``samples`` are fine (a subset is evaluated).
    """
    face_file, level_files = _find_mat_files(mat_dir_or_files)
    face_mat = _load_mat(face_file) if face_file else {}
    boxes_by_image = _mat_face_boxes(face_file, face_mat) if face_file else None
    keep_lists: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for level, file in level_files.items():
        mat = _load_mat(file)
        if boxes_by_image is None and "face_bbx_list" in mat:
            boxes_by_image = _mat_face_boxes(file, mat)
        keep_lists[level] = _mat_per_image(file, mat, face_mat, "gt_list")

    out, missing = [], []
    for sample in samples:
        key = (sample.image.parent.name, sample.image.stem)
        if any(key not in lists for lists in keep_lists.values()) or (
            boxes_by_image is not None and key not in boxes_by_image
        ):
            missing.append("/".join(key))
            continue
        if boxes_by_image is not None:
            _check_same_boxes(sample, boxes_by_image[key])
        keep = dict(sample.keep)
        for level, lists in keep_lists.items():
            keep[level] = _mask_from_indices(lists[key], len(sample.boxes), sample.image, level)
        out.append(dataclasses.replace(sample, keep=keep))
    if missing:
        raise FaceAtlasError(
            f"{len(missing)} image(s) are not in the WIDER difficulty lists, e.g. {missing[:3]}; "
            "evaluate them without apply_wider_difficulty (setting 'all' only)"
        )
    return out


def _find_mat_files(source: str | Path | Iterable[str | Path]) -> tuple[Path | None, dict[str, Path]]:
    if isinstance(source, str | Path) and Path(source).is_dir():
        folder = Path(source)
        files = [folder / f"wider_{name}_val.mat" for name in ("face", *WIDER_DIFFICULTIES)]
        files = [f for f in files if f.exists()]
    else:
        files = [Path(source)] if isinstance(source, str | Path) else [Path(f) for f in source]
        for file in files:
            if not file.is_file():
                raise FaceAtlasError(f"{file}: no such file or folder")
    face_file, levels = None, {}
    for file in files:
        match = re.fullmatch(r"wider_(face|easy|medium|hard)_\w+\.mat", file.name)
        if not match:
            raise FaceAtlasError(
                f"{file}: not a WIDER list; expected wider_face_*.mat or wider_{{easy,medium,hard}}_*.mat"
            )
        if match.group(1) == "face":
            face_file = file
        else:
            levels[match.group(1)] = file
    if not levels:
        raise FaceAtlasError(f"no wider_{{easy,medium,hard}}_val.mat found in {source}")
    return face_file, {level: levels[level] for level in WIDER_DIFFICULTIES if level in levels}


def _load_mat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except (OSError, ValueError, TypeError) as exc:
        raise FaceAtlasError(f"{path}: cannot read it as a MATLAB file: {exc}") from exc


def _mat_field(path: Path, *mats: Mapping, key: str) -> np.ndarray:
    for mat in mats:
        if key in mat:
            return mat[key]
    raise FaceAtlasError(f"{path}: no {key!r} (and no wider_face_val.mat that has it)")


def _cells(value: np.ndarray) -> list:
    """A MATLAB cell's elements in order: official files use E x 1 and n x 1 cells."""
    return list(np.asarray(value).ravel())


def _mat_text(value: object) -> str:
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise FaceAtlasError(f"expected a MATLAB string, got an array of shape {value.shape}")
        value = value.ravel()[0]
    return str(value)


def _mat_per_image(path: Path, mat: Mapping, fallback: Mapping, key: str) -> dict[tuple[str, str], np.ndarray]:
    """``mat[key]`` (per event, per image) keyed by (event folder, file stem)."""
    events = _cells(_mat_field(path, mat, fallback, key="event_list"))
    files = _cells(_mat_field(path, mat, fallback, key="file_list"))
    values = _cells(_mat_field(path, mat, key=key))
    if not len(events) == len(files) == len(values):
        raise FaceAtlasError(f"{path}: event_list, file_list and {key} have different lengths")
    out = {}
    for event, names, per_image in zip(events, files, values, strict=True):
        event_name, names, per_image = _mat_text(event), _cells(names), _cells(per_image)
        if len(names) != len(per_image):
            raise FaceAtlasError(f"{path}: event {event_name}: {len(names)} files but {len(per_image)} {key} entries")
        for name, value in zip(names, per_image, strict=True):
            out[(event_name, _mat_text(name))] = np.asarray(value)
    return out


def _mat_face_boxes(path: Path, mat: Mapping) -> dict[tuple[str, str], np.ndarray]:
    return {k: v.astype(np.float64).reshape(-1, 4) for k, v in _mat_per_image(path, mat, {}, "face_bbx_list").items()}


def _check_same_boxes(sample: DetectionSample, xywh: np.ndarray) -> None:
    b = sample.boxes
    ours = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
    if ours.shape != xywh.shape or not np.allclose(ours, xywh):
        raise FaceAtlasError(
            f"{sample.image}: its {len(ours)} ground-truth boxes differ from the {len(xywh)} in face_bbx_list; "
            "the gt file and the .mat files must come from the same WIDER release"
        )


def _mask_from_indices(indices: np.ndarray, n: int, image: Path, level: str) -> np.ndarray:
    flat = indices.astype(np.float64).ravel()
    idx = flat.astype(np.int64)
    if np.any(idx != flat) or np.any(idx < 1) or np.any(idx > n):
        raise FaceAtlasError(f"{image}: the {level} list has face indices {flat.tolist()} outside 1..{n}")
    mask = np.zeros(n, dtype=bool)
    mask[idx - 1] = True
    return mask


# --------------------------------------------------------------------------- JSON


def read_json_annotations(path: str | Path) -> list[DetectionSample]:
    """Read the JSON annotation format (see the module docstring): a file with a list, or a folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise FaceAtlasError(f"{path}: no *.json files in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise FaceAtlasError(f"{path}: no such file or folder")
    samples: list[DetectionSample] = []
    for file in files:
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise FaceAtlasError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
        entries = data if isinstance(data, list) else [data]
        samples.extend(_json_sample(entry, file, k) for k, entry in enumerate(entries))
    # every sample needs every setting: an image without faces of a group keeps none in it
    names = sorted({name for sample in samples for name in sample.keep})
    return [
        dataclasses.replace(sample, keep={n: sample.keep.get(n, np.zeros(len(sample.boxes), bool)) for n in names})
        for sample in samples
    ]


def _json_sample(entry: object, file: Path, k: int) -> DetectionSample:
    where = f"{file}: entry {k}"
    if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
        raise FaceAtlasError(f"{where} must be an object with an 'image' path and a 'faces' list")
    faces = entry.get("faces")
    if not isinstance(faces, list):
        raise FaceAtlasError(f"{where} ({entry['image']}): 'faces' must be a list (use [] for no face)")
    image = Path(entry["image"])
    image = image if image.is_absolute() else file.parent / image
    boxes, ignore, groups = [], [], []
    for j, face in enumerate(faces):
        box = face.get("box") if isinstance(face, dict) else None
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        ):
            raise FaceAtlasError(f"{where} ({entry['image']}) face {j}: 'box' must be [x1, y1, x2, y2], got {box!r}")
        if not (box[2] > box[0] and box[3] > box[1]):
            raise FaceAtlasError(f"{where} ({entry['image']}) face {j}: box {box} needs x2 > x1 and y2 > y1 (xyxy)")
        boxes.append([float(v) for v in box])
        ignore.append(bool(face.get("ignore", False)))
        groups.append(face.get("group", entry.get("group")))
    keep = {"all": ~np.array(ignore, bool)}
    for group in sorted({str(g) for g in groups if g is not None}):
        keep[f"group={group}"] = keep["all"] & np.array([g is not None and str(g) == group for g in groups], bool)
    return DetectionSample(image, np.array(boxes, dtype=np.float64).reshape(-1, 4), keep)


# --------------------------------------------------------------------------- evaluation


def evaluate_detections(
    samples: Sequence[DetectionSample],
    predictions: Sequence[Prediction],
    iou_threshold: float = 0.5,
    size_buckets: Sequence[tuple[float, float]] = DEFAULT_SIZE_BUCKETS,
    *,
    score_faceless_images: bool = False,
    thresh_num: int = THRESH_NUM,
) -> DetectionReport:
    """Score detections with the official WIDER FACE protocol, in every setting of the samples.

    ``predictions[i]`` is ``(boxes (m, 4) xyxy, scores (m,))`` for ``samples[i]``, or ``None``
    for an unreadable image (counted; its faces are missed).

    Official behaviour reproduced, quirks included:

    * Scores are normalised once over all detections as ``(s - lo) / (hi - lo)`` with
      ``lo = min(1, all scores)`` and ``hi = max(0, all scores)`` (the code starts its running
      min at 1 and max at 0): scores within [0.3, 0.9] map to [0, 1], but scores within [2, 10]
      map to [1/9, 1] and scores within [-5, -1] to [0, 0.8].
    * IoU uses the +1 pixel convention of Fast R-CNN's ``bbox_overlaps`` (a box ``x1..x2`` is
      ``x2 - x1 + 1`` wide), computed here in float64 (the Cython original in float32).
    * Per image, detections in descending score order are each matched to their max-IoU ground
      truth among *all* faces of the image, ignored ones included (first on ties). At IoU >=
      the threshold: an ignored face makes the detection neither TP nor FP; a counted face is
      recalled. A second detection on an already recalled face (a duplicate) stays a proposal
      and so counts as a false positive, and is not re-matched to its next-best face.
    * Images with no ground-truth box at all are skipped: their detections are *not* false
      positives (``score_faceless_images=True`` counts them; an image whose boxes are all
      ignored is always scored). Faces of images with no detection still count as missed.
    * Precision and recall are taken at ``thresh_num`` (1000) thresholds ``1 - t/1000``,
      summed over images; precision is nan (0/0) above the highest counted detection.
    * AP is VOC's all-points AP over those 1000 points (precision envelope, sum of recall
      steps); nan precision at the start propagates through the envelope only over zero-recall
      points, so it never reaches the sum.

    Deviations: the Python port does not sort (it trusts the files to be sorted by score; the
    MATLAB reader sorts); detections are sorted here, stably. When every score is equal and within [0, 1] the
    official normalisation divides by zero and scores AP 0; here such scores all become 1.

    Size buckets (longer side of the gt box, setting ``"all"``): each face counts once; per image,
    detections in descending score order take the unmatched counted face of highest IoU (>= the
    threshold, +1 convention), one to one; ignored faces take no detection.
    """
    if len(predictions) != len(samples):
        raise FaceAtlasError(f"{len(predictions)} predictions for {len(samples)} samples; pass one per sample")
    if not samples:
        raise FaceAtlasError("no samples to evaluate")
    names = list(samples[0].keep)
    for s in samples:
        if set(s.keep) != set(names):
            raise FaceAtlasError(f"{s.image} has settings {sorted(s.keep)}, the first sample {sorted(names)}")
    preds = [_checked_prediction(p, s.image) for p, s in zip(predictions, samples, strict=True)]
    scores, notes = _normalise_scores([p[1] if p is not None else None for p in preds])

    thresholds = 1 - (np.arange(thresh_num) + 1) / thresh_num  # official: 1 - (t+1)/thresh_num
    sums = {name: np.zeros((thresh_num, 2)) for name in names}  # [:, 0] proposals, [:, 1] recalled
    counts = dict.fromkeys(names, 0)
    skipped_images = skipped_detections = 0
    for sample, pred, score in zip(samples, preds, scores, strict=True):
        for name in names:
            counts[name] += int(sample.keep[name].sum())
        if pred is None or len(pred[0]) == 0:
            continue
        if len(sample.boxes) == 0 and not score_faceless_images:
            skipped_images, skipped_detections = skipped_images + 1, skipped_detections + len(pred[0])
            continue
        order = np.argsort(-score, kind="stable")
        boxes, score = pred[0][order], score[order]
        # detections at or above each threshold: a prefix of the sorted list
        k = len(score) - np.searchsorted(score[::-1], thresholds, side="left")
        at = k > 0
        best, best_iou = _best_gt(boxes, sample.boxes)
        for name in names:
            proposals, recalled = _image_counts(best, best_iou, sample.keep[name], iou_threshold)
            sums[name][at, 0] += proposals[k[at] - 1]
            sums[name][at, 1] += recalled[k[at] - 1]

    settings = {name: _setting_result(name, sums[name], counts[name]) for name in names}
    if skipped_images:
        notes.append(
            f"{skipped_images} image(s) have no ground-truth face: their {skipped_detections} detection(s) "
            "were not scored (official protocol; score_faceless_images=True counts them as false positives)"
        )
    return DetectionReport(
        n_images=len(samples),
        n_unreadable=sum(p is None for p in predictions),
        n_detections=sum(len(p[0]) for p in preds if p is not None),
        iou_threshold=float(iou_threshold),
        settings=settings,
        size_buckets=_size_recall(samples, preds, iou_threshold, size_buckets),
        thresholds=thresholds,
        notes=notes,
    )


def _checked_prediction(pred: Prediction, image: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if pred is None:
        return None
    boxes = np.asarray(pred[0], dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(pred[1], dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise FaceAtlasError(f"{image}: {len(boxes)} predicted boxes but {len(scores)} scores")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise FaceAtlasError(f"{image}: predicted boxes or scores are not finite")
    return boxes, scores


def _normalise_scores(scores: list[np.ndarray | None]) -> tuple[list[np.ndarray], list[str]]:
    """The official ``norm_score``: running max starts at 0 and running min at 1."""
    present = [s for s in scores if s is not None and len(s)]
    hi = max([0.0, *(float(s.max()) for s in present)])
    lo = min([1.0, *(float(s.min()) for s in present)])
    notes = []
    if hi - lo > 0:
        out = [(s - lo) / (hi - lo) if s is not None else np.zeros(0) for s in scores]
    else:  # all scores equal, within [0, 1]: the official code divides by zero
        out = [np.ones(len(s)) if s is not None else np.zeros(0) for s in scores]
        if present:
            notes.append("all detection scores are equal: treated as one operating point (score 1)")
    return out, notes


def _overlaps(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU (m, n) as Fast R-CNN's ``bbox_overlaps`` computes it: +1 pixel, same operation order."""
    gt_area = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    pred_area = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    iw = np.minimum(pred[:, None, 2], gt[None, :, 2]) - np.maximum(pred[:, None, 0], gt[None, :, 0]) + 1
    ih = np.minimum(pred[:, None, 3], gt[None, :, 3]) - np.maximum(pred[:, None, 1], gt[None, :, 1]) + 1
    overlap = (iw > 0) & (ih > 0)
    inter = iw * ih
    union = pred_area[:, None] + gt_area[None, :] - inter
    out = np.zeros(inter.shape)
    out[overlap] = inter[overlap] / union[overlap]
    return out


def _best_gt(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's max-IoU ground truth (first on ties) and that IoU; -1/0 with no gt."""
    if len(gt) == 0:
        return np.full(len(pred), -1), np.zeros(len(pred))
    iou = _overlaps(pred, gt)
    best = iou.argmax(axis=1)
    return best, iou[np.arange(len(pred)), best]


def _image_counts(
    best: np.ndarray, best_iou: np.ndarray, keep: np.ndarray, thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """The official ``image_eval``, vectorised: cumulative proposals and recalled faces per detection."""
    hit = (best_iou >= thr) & (best >= 0)
    counted = np.zeros(len(best), dtype=bool)
    counted[hit] = keep[best[hit]]
    proposal = ~(hit & ~counted)  # a hit on an ignored face is no proposal
    kept_hits = np.flatnonzero(hit & counted)
    first = np.zeros(len(best), dtype=np.int64)
    _, first_pos = np.unique(best[kept_hits], return_index=True)
    first[kept_hits[first_pos]] = 1  # later hits on the same face (duplicates) recall nothing
    return np.cumsum(proposal), np.cumsum(first)


def _setting_result(name: str, sums: np.ndarray, faces: int) -> SettingResult:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = sums[:, 1] / sums[:, 0]
        recall = sums[:, 1] / faces if faces else np.full(len(sums), np.nan)
    return SettingResult(
        name=name,
        faces=faces,
        ap=voc_ap(recall, precision) if faces else math.nan,
        recall=float(recall[-1]),
        precision_curve=precision,
        recall_curve=recall,
    )


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-points AP (the official ``voc_ap``): area under the precision envelope."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # like the official loop, nan propagates leftwards
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _size_recall(
    samples: Sequence[DetectionSample],
    preds: Sequence[tuple[np.ndarray, np.ndarray] | None],
    thr: float,
    buckets: Sequence[tuple[float, float]],
) -> list[SizeBucketResult]:
    for low, high in buckets:
        if not low < high:
            raise FaceAtlasError(f"size bucket ({low}, {high}) needs low < high")
    sizes, found = [], []
    for sample, pred in zip(samples, preds, strict=True):
        gt = sample.boxes[sample.keep["all"]]
        sizes.append(np.maximum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]))
        found.append(_greedy_matched(pred, gt, thr))
    size, hit = np.concatenate(sizes), np.concatenate(found)
    out = []
    for low, high in buckets:
        in_bucket = (size >= low) & (size < high)
        out.append(SizeBucketResult(float(low), float(high), int(in_bucket.sum()), int(hit[in_bucket].sum())))
    return out


def _greedy_matched(pred: tuple[np.ndarray, np.ndarray] | None, gt: np.ndarray, thr: float) -> np.ndarray:
    """Which faces a one-to-one greedy match (descending score, highest IoU first) finds."""
    matched = np.zeros(len(gt), dtype=bool)
    if pred is None or len(pred[0]) == 0 or len(gt) == 0:
        return matched
    iou = _overlaps(pred[0][np.argsort(-pred[1], kind="stable")], gt)
    for row in iou[iou.max(axis=1) >= thr]:  # detections that can match nothing are skipped
        row = np.where(matched, -1.0, row)
        j = int(row.argmax())
        if row[j] >= thr:
            matched[j] = True
    return matched


# --------------------------------------------------------------------------- plot


def plot_pr(report: DetectionReport, path: str | Path, title: str = "") -> Path:
    """Precision-recall curves of every setting on one PNG (legend: AP)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    try:
        for name, s in report.settings.items():
            ap = "n/a" if not math.isfinite(s.ap) else f"{s.ap:.3f}"
            ax.plot(s.recall_curve, s.precision_curve, linewidth=2, label=f"{name} (AP {ap}, {s.faces} faces)")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title or "face detection")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return Path(path)

"""Bring your own model, by path: an ``.onnx`` file or an InsightFace-style model-pack folder.

Wherever a model name is accepted (``create_detector``, ``create_embedder``, ``FaceAnalyzer``,
the CLI, the service), a path works too::

    FaceAnalyzer(detector="~/models/buffalo_s", embedder="~/models/buffalo_s")
    create_embedder("/models/w600k_r50.onnx", flip=True)

What a file is comes from its graph (:mod:`faceatlas.models.onnx_graph`), never from its name. A
folder holds one detector and one embedder; other graphs (InsightFace's ``1k3d68``, ``2d106det``,
``genderage``) are skipped, and two candidates for one role are refused with both names.

Each model gets an inferred card: ``name`` "onnx:<file stem>", ``version`` the first 12 hex digits
of the file's sha256 (so a gallery built with one file refuses another: its ModelTag differs),
sizes and preprocessing from the graph, ``license`` "as supplied by the user", no thresholds.
A JSON sidecar ``<model>.onnx.card.json`` next to the file overrides what faceatlas cannot know
(channel order, mean/std, licence, calibrated thresholds...); :func:`write_card` writes one with
the inferred values for the user to edit. Fields that describe the graph (``version``, ``task``,
``kind``, ``input_size``, ``embedding_dim``) are checked against it, not applied: a sidecar written
for other weights is refused rather than lending them its thresholds.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from faceatlas.errors import InvalidArgumentError, ModelError, UnknownModelError
from faceatlas.models.cards import CalibratedThreshold, ModelCard
from faceatlas.models.onnx_graph import (
    DetectorGraph,
    EmbedderGraph,
    Graph,
    describe_kind,
    inspect_model,
)

Task = Literal["detection", "embedding"]
SIDECAR_SUFFIX = ".card.json"
USER_LICENSE = "as supplied by the user (faceatlas did not check its terms)"

# The classes are named, not imported (as faceatlas.registry does): this module sits below the
# detectors and embedders, which import it.
_CLASSES = {
    "scrfd": "faceatlas.detectors.scrfd:SCRFDDetector",
    "yunet": "faceatlas.detectors.yunet:YuNetDetector",
    "retinaface": "faceatlas.detectors.retinaface:RetinaFaceDetector",
    "arcface": "faceatlas.embedders.onnx_embedder:OnnxEmbedder",
}

# options the pipeline passes to one factory that mean nothing to the other kind of model
EMBEDDER_ONLY_OPTIONS = frozenset({"flip"})
DETECTOR_ONLY_OPTIONS = frozenset({"min_face_size", "score_threshold", "nms_threshold", "input_size", "max_size"})


@dataclass(frozen=True, slots=True)
class Preprocessing:
    """How pixels become the network's input: ``(pixel - mean) / std`` per channel, in ``channel_order``."""

    channel_order: Literal["RGB", "BGR"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def describe(self) -> str:
        def num(values: tuple[float, float, float]) -> str:
            one = {f"{v:g}" for v in values}
            return one.pop() if len(one) == 1 else "(" + ", ".join(f"{v:g}" for v in values) + ")"

        return f"{self.channel_order}, (pixel - {num(self.mean)}) / {num(self.std)}"


# What each family was trained with: InsightFace feeds RGB (blobFromImage with swapRB=True from
# BGR), SCRFD (x - 127.5) / 128 and ArcFace (x - 127.5) / 127.5; OpenCV's FaceDetectorYN feeds
# YuNet raw BGR 0-255; biubug6's RetinaFace BGR minus (104, 117, 123).
DEFAULT_PREPROCESSING: dict[str, Preprocessing] = {
    "scrfd": Preprocessing("RGB", (127.5,) * 3, (128.0,) * 3),
    "yunet": Preprocessing("BGR", (0.0,) * 3, (1.0,) * 3),
    "retinaface": Preprocessing("BGR", (104.0, 117.0, 123.0), (1.0,) * 3),
    "arcface": Preprocessing("RGB", (127.5,) * 3, (127.5,) * 3),
}


@dataclass(frozen=True)
class ByoModel:
    """A user's model file as faceatlas reads it: its graph, card, preprocessing and sidecar overrides."""

    path: Path
    graph: Graph
    card: ModelCard
    preprocessing: Preprocessing
    options: dict[str, float]  # detector defaults from the sidecar (score_threshold, nms_threshold)
    sidecar: Path | None  # the sidecar applied, if any

    @property
    def kind(self) -> str:
        return self.graph.kind if isinstance(self.graph, DetectorGraph) else "arcface"


# ---------------------------------------------------------------------------------------------
# Paths and packs


def looks_like_path(name: object) -> bool:
    """Whether a model "name" is a path: a PathLike, or a string with a path separator, ending in
    ``.onnx``, or naming an existing folder (callers check registered names first)."""
    if isinstance(name, os.PathLike):
        return True
    if not isinstance(name, str) or not name:
        return False
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(s in name for s in seps) or name.lower().endswith(".onnx") or Path(name).expanduser().is_dir()


@dataclass(frozen=True)
class PackContents:
    """What a model folder holds: placed detectors and embedders, and the files set aside (with why)."""

    folder: Path
    detectors: tuple[tuple[Path, DetectorGraph], ...]
    embedders: tuple[tuple[Path, EmbedderGraph], ...]
    skipped: tuple[tuple[Path, str], ...]

    def summary(self) -> str:
        placed: list[tuple[Path, Graph]] = [*self.detectors, *self.embedders]
        parts = [f"{p.name}: {describe_kind(g)}" for p, g in placed]
        parts += [f"{p.name}: skipped ({why})" for p, why in self.skipped]
        return "; ".join(parts) or "no .onnx files"


def scan_pack(folder: str | os.PathLike[str]) -> PackContents:
    """Classify every ``.onnx`` file directly in ``folder`` (sorted by name)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ModelError(f"{root} is not a folder")
    detectors, embedders, skipped = [], [], []
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() == ".onnx" and p.is_file()):
        try:
            graph = inspect_model(path)
        except ModelError as exc:
            skipped.append((path, _short(exc)))
            continue
        if isinstance(graph, EmbedderGraph):
            embedders.append((path, graph))
        else:
            detectors.append((path, graph))
    return PackContents(root, tuple(detectors), tuple(embedders), tuple(skipped))


def _short(exc: Exception) -> str:
    text = str(exc)
    # keep the part that says what was found, not the list of what is accepted
    text = text.split(" faceatlas accepts:")[0]
    return text if len(text) <= 300 else text[:297] + "..."


def resolve_model(path: str | os.PathLike[str], task: Task) -> Path:
    """The model file for ``task``: ``path`` itself, or the one detector/embedder of a pack folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(
            f"no model at {p}: give the path of an .onnx file or of a model-pack folder (e.g. InsightFace's buffalo_s/)"
        )
    if p.is_file():
        return p
    pack = scan_pack(p)
    found = pack.detectors if task == "detection" else pack.embedders
    role = "face detector" if task == "detection" else "face embedder"
    if not found:
        raise ModelError(f"{p} holds no {role} faceatlas can use ({pack.summary()})")
    if len(found) > 1:
        names = ", ".join(q.name for q, _ in found)
        raise ModelError(f"{p} holds several {role}s ({names}): pass the path of the one to use, e.g. {found[0][0]}")
    return found[0][0]


# ---------------------------------------------------------------------------------------------
# Factories (what create_detector / create_embedder call for a path)


def detector_from_path(path: str | os.PathLike[str], **options: Any) -> Any:
    """A detector for an ONNX file (SCRFD, YuNet or RetinaFace) or a pack folder's detector."""
    model = model_info(path, "detection")
    options = {k: v for k, v in options.items() if k not in EMBEDDER_ONLY_OPTIONS}
    kind = model.kind
    if kind == "retinaface":
        if importlib.util.find_spec("faceatlas.detectors.retinaface") is None:
            raise UnknownModelError(
                f"{model.path} is a RetinaFace export; RetinaFace exports are not supported yet in this version "
                "of faceatlas. Use an SCRFD or YuNet ONNX file, or a built-in detector."
            )
        return _construct(kind, model, {**model.options, **options}, card=model.card)
    return _construct(kind, model, options)


def embedder_from_path(path: str | os.PathLike[str], **options: Any) -> Any:
    """An embedder for an ArcFace-style ONNX file or a pack folder's embedder."""
    model = model_info(path, "embedding")
    options = {k: v for k, v in options.items() if k not in DETECTOR_ONLY_OPTIONS}
    return _construct("arcface", model, options)


def _construct(kind: str, model: ByoModel, options: dict[str, Any], **extra: Any) -> Any:
    module, _, cls_name = _CLASSES[kind].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    params = inspect.signature(cls).parameters
    accepted = {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    accepted -= {"model_path", "card"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InvalidArgumentError(
            f"{', '.join(unknown)}: not an option of {cls_name} (for {model.path.name}); "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    return cls(model_path=model.path, **extra, **options)


# ---------------------------------------------------------------------------------------------
# Cards and sidecars


def sidecar_path(model_path: str | os.PathLike[str]) -> Path:
    """``<model>.onnx.card.json`` next to the model file."""
    p = Path(model_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def model_info(
    path: str | os.PathLike[str],
    task: Task,
    *,
    channel_order: str | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> ByoModel:
    """Resolve, classify and describe a user's model for ``task``: the sidecar applied, then the
    preprocessing arguments given here (the caller's, which win)."""
    file = resolve_model(path, task)
    graph = inspect_model(file)
    is_embedder = isinstance(graph, EmbedderGraph)
    if is_embedder != (task == "embedding"):
        wanted, other = ("embedder", "detector") if task == "embedding" else ("detector", "embedder")
        raise ModelError(
            f"{file} is a {describe_kind(graph)}, not a face {wanted}: pass it as the {other} "
            f"(e.g. FaceAnalyzer({other}={str(file)!r}))"
        )
    side = sidecar_path(file)
    overrides = read_sidecar(side, graph, file) if side.is_file() else {}
    given = {"channel_order": channel_order, "mean": mean, "std": std}
    for key, value in given.items():
        if value is None:
            continue

        def bad(expected: str, key: str = key, value: Any = value) -> InvalidArgumentError:
            return InvalidArgumentError(f"{key} must be {expected}, got {value!r}")

        if key == "channel_order":
            if value not in ("RGB", "BGR"):
                raise bad('"RGB" or "BGR"')
            overrides[key] = value
        else:
            listed = list(value) if isinstance(value, (list, tuple)) else value
            overrides[key] = _three(listed, positive=key == "std", error=bad)
    return _build(file, graph, overrides, side if side.is_file() else None)


def _build(file: Path, graph: Graph, overrides: dict[str, Any], side: Path | None) -> ByoModel:
    kind = graph.kind if isinstance(graph, DetectorGraph) else "arcface"
    pre = DEFAULT_PREPROCESSING[kind]
    pre = Preprocessing(
        overrides.get("channel_order", pre.channel_order),
        overrides.get("mean", pre.mean),
        overrides.get("std", pre.std),
    )
    card = infer_card(file, graph, pre)
    if kind == "arcface" and pre != DEFAULT_PREPROCESSING[kind]:
        # other pixels in, other vectors out: a gallery must not mix them with the default's
        card = dataclasses.replace(card, version=f"{card.version}+{_preprocessing_tag(pre)}")
    fields = ("name", "summary", "license", "calibration", "reference_accuracy", "thresholds")
    card = dataclasses.replace(card, **{k: overrides[k] for k in fields if k in overrides})
    options: dict[str, float] = {k: overrides[k] for k in ("score_threshold", "nms_threshold") if k in overrides}
    return ByoModel(file, graph, card, pre, options, side)


def _preprocessing_tag(pre: Preprocessing) -> str:
    def num(values: tuple[float, float, float]) -> str:
        texts = [f"{v:g}" for v in values]
        return texts[0] if len(set(texts)) == 1 else "/".join(texts)

    return f"{pre.channel_order}-{num(pre.mean)}-{num(pre.std)}"


def file_version(path: str | os.PathLike[str]) -> str:
    """The first 12 hex digits of the file's sha256 (cached per file state): the card's version."""
    p = Path(path).resolve()
    stat = p.stat()
    return _file_version(p, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_version(path: Path, size: int, mtime_ns: int) -> str:
    from faceatlas._files import sha256_file

    return sha256_file(path)[:12]


def infer_card(file: Path, graph: Graph, pre: Preprocessing) -> ModelCard:
    """The card faceatlas can fill in from the graph alone (no thresholds: nothing was calibrated)."""
    what = describe_kind(graph)
    common: dict[str, Any] = {
        "name": f"onnx:{file.stem}",
        "version": file_version(file),
        "source": (),
        "license": USER_LICENSE,
    }
    if isinstance(graph, EmbedderGraph):
        s = graph.size
        return ModelCard(
            task="embedding",
            summary=f"user-supplied {what}, from {file.name}",
            input_size=(s, s),
            preprocessing=(
                f"5-point similarity warp onto ArcFace's template scaled to {s}×{s} px; {pre.describe()}, {graph.layout}"
            ),
            embedding_dim=graph.dim,
            metric="cosine",
            **common,
        )
    hw = graph.input_hw
    if graph.kind == "retinaface":
        policy = "at the photo's own size, longer side capped (RetinaFaceDetector's max_size)"
    elif hw is not None:
        policy = f"letterboxed into {hw[1]}×{hw[0]} (aspect kept, padded bottom/right with black)"
    else:
        top = max(graph.strides)
        policy = (
            f"resized so the longer side is input_size (default 640), padded bottom/right with black "
            f"to a multiple of {top}"
        )
    text = f"{pre.describe()}, NCHW; {policy}"
    summary = f"user-supplied {what}, from {file.name}"
    if not graph.keypoints:
        text += (
            "; the graph has no keypoint outputs: the 5 landmarks are ESTIMATED from the box with a fixed "
            "mean layout (faceatlas.detectors._onnx_detector.MEAN_LAYOUT), so alignment is coarse"
        )
        summary += "; landmarks estimated from the box"
    return ModelCard(
        task="detection",
        summary=summary,
        input_size=(hw[1], hw[0]) if hw else (0, 0),
        preprocessing=text,
        **common,
    )


# sidecar fields: what may be edited, and what describes the graph (checked, not applied)
_EDITABLE = ("name", "summary", "license", "channel_order", "mean", "std", "calibration", "reference_accuracy")
_EMBEDDING_ONLY = ("thresholds",)
_DETECTION_ONLY = ("score_threshold", "nms_threshold")
_DESCRIPTIVE = ("version", "task", "kind", "input_size", "embedding_dim")
_IGNORED = ("comment",)


def read_sidecar(side: Path, graph: Graph, model_file: Path) -> dict[str, Any]:
    """The validated overrides of a sidecar; ModelError naming the file and the field otherwise."""
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"could not read the model card sidecar {side}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{side} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{side} must hold a JSON object of card fields, got {type(data).__name__}")
    is_embedder = isinstance(graph, EmbedderGraph)
    kind = "arcface" if is_embedder else graph.kind  # type: ignore[union-attr]
    allowed = set(_EDITABLE + _DESCRIPTIVE + _IGNORED) | set(_EMBEDDING_ONLY if is_embedder else _DETECTION_ONLY)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            other = " (a field of the other kind of model)" if key in _EMBEDDING_ONLY + _DETECTION_ONLY else ""
            raise ModelError(f"{side}: unknown field {key!r}{other}; the fields are {', '.join(sorted(allowed))}")
        if key in _IGNORED:
            continue

        def bad(expected: str, key: str = key, value: Any = value) -> ModelError:
            return ModelError(f"{side}: field {key!r} must be {expected}, got {value!r}")

        if key in ("name", "summary", "license", "calibration", "reference_accuracy"):
            if not isinstance(value, str) or (key == "name" and not value.strip()):
                raise bad("a non-empty string" if key == "name" else "a string")
            out[key] = value
        elif key == "channel_order":
            if value not in ("RGB", "BGR"):
                raise bad('"RGB" or "BGR"')
            out[key] = value
        elif key in ("mean", "std"):
            out[key] = _three(value, positive=key == "std", error=bad)
        elif key == "thresholds":
            out[key] = _thresholds(value, bad)
        elif key in _DETECTION_ONLY:
            if not _number(value) or not 0.0 < float(value) < 1.0:
                raise bad("a number in (0, 1)")
            out[key] = float(value)
        else:
            _check_descriptive(side, key, value, graph, model_file)
    if kind == "retinaface" and {"channel_order", "mean", "std"} & set(out):
        raise ModelError(
            f"{side}: channel_order/mean/std cannot be changed for a RetinaFace export "
            "(RetinaFaceDetector always feeds BGR minus (104, 117, 123))"
        )
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _three(value: Any, positive: bool, error: Any) -> tuple[float, float, float]:
    values = [value] * 3 if _number(value) else value
    if not isinstance(values, list) or len(values) != 3 or not all(_number(v) for v in values):
        raise error("a number or a list of 3 numbers (one per channel, in the model's channel order)")
    if positive and not all(v > 0 for v in values):
        raise error("positive")
    return (float(values[0]), float(values[1]), float(values[2]))


def _thresholds(value: Any, error: Any) -> tuple[CalibratedThreshold, ...]:
    expected = 'a list of {"far": rate in (0, 1), "similarity": cosine in [-1, 1]} objects'
    if not isinstance(value, list):
        raise error(expected)
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"far", "similarity"}:
            raise error(expected)
        far, sim = item["far"], item["similarity"]
        if not (_number(far) and 0.0 < far < 1.0 and _number(sim) and -1.0 <= sim <= 1.0):
            raise error(expected)
        out.append(CalibratedThreshold(float(far), float(sim)))
    if len({t.far for t in out}) != len(out):
        raise error(expected + " with distinct far values")
    return tuple(sorted(out, key=lambda t: t.far))


def _descriptive(file: Path, graph: Graph) -> dict[str, Any]:
    card = infer_card(file, graph, DEFAULT_PREPROCESSING["arcface" if isinstance(graph, EmbedderGraph) else graph.kind])
    out: dict[str, Any] = {
        "version": card.version,
        "task": card.task,
        "kind": "arcface" if isinstance(graph, EmbedderGraph) else graph.kind,
        "input_size": list(card.input_size),
    }
    if card.embedding_dim is not None:
        out["embedding_dim"] = card.embedding_dim
    return out


def _check_descriptive(side: Path, key: str, value: Any, graph: Graph, model_file: Path) -> None:
    actual = _descriptive(model_file, graph).get(key)
    if value != actual:
        hint = (
            "the weights changed since it was written, so its thresholds do not apply; "
            "delete the sidecar or write it again (faceatlas.models.byo.write_card)"
            if key == "version"
            else "it describes another graph; delete the field or the sidecar"
        )
        raise ModelError(f"{side}: field {key!r} is {value!r}, but {model_file.name} has {actual!r}: {hint}")


def write_card(path: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Write ``<model>.onnx.card.json`` with the inferred card for a model file, or for a pack's
    detector and embedder; returns the sidecars written. An existing sidecar is kept unless
    ``overwrite``."""
    p = Path(path).expanduser()
    if p.is_dir():
        pack = scan_pack(p)
        files = [q for q, _ in (*pack.detectors, *pack.embedders)]
        if not files:
            raise ModelError(f"{p} holds no face detector or embedder faceatlas can use ({pack.summary()})")
    else:
        files = [resolve_model(p, "detection")]
    sides = [sidecar_path(f) for f in files]
    existing = [s for s in sides if s.exists()]
    if existing and not overwrite:
        raise InvalidArgumentError(
            f"{', '.join(map(str, existing))} already exist(s); edit it, or pass overwrite=True to replace it"
        )
    for file, side in zip(files, sides, strict=True):
        graph = inspect_model(file)
        model = _build(file, graph, {}, None)
        side.write_text(json.dumps(sidecar_fields(model), indent=2) + "\n", encoding="utf-8")
    return sides


def sidecar_fields(model: ByoModel) -> dict[str, Any]:
    """The sidecar a user would edit for ``model``: its editable fields, then what describes the graph."""
    card, pre = model.card, model.preprocessing
    out: dict[str, Any] = {
        "comment": (
            "faceatlas model card sidecar: edit name, summary, license, channel_order, mean, std"
            + (", thresholds, calibration" if card.task == "embedding" else ", score_threshold, nms_threshold")
            + "; version, task, kind, input_size and embedding_dim describe the graph and are checked, not applied"
        ),
        "name": card.name,
        "summary": card.summary,
        "license": card.license,
    }
    if model.kind != "retinaface":
        out.update(channel_order=pre.channel_order, mean=_compact(pre.mean), std=_compact(pre.std))
    if card.task == "embedding":
        out["thresholds"] = [{"far": t.far, "similarity": t.similarity} for t in card.thresholds]
        out["calibration"] = card.calibration
    out["reference_accuracy"] = card.reference_accuracy
    out.update(_descriptive(model.path, model.graph))
    return out


def _compact(values: tuple[float, float, float]) -> float | list[float]:
    return values[0] if len(set(values)) == 1 else list(values)

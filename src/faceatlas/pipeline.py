"""FaceAnalyzer: batches images through detect → pose → align → quality → embed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from faceatlas.align import create_aligner
from faceatlas.detectors import DEFAULT_DETECTOR, Detector, create_detector
from faceatlas.embedders import DEFAULT_EMBEDDER, Embedder, create_embedder
from faceatlas.errors import InvalidArgumentError
from faceatlas.image import load_image
from faceatlas.pose import estimate_pose
from faceatlas.quality import assess_quality
from faceatlas.types import Box, Face, Landmarks

ImageSource = Any  # a path, bytes, file object, PIL image or numpy array: see load_image


class FaceAnalyzer:
    """The whole pipeline, with models loaded lazily and shared by every call.

    >>> analyzer = FaceAnalyzer()                  # nothing loads yet
    >>> faces = analyzer.analyze("group.jpg")      # boxes, landmarks, pose, quality, embedding
    """

    def __init__(
        self,
        detector: str | os.PathLike[str] | Detector = DEFAULT_DETECTOR,
        embedder: str | os.PathLike[str] | Embedder = DEFAULT_EMBEDDER,
        *,
        aligner: str | None = None,
        min_face_size: int = 20,
        flip: bool = False,
        detector_options: Mapping[str, Any] | None = None,
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        quality: str | os.PathLike[str] = "auto",
    ) -> None:
        # a name, or a path to an .onnx file or an InsightFace model-pack folder
        self.detector = (
            create_detector(
                os.fspath(detector),
                min_face_size=min_face_size,
                providers=providers,
                cache_dir=cache_dir,
                **dict(detector_options or {}),
            )
            if isinstance(detector, (str, os.PathLike))
            else detector
        )
        self.embedder = (
            create_embedder(os.fspath(embedder), flip=flip, providers=providers, cache_dir=cache_dir)
            if isinstance(embedder, (str, os.PathLike))
            else embedder
        )
        # None: the alignment the embedder was trained with ("landmarks" warps the detector's
        # own points, without dlib's shape predictor)
        self.aligner = create_aligner(aligner or self.embedder.default_aligner)
        # a fused embedder's parts each see their own alignment (dlib's chip, ArcFace's template)
        parts = getattr(self.embedder, "parts", None)
        self._part_aligners = (
            [self.aligner if i == 0 else create_aligner(p.default_aligner) for i, p in enumerate(parts)]
            if parts is not None and aligner is None
            else None
        )
        # "auto": the learned quality model shipped for this embedder, else the heuristic (named in
        # every face's Quality.method); "heuristic"; or a model file (QualityModelError if unusable)
        self.quality_model = _quality_model(quality, self.embedder)

    def load(self) -> FaceAnalyzer:
        """Load both models now instead of on first use."""
        self.detector.load()
        self.aligner.load()
        for part_aligner in self._part_aligners or ():
            part_aligner.load()
        self.embedder.load()
        return self

    # -- detection, pose and quality --------------------------------------------------------

    def detect(self, image: ImageSource) -> list[Face]:
        """Faces with box, score, landmarks, pose and quality (no embedding), best first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageSource]) -> list[list[Face]]:
        faces, _crops = self._detect_and_align(self._load_all(images))
        return faces

    # -- embedding ----------------------------------------------------------------------------

    def analyze(self, image: ImageSource) -> list[Face]:
        """Like :meth:`detect`, plus ``face.embedding`` for every face."""
        return self.analyze_batch([image])[0]

    def analyze_batch(self, images: Sequence[ImageSource]) -> list[list[Face]]:
        """Every image's faces, embedded together in batches (the fast path for many images)."""
        pixels = self._load_all(images)
        faces, crops = self._detect_and_align(pixels)
        flat = [crop for per_image in crops for crop in per_image]
        if not flat:
            return faces
        vectors, mirrored = self.embed_aligned(pixels, faces, np.stack(flat), mirror=self._needs_mirror)
        learned = self._learned_scores([f for per_image in faces for f in per_image], flat, vectors, mirrored)
        out, k = [], 0
        for per_image in faces:
            out.append(
                [
                    self._with_learned(dataclasses.replace(f, embedding=vectors[k + i]), learned, k + i)
                    for i, f in enumerate(per_image)
                ]
            )
            k += len(per_image)
        return out

    @property
    def _needs_mirror(self) -> bool:
        return self.quality_model is not None and self.quality_model.needs_mirror

    def _learned_scores(
        self, faces: Sequence[Face], crops: Sequence[np.ndarray], vectors: np.ndarray, mirrored: np.ndarray | None
    ) -> Any:
        """The learned quality of each embedded face (None: the heuristic stays); ``mirrored``: the
        embeddings of the crops' mirror images, when the model reads the face/mirror agreement."""
        if self.quality_model is None or not len(faces):
            return None
        import cv2

        from faceatlas.learned_quality import measurements

        if any(f.quality is None or f.pose is None for f in faces):
            return None
        measured = np.stack(
            [
                measurements(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), f.landmarks, f.pose, f.quality)  # type: ignore[arg-type]
                for f, crop in zip(faces, crops, strict=True)
            ]
        )
        mirror = None
        if mirrored is not None:
            mirror = np.einsum("ij,ij->i", np.asarray(vectors, np.float32), np.asarray(mirrored, np.float32))
        return self.quality_model.score(self.quality_model.features(measured, mirror))

    def _with_learned(self, face: Face, learned: Any, k: int) -> Face:
        if learned is None or face.quality is None or self.quality_model is None:
            return face
        from faceatlas.learned_quality import with_learned

        return dataclasses.replace(face, quality=with_learned(face.quality, learned[k], self.quality_model.method))

    def embed_faces(self, image: ImageSource, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings (len(faces), dim) for faces already found in ``image`` (reuses detection)."""
        if not faces:
            return np.empty((0, self.embedder.dim), dtype=np.float32)
        pixels = load_image(image)
        return self.embed_aligned([pixels], [list(faces)], self.aligner.align(pixels, faces))[0]

    def face_at(self, image: ImageSource, box: Sequence[float]) -> Face:
        """The face inside a box someone drew (``xyxy`` pixels of the EXIF-rotated image), embedded:
        a face the detector missed. Its landmarks are those of a detection found in the box's
        neighbourhood (the crop around it, enlarged to the detector's favourite size) that overlaps
        the box, else placed in the box as ArcFace's template places them; ``score`` is that
        detection's (0.0: none found, and the face is aligned from the box alone).
        InvalidArgumentError: a box that is not four finite numbers, or has no area in the image."""
        pixels = load_image(image)
        height, width = pixels.shape[:2]
        x1, y1, x2, y2 = _drawn_box(box, width, height)
        found = self._detect_near(pixels, (x1, y1, x2, y2))
        drawn = Box(x1, y1, x2, y2)
        best = max(found, key=lambda face: face.box.iou(drawn), default=None)
        if best is not None and best.box.iou(drawn) >= _DRAWN_MATCH_IOU:
            landmarks, score = best.landmarks, float(best.score)
        else:
            template = np.asarray(_BOX_TEMPLATE, dtype=np.float32)
            points = np.stack([x1 + template[:, 0] * (x2 - x1), y1 + template[:, 1] * (y2 - y1)], axis=1)
            landmarks, score = Landmarks(points), 0.0
        face = Face(drawn, score, landmarks)
        crop = self.aligner.align(pixels, [face])[0]
        pose = estimate_pose(landmarks, (width, height))
        # the person who drew it is sure it is a face: the detector's doubt is not the quality's
        quality = assess_quality(crop, landmarks, pose, max(score, 0.5))
        face = dataclasses.replace(face, pose=pose, quality=quality)
        vectors, mirrored = self.embed_aligned([pixels], [[face]], crop[None], mirror=self._needs_mirror)
        learned = self._learned_scores([face], [crop], vectors, mirrored)
        return self._with_learned(dataclasses.replace(face, embedding=vectors[0]), learned, 0)

    def _detect_near(self, pixels: np.ndarray, box: tuple[float, float, float, float]) -> list[Face]:
        """Detections in the neighbourhood of ``box``, in the image's pixels: the crop around it is
        scaled so the box is ~160 pixels, where detectors find faces best, small ones included."""
        import cv2

        x1, y1, x2, y2 = box
        height, width = pixels.shape[:2]
        side = max(x2 - x1, y2 - y1)
        margin = 0.6 * side
        cx1, cy1 = int(max(0, x1 - margin)), int(max(0, y1 - margin))
        cx2, cy2 = int(min(width, x2 + margin + 1)), int(min(height, y2 + margin + 1))
        scale = float(np.clip(160.0 / max(side, 1.0), 0.25, 6.0))
        crop = cv2.resize(pixels[cy1:cy2, cx1:cx2], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        out = []
        for face in self.detector.detect_batch([np.ascontiguousarray(crop)])[0]:
            b = face.box
            back = Box(b.x1 / scale + cx1, b.y1 / scale + cy1, b.x2 / scale + cx1, b.y2 / scale + cy1)
            points = np.asarray(face.landmarks.points) / scale + np.array([cx1, cy1], dtype=np.float32)
            out.append(Face(back, face.score, Landmarks(points)))
        return out

    def embed_aligned(
        self, pixels: Sequence[np.ndarray], faces: Sequence[Sequence[Face]], crops: np.ndarray, mirror: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The embeddings of ``faces`` (per image of ``pixels``) from ``crops``, their crops by
        :attr:`aligner` in that order; with ``mirror``, also those of the crops' mirror images (else
        None). A fused embedder's further parts align the faces again, each its own way."""

        def both(embedder: Any, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            if not mirror:
                return embedder.embed(batch), None
            vectors = embedder.embed(np.concatenate([batch, batch[:, :, ::-1]]))  # one batch: face, then mirror
            return vectors[: len(batch)], vectors[len(batch) :]

        if self._part_aligners is None:
            return both(self.embedder, crops)
        fused: Any = self.embedder
        parts = []
        for k, (part, part_aligner) in enumerate(zip(fused.parts, self._part_aligners, strict=True)):
            if k:
                crops = np.concatenate([part_aligner.align(im, f) for im, f in zip(pixels, faces, strict=True)])
            parts.append(both(part, crops))
        flipped = fused.combine([f for _, f in parts]) if mirror else None
        return fused.combine([v for v, _ in parts]), flipped

    # -- internals ------------------------------------------------------------------------------

    @staticmethod
    def _load_all(images: Sequence[ImageSource]) -> list[np.ndarray]:
        if isinstance(images, (str, bytes, os.PathLike, np.ndarray)):
            raise TypeError("detect_batch/analyze_batch take a sequence of images; use detect/analyze for one")
        return [load_image(image) for image in images]

    def _detect_and_align(self, pixels: list[np.ndarray]) -> tuple[list[list[Face]], list[list[np.ndarray]]]:
        detections = self.detector.detect_batch(pixels)
        all_faces, all_crops = [], []
        for image, found in zip(pixels, detections, strict=True):
            height, width = image.shape[:2]
            crops = list(self.aligner.align(image, found))
            faces = []
            for face, crop in zip(found, crops, strict=True):
                pose = estimate_pose(face.landmarks, (width, height))
                quality = assess_quality(crop, face.landmarks, pose, face.score)
                faces.append(dataclasses.replace(face, pose=pose, quality=quality))
            all_faces.append(faces)
            all_crops.append(crops)
        return all_faces, all_crops


def _quality_model(choice: str | os.PathLike[str], embedder: Any) -> Any:
    """The learned quality model ``choice`` names for ``embedder`` (None: the heuristic)."""
    from faceatlas.learned_quality import QualityModel, card_key, shipped_model

    card = getattr(embedder, "card", None)
    if choice == "heuristic":
        return None
    if choice == "auto":
        return shipped_model(card) if card is not None else None
    return QualityModel.load(choice, embedder=card_key(card))


#: ArcFace's five points in its 112-pixel crop, as fractions of the crop: where landmarks go in a
#: drawn box when no detection is found there (the crop is about a face box, loosely)
_BOX_TEMPLATE = (
    (0.3419, 0.4616), (0.6565, 0.4598), (0.5003, 0.6405), (0.3710, 0.8247), (0.6315, 0.8232),
)  # fmt: skip
_DRAWN_MATCH_IOU = 0.3  # a detection this close to a drawn box is the face drawn (boxes are drawn loosely)


def _drawn_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A drawn box checked and clipped to the image: four finite numbers with area inside it."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"a box is four numbers x1, y1, x2, y2, got {box!r}") from None
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise InvalidArgumentError(f"a box's coordinates must be finite, got {box!r}")
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if cx2 - cx1 < 4 or cy2 - cy1 < 4:
        raise InvalidArgumentError(
            f"the box {x1:g},{y1:g},{x2:g},{y2:g} has no face-sized area inside the {width}x{height} image "
            "(boxes are x1,y1,x2,y2 pixels of the photo as displayed)"
        )
    return cx1, cy1, cx2, cy2


def primary_face(
    faces: Sequence[Face],
    image_size: tuple[int, int] | None = None,
    strategy: Literal["largest", "central"] = "largest",
) -> Face | None:
    """The face a one-face operation should use: the largest, or the one nearest the centre.

    ``"central"`` suits datasets whose images are framed on one subject (LFW); it weighs the
    distance from the centre by the face's size so a big background face does not win.
    """
    if not faces:
        return None
    if strategy == "largest":
        return max(faces, key=lambda f: f.box.area)
    if image_size is None:
        raise InvalidArgumentError("strategy='central' needs image_size=(width, height)")
    cx, cy = image_size[0] / 2.0, image_size[1] / 2.0

    def off_centre(face: Face) -> float:
        fx, fy = face.box.center
        return float(np.hypot(fx - cx, fy - cy)) / max(np.sqrt(face.box.area), 1.0)

    return min(faces, key=off_centre)

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
from faceatlas.types import Face

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
        if self._part_aligners is None:
            vectors = self.embedder.embed(np.stack(flat))
        else:
            vectors = self._fused(pixels, faces, np.stack(flat))
        out, k = [], 0
        for per_image in faces:
            out.append([dataclasses.replace(f, embedding=vectors[k + i]) for i, f in enumerate(per_image)])
            k += len(per_image)
        return out

    def embed_faces(self, image: ImageSource, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings (len(faces), dim) for faces already found in ``image`` (reuses detection)."""
        if not faces:
            return np.empty((0, self.embedder.dim), dtype=np.float32)
        pixels = load_image(image)
        crops = self.aligner.align(pixels, faces)
        if self._part_aligners is None:
            return self.embedder.embed(crops)
        return self._fused([pixels], [list(faces)], crops)

    def _fused(self, pixels: Sequence[np.ndarray], faces: Sequence[Sequence[Face]], first: np.ndarray) -> np.ndarray:
        """A fused embedder's vectors: each part embeds the faces aligned its own way."""
        embedder: Any = self.embedder
        part_vectors = []
        for k, (part, part_aligner) in enumerate(zip(embedder.parts, self._part_aligners or (), strict=True)):
            if k == 0:
                crops = first
            else:
                crops = np.concatenate([part_aligner.align(im, f) for im, f in zip(pixels, faces, strict=True)])
            part_vectors.append(part.embed(crops))
        return embedder.combine(part_vectors)

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

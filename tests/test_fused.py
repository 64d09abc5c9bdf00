"""Fused embedders: several models scored as one, each part aligned its own way."""

from __future__ import annotations

import numpy as np
import pytest
from byo_graphs import arcface

import faceatlas
from faceatlas.embedders.fused import FusedEmbedder
from faceatlas.errors import InvalidArgumentError, ModelError


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fused")
    a = arcface(folder / "a.onnx", dim=256, size=112, seed=1)
    b = arcface(folder / "b.onnx", dim=128, size=128, seed=2)
    return str(a), str(b)


def test_the_fused_cosine_is_the_weighted_sum_of_the_parts_cosines(parts):
    fused = FusedEmbedder(parts, weights=(3.0, 1.0))
    assert fused.weights == (0.75, 0.25) and fused.dim == 384
    rng = np.random.default_rng(0)
    unit = lambda n, d: (v := rng.normal(size=(n, d))) / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    a1, a2, b1, b2 = unit(5, 256), unit(5, 256), unit(5, 128), unit(5, 128)
    x, y = fused.combine([a1, b1]), fused.combine([a2, b2])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)
    expected = 0.75 * (a1 * a2).sum(1) + 0.25 * (b1 * b2).sum(1)
    np.testing.assert_allclose((x * y).sum(1), expected, atol=1e-5)


def test_the_pipeline_aligns_each_part_its_own_way(parts, astronaut):
    fused = faceatlas.FaceAnalyzer(embedder=FusedEmbedder(parts))
    (face,) = fused.analyze(astronaut)
    singles = [faceatlas.FaceAnalyzer(embedder=p).analyze(astronaut)[0].embedding for p in parts]
    np.testing.assert_allclose(face.embedding, fused.embedder.combine([s[None] for s in singles])[0], atol=1e-5)
    # embedding faces already found gives the same vector
    np.testing.assert_allclose(fused.embed_faces(astronaut, [face])[0], face.embedding, atol=1e-5)
    # parts with different crops cannot be fed one crop array
    with pytest.raises(InvalidArgumentError, match="align faces differently"):
        fused.embedder.embed(np.zeros((1, 112, 112, 3), np.uint8))


def test_an_unregistered_combination_gets_an_uncalibrated_card_naming_its_parts(parts):
    card = FusedEmbedder(parts).card
    assert card.embedding_dim == 384 and not card.thresholds
    assert card.name.count("+") == 1 and "w=0.5000/0.5000" in card.version
    with pytest.raises(ModelError, match="calibrat"):
        card.threshold_for(1e-3)


def test_bad_parts_and_weights_are_refused(parts):
    with pytest.raises(InvalidArgumentError, match="at least two"):
        FusedEmbedder(parts[:1])
    with pytest.raises(InvalidArgumentError, match="positive"):
        FusedEmbedder(parts, weights=(1.0, -1.0))
    with pytest.raises(InvalidArgumentError, match="2 positive"):
        FusedEmbedder(parts, weights=(1.0,))


def test_the_registered_fusion_is_calibrated_and_honest_about_its_terms():
    card = faceatlas.get_card("dlib_resnet+facenet")
    assert card.thresholds and card.embedding_dim == 256
    assert "MS-Celeb-1M" in card.license and "CC0" in card.license
    fused = faceatlas.create_embedder("dlib_resnet+facenet")
    assert fused.card is card  # the registered weights are the calibrated ones


def test_a_learned_quality_model_reads_the_fused_face_and_its_mirror_through_every_part(parts, astronaut, tmp_path):
    import dataclasses

    from faceatlas.learned_quality import MODELS, QualityModel, QualityModelError, card_key, model_file

    fused = FusedEmbedder(parts)
    key = card_key(fused.card)
    assert "/" in key and "/" not in model_file(key) and ";" not in model_file(key)  # a file name, the key inside exact
    model = dataclasses.replace(QualityModel.load(MODELS / "dlib_resnet-1.npz"), embedder=key)
    model.save(tmp_path / model_file(key))
    analyzer = faceatlas.FaceAnalyzer(embedder=fused, quality=tmp_path / model_file(key))
    (face,) = analyzer.analyze(astronaut)
    assert face.quality.method == f"learned:{key}" and face.quality.heuristic is not None
    # the mirror the model reads is each part's own crop, flipped, then fused
    crops = analyzer.aligner.align(astronaut, [face])
    vectors, mirrored = analyzer.embed_aligned([astronaut], [[face]], crops, mirror=True)
    by_part = []
    for part in fused.parts:
        crop = faceatlas.FaceAnalyzer(embedder=part).aligner.align(astronaut, [face])
        by_part.append(part.embed(np.ascontiguousarray(crop[:, :, ::-1])))
    np.testing.assert_allclose(mirrored, fused.combine(by_part), atol=1e-5)
    np.testing.assert_allclose(vectors[0], face.embedding, atol=1e-5)
    assert analyzer.embed_aligned([astronaut], [[face]], crops)[1] is None
    with pytest.raises(QualityModelError, match="trained for the embedder"):
        faceatlas.FaceAnalyzer(embedder=fused, quality=MODELS / "dlib_resnet-1.npz")
    # no model ships for this unregistered fusion: the heuristic, by name
    assert faceatlas.FaceAnalyzer(embedder=fused).analyze(astronaut)[0].quality.method == "heuristic"

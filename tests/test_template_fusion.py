"""faceatlas.templates: how a person's (or a track's) faces become one template."""

from __future__ import annotations

import numpy as np
import pytest

from faceatlas.errors import InvalidArgumentError
from faceatlas.gallery.gallery import _Templates, person_templates
from faceatlas.templates import FUSIONS, PER_FACE, RunningTemplate, fuse, fuse_groups, fusion_weights
from faceatlas.types import FaceMatrix


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _near(centre: np.ndarray, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors scattered ``spread`` around ``centre``."""
    return _unit(centre + spread * rng.standard_normal((n, len(centre))))


@pytest.fixture
def views() -> tuple[np.ndarray, np.ndarray]:
    """Two views of one person (cosine about 0.7 apart), as unit vectors."""
    rng = np.random.default_rng(0)
    a = _unit(rng.standard_normal(128))
    b = _unit(a + 0.9 * _unit(rng.standard_normal(128)))
    return a, b


@pytest.mark.parametrize("method", FUSIONS)
def test_one_face_is_its_own_template(method):
    face = _unit(np.random.default_rng(1).standard_normal((1, 64)))
    np.testing.assert_allclose(fuse(face, np.array([0.4]), method), face[0], atol=1e-6)


@pytest.mark.parametrize("method", FUSIONS)
def test_templates_are_unit_float32(method):
    faces = _unit(np.random.default_rng(2).standard_normal((7, 32)))
    t = fuse(faces, np.linspace(0.2, 0.9, 7), method)
    assert t.dtype == np.float32 and t.shape == (32,)
    assert abs(float(np.linalg.norm(t)) - 1.0) < 1e-5


def test_quality_mean_is_the_floored_weighted_mean():
    faces = _unit(np.random.default_rng(3).standard_normal((4, 16)))
    q = np.array([0.9, 0.1, 0.0, 0.5])
    expected = _unit((np.maximum(q, 1e-3)[:, None] * faces).sum(axis=0))
    np.testing.assert_allclose(fuse(faces, q, "quality_mean"), expected, atol=1e-6)


def test_cluster_gives_each_view_a_vote_where_the_mean_follows_the_burst(views):
    a, b = views
    rng = np.random.default_rng(4)
    faces = np.vstack([_near(a, 12, 0.01, rng), _near(b, 2, 0.01, rng)])  # a burst of one view, two of another
    q = np.full(len(faces), 0.8)
    plain = fuse(faces, q, "quality_mean")
    balanced = fuse(faces, q, "cluster", alpha=0.0, distance=0.1)
    assert plain @ a - plain @ b > 0.15  # the burst outvotes the other view
    assert abs(balanced @ a - balanced @ b) < 0.02  # one vote per view
    np.testing.assert_allclose(fuse(faces, q, "cluster", alpha=1.0, distance=0.1), plain, atol=1e-6)


def test_robust_mean_discounts_a_mislabelled_face(views):
    a, _b = views
    rng = np.random.default_rng(5)
    stranger = _unit(rng.standard_normal(128))
    faces = np.vstack([_near(a, 5, 0.02, rng), stranger])
    q = np.array([0.5] * 5 + [0.9])  # the mislabel even looks best
    assert fuse(faces, q, "robust") @ a > fuse(faces, q, "quality_mean") @ a + 0.02
    w = fusion_weights(faces, q, "robust")
    assert w[-1] < 0.01 * w[:5].min()


def test_a_cold_softmax_keeps_the_best_face():
    faces = _unit(np.random.default_rng(6).standard_normal((5, 16)))
    q = np.array([0.3, 0.9, 0.5, 0.6, 0.2])
    assert fuse(faces, q, "quality_softmax", temperature=0.01) @ faces[1] > 0.999


def test_bad_input_is_a_typed_error():
    faces = _unit(np.random.default_rng(7).standard_normal((3, 8)))
    with pytest.raises(InvalidArgumentError, match="n >= 1"):
        fuse(faces[:0])
    with pytest.raises(InvalidArgumentError, match="one quality per embedding"):
        fuse(faces, np.ones(2))
    with pytest.raises(InvalidArgumentError, match="fusion must be one of"):
        fuse(faces, None, "median")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="fusion must be one of"):
        RunningTemplate("median")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", FUSIONS)
def test_groups_and_running_templates_fuse_as_fuse_does(method):
    rng = np.random.default_rng(8)
    faces = _unit(rng.standard_normal((40, 16))).astype(np.float32)
    q = rng.uniform(0, 1, 40).astype(np.float32)
    owners = rng.integers(10, 15, 40)
    ids, templates = fuse_groups(faces, q, owners, method)
    assert ids.tolist() == sorted(set(owners.tolist()))
    for person, template in zip(ids, templates, strict=True):
        mine = owners == person
        np.testing.assert_allclose(template, fuse(faces[mine], q[mine], method), atol=1e-5)
        running = RunningTemplate(method)
        for face, quality in zip(faces[mine], q[mine], strict=True):
            running.add(face, float(quality))
        np.testing.assert_allclose(running.template(), template, atol=1e-5)
    assert RunningTemplate(method).template().shape == (0,)
    assert ("cluster" in PER_FACE) is False


def test_gallery_templates_follow_changes_as_a_rebuild_does():
    rng = np.random.default_rng(9)
    faces = _unit(rng.standard_normal((30, 16))).astype(np.float32)
    matrix = FaceMatrix(np.arange(30), rng.integers(1, 8, 30), faces, rng.uniform(0, 1, 30).astype(np.float32))
    kept = _Templates(matrix)
    # person 3 loses their faces, person 5 gains one, person 99 is new
    keep = matrix.person_ids != 3
    ids = np.r_[matrix.person_ids[keep], 5, 99]
    changed = FaceMatrix(
        np.r_[matrix.face_ids[keep], 30, 31],
        ids,
        np.vstack([faces[keep], _unit(rng.standard_normal((2, 16)))]).astype(np.float32),
        np.r_[matrix.qualities[keep], 0.7, 0.2].astype(np.float32),
    )
    kept.update(changed, np.array([3, 5, 99]))
    want_ids, want = person_templates(changed)
    assert kept.person_ids.tolist() == want_ids.tolist()
    np.testing.assert_allclose(kept.templates, want, atol=1e-6)

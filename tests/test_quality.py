import cv2
import numpy as np
import pytest

from faceatlas.quality import assess_quality, exposure_component, pose_component, sharpness_component, size_component
from faceatlas.types import Landmarks, Pose


def test_components_move_the_right_way(analyzer, grace_hopper):
    from faceatlas.align import align_face

    face = analyzer.detect(grace_hopper)[0]
    crop = align_face(grace_hopper, face.landmarks)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    assert sharpness_component(cv2.GaussianBlur(grey, (0, 0), 3)) < sharpness_component(grey) - 0.3
    assert exposure_component((grey * 0.15).astype(np.uint8)) < exposure_component(grey) - 0.3
    assert exposure_component(np.full_like(grey, 128)) < 0.1  # flat: no contrast
    assert pose_component(Pose(60, 0, 0)) < pose_component(Pose(15, 0, 0)) < pose_component(Pose(0, 0, 0)) == 1.0
    tiny = Landmarks(face.landmarks.points * 0.1)
    assert size_component(tiny) < 0.1 and size_component(face.landmarks) == 1.0


def test_score_is_in_range_and_pulled_down_by_one_bad_component(analyzer, grace_hopper):
    from faceatlas.align import align_face

    face = analyzer.detect(grace_hopper)[0]
    crop = align_face(grace_hopper, face.landmarks)
    good = assess_quality(crop, face.landmarks, Pose(0, 0, 0), 0.99)
    blurred = assess_quality(cv2.GaussianBlur(crop, (0, 0), 4), face.landmarks, Pose(0, 0, 0), 0.99)
    profile = assess_quality(crop, face.landmarks, Pose(80, 0, 0), 0.99)
    assert 0.8 < good.score <= 1.0
    assert blurred.score < good.score - 0.2 and profile.score < good.score - 0.3
    for q in (good, blurred, profile):
        assert all(0.0 <= v <= 1.0 for v in q.components().values())


def test_downscaled_face_scores_lower_end_to_end(analyzer, grace_hopper):
    small = cv2.resize(grace_hopper, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    big_face = analyzer.detect(grace_hopper)[0]
    small_faces = analyzer.detect(small)
    if not small_faces:
        pytest.fail("the downscaled face (about 25 px) should still be detected")
    assert small_faces[0].quality.score < big_face.quality.score - 0.2
    assert small_faces[0].quality.size < 0.6

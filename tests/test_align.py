import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from faceatlas.align import DLIB_RESNET_ALIGN, align_face, alignment_matrix, dlib_template, similarity_transform


@settings(max_examples=200, deadline=None)
@given(
    angle=st.floats(-180, 180),
    scale=st.floats(0.05, 20),
    tx=st.floats(-1000, 1000),
    ty=st.floats(-1000, 1000),
)
def test_similarity_transform_recovers_a_known_similarity(angle, scale, tx, ty):
    src = dlib_template().astype(np.float64)
    theta = np.radians(angle)
    true = np.array([[scale * np.cos(theta), -scale * np.sin(theta), tx], [scale * np.sin(theta), scale * np.cos(theta), ty]])
    dst = src @ true[:, :2].T + true[:, 2]
    found = similarity_transform(src, dst)
    np.testing.assert_allclose(found, true, atol=1e-6 * max(1.0, scale, abs(tx), abs(ty)))


@settings(max_examples=100, deadline=None)
@given(angle=st.floats(-90, 90), scale=st.floats(0.2, 5), shift=st.floats(-50, 50))
def test_alignment_maps_landmarks_onto_the_template(angle, scale, shift):
    template = DLIB_RESNET_ALIGN.template.astype(np.float64)
    theta = np.radians(angle)
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    landmarks = template @ rot.T + shift + 300
    matrix = alignment_matrix(landmarks)
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, template, atol=1e-6 * max(1.0, scale))


def test_similarity_rejects_degenerate_points():
    import pytest

    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), dlib_template())


def test_aligned_crop_puts_the_marked_points_where_the_template_says():
    # Paint five dots at known landmark positions of a rotated, scaled face; after alignment
    # the dots must sit on the template points.
    template = DLIB_RESNET_ALIGN.template.astype(np.float64)
    theta = np.radians(25)
    rot = 2.2 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    landmarks = template @ rot.T + [120, 60]
    image = np.zeros((600, 600, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 6, (255, 255, 255), -1)
    crop = align_face(image, landmarks)
    assert crop.shape == (150, 150, 3) and crop.dtype == np.uint8
    for x, y in template:
        assert crop[round(y), round(x)].mean() > 200


def test_big_faces_are_area_averaged_not_aliased():
    # A fine checkerboard on a huge face averages to grey in the crop instead of aliasing.
    template = DLIB_RESNET_ALIGN.template.astype(np.float64)
    landmarks = template * 8 + 50  # face ~8x larger than the crop
    image = np.indices((1400, 1400)).sum(0) % 2 * 255
    image = np.repeat(image[..., None], 3, axis=2).astype(np.uint8)
    crop = align_face(image, landmarks)
    assert abs(float(crop.mean()) - 127.5) < 10
    assert float(crop.std()) < 25

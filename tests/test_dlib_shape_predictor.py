"""dlib's 5-point shape predictor in numpy gives dlib's own landmarks.

The reference is dlib itself (``dlib-bin``, a test dependency): ``dlib.shape_predictor`` on the
same RGB image and ``dlib.rectangle``. dlib returns integer pixel positions, so agreement
within the tolerance means identical landmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceatlas.errors import ModelError
from faceatlas.models import dlib_shape_predictor as dsp
from faceatlas.models.dlib_shape_predictor import (
    ShapePredictor,
    ShapePredictorModel,
    dlib_gray,
    read_shape_predictor,
    shape_predictor_5_path,
)

TOLERANCE = 1e-3  # px; dlib's points are integers, so this means "identical"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW_IMAGES = SHARED_DATA / "lfw_devtest" / "images"
N_LFW = 20

# Boxes whose feature pixels land exactly on a half pixel at some cascade level: there the
# rounding follows the few-ulp errors of dlib's box transform (see _DLIB_PINV_P), and an exact
# transform would give other landmarks.
ASTRONAUT_TIE_BOXES = [(175, -97, 431, 159), (143, -149, 655, 363)]
GRACE_HOPPER_TIE_BOXES = [(-354, 288, 670, 1312), (70, -300, 1094, 724), (222, -236, 734, 276)]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return shape_predictor_5_path()
    except ModelError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def model(weights: Path) -> ShapePredictorModel:
    return read_shape_predictor(weights)


@pytest.fixture(scope="module")
def predictor(model: ShapePredictorModel) -> ShapePredictor:
    return ShapePredictor(model)


@pytest.fixture(scope="module")
def dlib():
    return pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def dlib_predictor(dlib, weights: Path):
    return dlib.shape_predictor(str(weights))


@pytest.fixture(scope="module")
def detector(dlib):
    return dlib.get_frontal_face_detector()


def dlib_points(dlib, dlib_predictor, rgb: np.ndarray, box) -> np.ndarray:
    shape = dlib_predictor(rgb, dlib.rectangle(*(int(v) for v in box)))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def detected_boxes(detector, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    return [(d.left(), d.top(), d.right(), d.bottom()) for d in detector(rgb, 1)]


def perturbed(box, shape) -> list[tuple[int, int, int, int]]:
    """Shifted, scaled and partly-outside versions of a box."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    img_h, img_w = shape[:2]
    out = [
        (left + w // 7, top - h // 9, right + w // 7, bottom - h // 9),  # shifted
        (left - w // 5, top - h // 5, right + w // 5, bottom + h // 5),  # larger
        (left + w // 6, top + h // 6, right - w // 6, bottom - h // 6),  # smaller
        (left, top, left + 2 * w // 3, bottom),  # narrow
        (-w // 2, top, w // 2, bottom),  # half out on the left
        (img_w - w // 3, img_h - h // 3, img_w - w // 3 + w, img_h - h // 3 + h),  # mostly out
        (left - 1000, top - 1000, left - 1000 + w, top - 1000 + h),  # all out
        (left, top, left + 256, top + 256),  # a power-of-two size
    ]
    return out


def check_against_dlib(dlib, dlib_predictor, predictor, rgb, boxes) -> float:
    gray = dlib_gray(rgb)
    worst = 0.0
    ours_all = predictor.predict_many(gray, boxes)
    for box, ours in zip(boxes, ours_all):
        ref = dlib_points(dlib, dlib_predictor, rgb, box)
        diff = float(np.abs(ours - ref).max())
        assert diff <= TOLERANCE, f"box {box}: max |ours - dlib| = {diff} px\nours {ours.tolist()}\ndlib {ref.tolist()}"
        worst = max(worst, diff)
    return worst


# -- reading ----------------------------------------------------------------------------------


def test_model_layout(model: ShapePredictorModel) -> None:
    assert model.num_parts == 5
    assert model.num_cascades == 15
    assert model.trees_per_cascade == 500
    assert model.tree_depth == 4
    assert model.num_feature_pixels == 800
    assert model.split_idx1.shape == model.split_thresh.shape == (15, 500, 15)
    assert model.leaf_values.shape == (15, 500, 16, 5, 2)
    assert model.deltas.shape == (15, 800, 2)
    assert ((model.initial_shape > 0) & (model.initial_shape < 1)).all()
    assert np.isfinite(model.split_thresh).all() and np.isfinite(model.leaf_values).all()
    assert not model.leaf_values.flags.writeable


def test_tokenizer_matches_a_sequential_walk(weights: Path) -> None:
    data = weights.read_bytes()
    expected, pos = [], 0
    while pos < len(data):
        expected.append(pos)
        pos += 1 + (data[pos] & 15)
    starts, end = dsp._token_starts(np.frombuffer(data, np.uint8))
    assert end == pos == len(data)
    np.testing.assert_array_equal(starts, expected)


def test_first_fields_match_dlib_format_reader(weights: Path, model: ShapePredictorModel) -> None:
    from faceatlas.models.dlib_format import DlibReader

    r = DlibReader(weights.read_bytes(), str(weights))
    assert r.read_int() == 1  # version
    assert (r.read_int(), r.read_int()) == (-10, -1)  # matrix<float,0,1>: negated nr, nc
    initial = [r.read_float() for _ in range(10)]
    np.testing.assert_array_equal(model.initial_shape.reshape(-1), np.float32(initial))
    assert r.read_uint() == 15 and r.read_uint() == 500 and r.read_uint() == 15  # levels, trees, splits
    idx1, idx2, thresh = r.read_uint(), r.read_uint(), r.read_float()
    assert (model.split_idx1[0, 0, 0], model.split_idx2[0, 0, 0]) == (idx1, idx2)
    assert model.split_thresh[0, 0, 0] == np.float32(thresh)


@pytest.mark.parametrize("cut", [0, 1, 5, 1000, -1000, -3, -1])
def test_truncated_file_raises_model_error(weights: Path, cut: int) -> None:
    data = weights.read_bytes()
    with pytest.raises(ModelError, match="truncated|end of data"):
        read_shape_predictor(data[:cut] if cut else b"")


def test_truncated_at_random_offsets_raises_model_error(weights: Path) -> None:
    data = weights.read_bytes()
    for cut in np.random.default_rng(0).integers(1, len(data), 8):
        with pytest.raises(ModelError):
            read_shape_predictor(data[: int(cut)])


def test_corrupt_files_raise_model_error(weights: Path, tmp_path: Path) -> None:
    data = weights.read_bytes()
    with pytest.raises(ModelError, match="trailing"):
        read_shape_predictor(data + b"\x01\x00")
    with pytest.raises(ModelError, match="version"):
        read_shape_predictor(b"\x01\x02" + data[2:])
    with pytest.raises(ModelError):
        read_shape_predictor(b"not a dlib file at all")
    with pytest.raises(ModelError, match="cannot read"):
        read_shape_predictor(tmp_path / "missing.dat")


# -- grayscale --------------------------------------------------------------------------------


def test_dlib_gray_is_dlibs(dlib, astronaut: np.ndarray) -> None:
    np.testing.assert_array_equal(dlib_gray(astronaut), dlib.as_grayscale(astronaut))
    rgb = np.array([[[255, 255, 255], [1, 1, 0], [2, 2, 2], [10, 20, 31]]], np.uint8)
    np.testing.assert_array_equal(dlib_gray(rgb), [[255, 0, 2, 20]])  # truncating mean
    with pytest.raises(ValueError):
        dlib_gray(astronaut.astype(np.float32))


# -- against dlib -----------------------------------------------------------------------------


def test_matches_dlib_on_astronaut(dlib, dlib_predictor, detector, predictor, astronaut) -> None:
    boxes = detected_boxes(detector, astronaut)
    assert boxes, "dlib finds the astronaut's face"
    boxes += [b for box in boxes for b in perturbed(box, astronaut.shape)]
    boxes += ASTRONAUT_TIE_BOXES
    assert check_against_dlib(dlib, dlib_predictor, predictor, astronaut, boxes) == 0


def test_matches_dlib_on_grace_hopper(dlib, dlib_predictor, detector, predictor, grace_hopper) -> None:
    boxes = detected_boxes(detector, grace_hopper)
    assert boxes, "dlib finds Grace Hopper's face"
    boxes += [b for box in boxes for b in perturbed(box, grace_hopper.shape)]
    boxes += GRACE_HOPPER_TIE_BOXES
    assert check_against_dlib(dlib, dlib_predictor, predictor, grace_hopper, boxes) == 0


def test_matches_dlib_on_random_boxes(dlib, dlib_predictor, predictor, astronaut, grace_hopper) -> None:
    rng = np.random.default_rng(1)
    for rgb in (astronaut, grace_hopper):
        h, w = rgb.shape[:2]
        boxes = []
        for _ in range(40):
            size = int(rng.integers(8, 2 * max(h, w)))
            left, top = int(rng.integers(-size, w)), int(rng.integers(-size, h))
            boxes.append((left, top, left + size, top + int(size * rng.uniform(0.6, 1.5))))
        boxes += [(0, 0, 0, 0), (10, 10, 10, 200), (50, 60, 40, 30)]  # degenerate and inverted
        check_against_dlib(dlib, dlib_predictor, predictor, rgb, boxes)


def test_tie_boxes_need_dlibs_box_transform(
    dlib, dlib_predictor, predictor, astronaut, grace_hopper, monkeypatch
) -> None:
    """With the exact inverse instead of dlib's pinv, the tie boxes give other landmarks."""
    monkeypatch.setattr(dsp, "_DLIB_PINV_P", np.array([[-1.0, 0, 1], [1, -1, 0], [0, 1, 0]]))
    for rgb, boxes in ((astronaut, ASTRONAUT_TIE_BOXES), (grace_hopper, GRACE_HOPPER_TIE_BOXES)):
        gray = dlib_gray(rgb)
        for box in boxes:
            ref = dlib_points(dlib, dlib_predictor, rgb, box)
            assert np.abs(predictor.predict(gray, box) - ref).max() >= 1, box


def test_matches_dlib_on_lfw(dlib, dlib_predictor, detector, predictor) -> None:
    if not LFW_IMAGES.is_dir():
        pytest.skip(f"development data not found at {LFW_IMAGES} (only the project's dev machines have it)")
    from faceatlas.image import load_image

    files = sorted(LFW_IMAGES.glob("*/*.jpg"))
    assert len(files) >= N_LFW
    picked = files[:: len(files) // N_LFW][:N_LFW]
    n_boxes = 0
    for path in picked:
        rgb = load_image(path)
        boxes = detected_boxes(detector, rgb) or [(68, 68, 181, 181)]
        boxes += [b for box in boxes[:1] for b in perturbed(box, rgb.shape)[:4]]
        check_against_dlib(dlib, dlib_predictor, predictor, rgb, boxes)
        n_boxes += len(boxes)
    assert n_boxes >= 5 * N_LFW


def test_gray_input_to_dlib_is_the_same(dlib, dlib_predictor, detector, astronaut) -> None:
    """dlib reads (r+g+b)//3 from RGB: giving it dlib_gray() changes nothing."""
    box = detected_boxes(detector, astronaut)[0]
    np.testing.assert_array_equal(
        dlib_points(dlib, dlib_predictor, astronaut, box),
        dlib_points(dlib, dlib_predictor, np.ascontiguousarray(dlib_gray(astronaut)), box),
    )


# -- API --------------------------------------------------------------------------------------


def test_predict_many_is_predict(predictor, astronaut) -> None:
    gray = dlib_gray(astronaut)
    boxes = [(170, 50, 290, 170), (150, 40, 300, 190), (-20, -20, 100, 100)]
    many = predictor.predict_many(gray, boxes)
    assert many.shape == (3, 5, 2) and many.dtype == np.float64
    for box, pts in zip(boxes, many):
        np.testing.assert_array_equal(predictor.predict(gray, box), pts)
    assert predictor.predict_many(gray, []).shape == (0, 5, 2)
    np.testing.assert_array_equal(predictor.predict_many(gray, np.array(boxes)), many)


def test_subpixel_rounds_to_predict(dlib, dlib_predictor, predictor, astronaut) -> None:
    gray = dlib_gray(astronaut)
    box = (170, 50, 290, 170)
    sub = predictor.predict(gray, box, subpixel=True)
    np.testing.assert_array_equal(np.floor(sub + 0.5), predictor.predict(gray, box))
    assert np.abs(sub - dlib_points(dlib, dlib_predictor, astronaut, box)).max() <= 0.5
    assert not np.array_equal(sub, np.round(sub))


def test_float_boxes(predictor, astronaut) -> None:
    gray = dlib_gray(astronaut)
    np.testing.assert_array_equal(
        predictor.predict(gray, (170.0, 50.0, 290.0, 170.0)), predictor.predict(gray, (170, 50, 290, 170))
    )
    # fractional corners are used as they are (dlib itself only takes integers); the cascade
    # is not continuous in the box, so only check that the result is sane
    pts = predictor.predict(gray, (170.25, 50.5, 290.75, 170.5), subpixel=True)
    assert np.isfinite(pts).all()
    assert (pts[:, 0] > 140).all() and (pts[:, 0] < 320).all() and (pts[:, 1] > 20).all() and (pts[:, 1] < 200).all()


def test_tree_walk_without_lookup_table(model, predictor, astronaut, monkeypatch) -> None:
    """The level-by-level walk (trees of more than 16 splits) gives the table's leaves."""
    monkeypatch.setattr(dsp, "_MAX_LUT_SPLITS", 0)
    walker = ShapePredictor(model)
    assert walker._lut is None
    gray = dlib_gray(astronaut)
    boxes = [(170, 50, 290, 170), (100, 0, 400, 300), *ASTRONAUT_TIE_BOXES]
    np.testing.assert_array_equal(walker.predict_many(gray, boxes), predictor.predict_many(gray, boxes))


def test_from_package_is_cached(weights: Path) -> None:
    a, b = ShapePredictor.from_package(), ShapePredictor.from_package()
    assert a.model is b.model
    assert a.num_parts == 5


def test_bad_inputs(predictor, astronaut) -> None:
    with pytest.raises(ValueError, match="grayscale"):
        predictor.predict(astronaut, (0, 0, 10, 10))
    with pytest.raises(ValueError, match="finite"):
        predictor.predict(dlib_gray(astronaut), (0, 0, float("nan"), 10))
    non_contiguous = dlib_gray(astronaut)[:, ::-1]
    np.testing.assert_array_equal(
        predictor.predict(non_contiguous, (170, 50, 290, 170)),
        predictor.predict(np.ascontiguousarray(non_contiguous), (170, 50, 290, 170)),
    )

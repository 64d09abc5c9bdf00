import onnxruntime as ort
import pytest

from faceatlas.errors import ModelError
from faceatlas.models import runtime


def test_cuda_is_preferred_when_this_onnxruntime_offers_it(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.default_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert runtime.default_providers() == ["CPUExecutionProvider"]


def test_sessions_are_shared_and_threads_configurable(tmp_path, monkeypatch):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    a = runtime.create_session(path)
    assert runtime.create_session(path) is a
    assert a.run(None, {"x": np.array([[-1.0, 2.0]], np.float32)})[0].tolist() == [[0.0, 2.0]]
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    assert runtime.create_session(path) is not a
    monkeypatch.setenv(runtime.THREADS_ENV, "many")
    with pytest.raises(ModelError, match="whole number"):
        runtime.create_session(path)


def test_unloadable_model_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="could not load"):
        runtime.create_session(bad)

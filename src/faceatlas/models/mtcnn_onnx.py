"""MTCNN's P-Net, R-Net and O-Net as ONNX graphs, built from the weights in the ``mtcnn`` package.

The ``mtcnn`` wheel (1.0, MIT) ships ``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``: ``joblib``
pickles holding the Keras weights of ``mtcnn/network/{pnet,rnet,onet}.py`` in layer order
(conv kernels HWIO, biases, PReLU alphas ``(1, 1, C)`` or ``(C,)``, dense kernels ``(in, out)``).
Importing ``mtcnn`` needs TensorFlow, so the files are located without importing it.

Graph contract (all three stages):

* input ``"image"``: float32 NCHW, RGB, **already normalised** as the package does,
  ``(pixel - 127.5) / 128``; the detector normalises in numpy so that the graphs are exactly the
  networks (and the numpy reference in the tests takes the same input).
* P-Net: fully convolutional, input ``(N, 3, H, W)`` with dynamic N, H, W (H, W >= 12); outputs
  ``"prob"`` ``(N, 2, h, w)``, the softmax over axis 1 (index 1 = face; computed as the sigmoid
  of the logit difference, the same thing for two classes but faster) and ``"bbox_reg"``
  ``(N, 4, h, w)`` (dx1, dy1, dx2, dy2 in units of the 12-pixel window), where
  ``h = ceil((H - 2) / 2) - 4`` and likewise ``w``; cell (i, j) sees input rows ``2i .. 2i + 11``.
* R-Net: input ``(N, 3, 24, 24)``; outputs ``"prob"`` ``(N, 2)`` and ``"bbox_reg"`` ``(N, 4)``.
* O-Net: input ``(N, 3, 48, 48)``; outputs ``"prob"`` ``(N, 2)``, ``"bbox_reg"`` ``(N, 4)`` and
  ``"landmarks"`` ``(N, 10)``: x1..x5 then y1..y5, as fractions of the input box, in the order
  of :data:`faceatlas.types.LANDMARK_NAMES` (eye on the image's left, eye on the image's right,
  nose tip, mouth corner on the image's left, on the image's right).

Keras details reproduced: "same" max-pools pad only at the end (ONNX ``ceil_mode=1`` does the
same), and R-Net / O-Net permute H and W before flattening (``Permute((2, 1, 3))``), so the dense
layers see (W, H, C) order — a leftover of the Caffe original, which ran on transposed images.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from faceatlas.errors import InvalidArgumentError, ModelError

CONVERTER_VERSION = "1"
OPSET = 17
STAGES: tuple[str, ...] = ("pnet", "rnet", "onet")
INPUT_SIZES: dict[str, int | None] = {"pnet": None, "rnet": 24, "onet": 48}
_PIP_FIX = 'pip install "mtcnn>=1.0" (only its weight files are used; TensorFlow is not needed)'


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise InvalidArgumentError(f"MTCNN stage must be one of {STAGES}, got {stage!r}")


def mtcnn_weights_path(stage: str) -> Path:
    """The ``.lz4`` weight file of ``stage`` inside the installed ``mtcnn`` package."""
    _check_stage(stage)
    spec = importlib.util.find_spec("mtcnn")  # finds the package without importing TensorFlow
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the MTCNN weights come from the 'mtcnn' package, which is not installed: {_PIP_FIX}")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights" / f"{stage}.lz4"
    if not path.is_file():
        raise ModelError(f"MTCNN weight file {path} is missing (broken 'mtcnn' install?): {_PIP_FIX}")
    return path


def load_mtcnn_weights(stage: str) -> list[np.ndarray]:
    """The Keras weights of ``stage`` as float32 arrays, in the package's layer order."""
    import joblib

    path = mtcnn_weights_path(stage)
    try:
        weights = joblib.load(path)
    except Exception as exc:
        raise ModelError(f"could not read MTCNN weights {path}: {exc}; reinstall: {_PIP_FIX}") from exc
    expected = {"pnet": 13, "rnet": 16, "onet": 21}[stage]
    if not isinstance(weights, list) or len(weights) != expected:
        raise ModelError(f"{path} should hold {expected} arrays, got {type(weights).__name__}; {_PIP_FIX}")
    return [np.asarray(w, dtype=np.float32) for w in weights]


class _Graph:
    """A tiny builder: adds nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, array: np.ndarray, prefix: str) -> str:
        from onnx import numpy_helper

        name = self._name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        from onnx import helper

        out = output or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x: str, kernel_hwio: np.ndarray, bias: np.ndarray) -> str:
        w = kernel_hwio.transpose(3, 2, 0, 1)  # Keras HWIO -> ONNX OIHW
        return self.op("Conv", [x, self.const(w, "W"), self.const(bias, "B")])

    def prelu_channels(self, x: str, alpha: np.ndarray) -> str:
        slope = alpha.reshape(1, -1, 1, 1)  # (1, 1, C) -> (1, C, 1, 1); faster in onnxruntime than (C, 1, 1)
        return self.op("PRelu", [x, self.const(slope, "alpha")])

    def maxpool(self, x: str, k: int) -> str:
        # Keras "same" pools here pad only at the bottom/right; ceil_mode=1 gives that, and
        # for the "valid" pools of these nets (odd sizes that divide exactly) it changes nothing.
        return self.op("MaxPool", [x], kernel_shape=[k, k], strides=[2, 2], ceil_mode=1)

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray, output: str | None = None) -> str:
        return self.op("Gemm", [x, self.const(kernel, "W"), self.const(bias, "B")], output)


def _pnet(g: _Graph, w: list[np.ndarray]) -> list[str]:
    from onnx import helper

    x = g.prelu_channels(g.conv("image", w[0], w[1]), w[2])
    x = g.maxpool(x, 2)
    x = g.prelu_channels(g.conv(x, w[3], w[4]), w[5])
    x = g.prelu_channels(g.conv(x, w[6], w[7]), w[8])
    # Both heads in one 1x1 conv: channel 0 is the face-minus-background logit, 1..4 the box
    # offsets. A two-class softmax is sigmoid(l1 - l0); this skips onnxruntime's slow axis-1
    # Softmax on NCHW (about 15 % of P-Net's time) and gives the same numbers to ~1e-7.
    kernel = np.concatenate([w[11][..., 1:] - w[11][..., :1], w[9]], axis=-1)
    bias = np.concatenate([w[12][1:] - w[12][:1], w[10]])
    head = g.conv(x, kernel, bias)
    g.nodes.append(
        helper.make_node(
            "Split", [head, g.const(np.array([1, 4], np.int64), "split")], ["face_logit", "bbox_reg"], axis=1
        )
    )
    background = g.op("Sigmoid", [g.op("Neg", ["face_logit"])])
    prob = g.op("Concat", [background, g.op("Sigmoid", ["face_logit"])], "prob", axis=1)
    return [prob, "bbox_reg"]


def _flatten_keras(g: _Graph, x: str) -> str:
    # Keras: NHWC -> Permute((2, 1, 3)) -> (N, W, H, C) -> Flatten. From NCHW that is perm (0, 3, 2, 1).
    return g.op("Flatten", [g.op("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)


def _rnet(g: _Graph, w: list[np.ndarray]) -> list[str]:
    x = g.maxpool(g.prelu_channels(g.conv("image", w[0], w[1]), w[2]), 3)
    x = g.maxpool(g.prelu_channels(g.conv(x, w[3], w[4]), w[5]), 3)
    x = g.prelu_channels(g.conv(x, w[6], w[7]), w[8])
    x = g.dense(_flatten_keras(g, x), w[9], w[10])
    x = g.op("PRelu", [x, g.const(w[11], "alpha")])
    reg = g.dense(x, w[12], w[13], "bbox_reg")
    prob = g.op("Softmax", [g.dense(x, w[14], w[15])], "prob", axis=1)
    return [prob, reg]


def _onet(g: _Graph, w: list[np.ndarray]) -> list[str]:
    x = g.maxpool(g.prelu_channels(g.conv("image", w[0], w[1]), w[2]), 3)
    x = g.maxpool(g.prelu_channels(g.conv(x, w[3], w[4]), w[5]), 3)
    x = g.maxpool(g.prelu_channels(g.conv(x, w[6], w[7]), w[8]), 2)
    x = g.prelu_channels(g.conv(x, w[9], w[10]), w[11])
    x = g.dense(_flatten_keras(g, x), w[12], w[13])
    x = g.op("PRelu", [x, g.const(w[14], "alpha")])
    reg = g.dense(x, w[15], w[16], "bbox_reg")
    landmarks = g.dense(x, w[17], w[18], "landmarks")
    prob = g.op("Softmax", [g.dense(x, w[19], w[20])], "prob", axis=1)
    return [prob, reg, landmarks]


def build_mtcnn_onnx(stage: str) -> bytes:
    """Serialize ``stage`` ("pnet", "rnet" or "onet") as a checked ONNX model (opset 17)."""
    import onnx
    from onnx import TensorProto, helper

    _check_stage(stage)
    weights = load_mtcnn_weights(stage)
    g = _Graph()
    outputs = {"pnet": _pnet, "rnet": _rnet, "onet": _onet}[stage](g, weights)
    size = INPUT_SIZES[stage]
    in_shape: list[str | int] = ["N", 3, "H", "W"] if size is None else ["N", 3, size, size]
    out_shapes: dict[str, list[str | int]] = {
        "prob": ["N", 2, "h", "w"] if size is None else ["N", 2],
        "bbox_reg": ["N", 4, "h", "w"] if size is None else ["N", 4],
        "landmarks": ["N", 10],
    }
    graph = helper.make_graph(
        g.nodes,
        f"mtcnn_{stage}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, out_shapes[o]) for o in outputs],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceatlas.mtcnn_onnx",
        producer_version=CONVERTER_VERSION,
        doc_string=f"MTCNN {stage} from the 'mtcnn' package weights; input (pixel - 127.5) / 128, RGB, NCHW",
    )
    model.ir_version = 8  # readable by onnxruntime releases back to 1.14
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()

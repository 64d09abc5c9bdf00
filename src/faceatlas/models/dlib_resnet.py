"""dlib's 128-d face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as an ONNX graph.

Pure Python: the weights are read with :mod:`faceatlas.models.dlib_format` and the graph is
written with ``onnx.helper``; dlib is not needed. The graph reproduces dlib's
``anet_type`` (``dnn_face_recognition_ex.cpp``) layer for layer, and its output equals
``dlib.face_recognition_model_v1.compute_face_descriptor`` on the same 150x150 chip to float
rounding (tests/test_dlib_resnet.py).

Graph contract:

- input ``"image"``: uint8 ``[N, 150, 150, 3]``, RGB, NHWC, dynamic batch N. The graph casts,
  transposes to NCHW and applies dlib's normalisation ``(pixel - mean) / 256`` with the means
  stored in the file (R 122.782, G 117.001, B 104.298).
- output ``"embedding"``: float32 ``[N, 128]``, the raw dlib descriptor (not L2-normalised;
  dlib's same-person threshold is Euclidean distance 0.6).

Network facts that matter (dlib's defaults, checked against the file): the 7x7/2 stem
convolution and the stride-2 convolutions of down blocks have no padding; a down block's skip
is a 2x2/2 average pool; ``add_prev`` adds tensors of different shapes by zero-padding the
smaller one at the end of every dimension (channels, and bottom/right in height and width).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceatlas.errors import ModelError
from faceatlas.models.dlib_format import TAG_OR_SKIP, DlibLayer, DlibNetwork, read_dlib_network

__all__ = [
    "CONVERTER_VERSION",
    "DLIB_RESNET_INPUT_SIZE",
    "DLIB_RESNET_WEIGHTS_FILE",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "build_dlib_resnet_onnx",
    "dlib_resnet_weights_path",
]

#: Bump when the generated graph changes, so cached conversions are rebuilt.
CONVERTER_VERSION = "1"
DLIB_RESNET_INPUT_SIZE = 150
DLIB_RESNET_WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
OPSET = 17


def dlib_resnet_weights_path() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` inside ``face_recognition_models``
    (found without importing it; :class:`ModelError` with the fix when it is missing)."""
    from faceatlas.models.cards import DLIB_RESNET_CARD

    return DLIB_RESNET_CARD.source[0].locate()


# -- graph building --------------------------------------------------------------------------


@dataclass
class _Value:
    """A tensor in the graph being built: its name and static NCHW shape (batch excluded)."""

    name: str
    shape: tuple[int, int, int]  # (C, H, W)


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, output: str | None = None, **attrs) -> str:
        from onnx import helper

        out = output or self.fresh(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.fresh(op), **attrs))
        return out


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - window) // stride


class _Converter:
    """Walks the layer list with the shape of dlib's ``anet_type`` and emits ONNX nodes."""

    def __init__(self, net: DlibNetwork) -> None:
        self.layers = net.layers
        self.i = 0
        self.g = _GraphBuilder()

    # cursor helpers
    def _peek(self) -> DlibLayer | None:
        return self.layers[self.i] if self.i < len(self.layers) else None

    def _expect(self, kind: str, what: str) -> DlibLayer:
        layer = self._peek()
        if layer is None or layer.kind != kind:
            found = "the end of the network" if layer is None else repr(layer.kind)
            raise ModelError(
                f"unexpected dlib network layout at layer {self.i}: expected {kind} ({what}), found {found}; "
                "this converter supports dlib's face recognition ResNet "
                f"({DLIB_RESNET_WEIGHTS_FILE}) only"
            )
        self.i += 1
        return layer

    # layer emitters
    def conv(self, x: _Value, layer: DlibLayer) -> _Value:
        w = layer.params["weights"]
        out_c, in_c, kh, kw = w.shape
        if in_c != x.shape[0]:
            raise ModelError(f"dlib layer {self.i - 1}: convolution expects {in_c} channels, gets {x.shape[0]}")
        sy, sx = layer.params["stride"]
        py, px = layer.params["padding"]
        inputs = [x.name, self.g.const("conv_w", w.astype(np.float32))]
        if layer.params["bias"] is not None:
            inputs.append(self.g.const("conv_b", layer.params["bias"].astype(np.float32)))
        y = self.g.node("Conv", inputs, "conv", kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
        shape = (out_c, _out_size(x.shape[1], kh, sy, py), _out_size(x.shape[2], kw, sx, px))
        out = _Value(y, shape)
        if layer.params.get("relu"):
            out = _Value(self.g.node("Relu", [out.name], "relu"), shape)
        return out

    def affine(self, x: _Value, layer: DlibLayer) -> _Value:
        if layer.params["disabled"]:
            return x
        gamma, beta = layer.params["gamma"], layer.params["beta"]
        c = x.shape[0]
        if layer.params["mode"] == "conv":
            if gamma.size != c or beta.size != c:
                raise ModelError(f"dlib layer {self.i - 1}: affine has {gamma.size} channels, input has {c}")
            gamma, beta = gamma.reshape(1, c, 1, 1), beta.reshape(1, c, 1, 1)
        else:
            if gamma.size != int(np.prod(x.shape)):
                raise ModelError(f"dlib layer {self.i - 1}: fc-mode affine does not match its input {x.shape}")
            gamma, beta = gamma.reshape((1, *x.shape)), beta.reshape((1, *x.shape))
        y = self.g.node("Mul", [x.name, self.g.const("affine_gamma", gamma.astype(np.float32))], "scaled")
        y = self.g.node("Add", [y, self.g.const("affine_beta", beta.astype(np.float32))], "affine")
        return _Value(y, x.shape)

    def relu(self, x: _Value, layer: DlibLayer) -> _Value:
        if layer.params["disabled"]:
            return x
        return _Value(self.g.node("Relu", [x.name], "relu"), x.shape)

    def pool(self, x: _Value, layer: DlibLayer, op: str) -> _Value:
        wy, wx = layer.params["window"]
        sy, sx = layer.params["stride"]
        py, px = layer.params["padding"]
        if wy == 0 and wx == 0:  # dlib's *_pool_everything: the window is the whole input
            g_op = "GlobalAveragePool" if op == "AveragePool" else "GlobalMaxPool"
            return _Value(self.g.node(g_op, [x.name], "global_pool"), (x.shape[0], 1, 1))
        if wy == 0 or wx == 0 or ((py, px) != (0, 0) and op == "AveragePool"):
            # dlib's average pool ignores padded cells; not needed for this network
            raise ModelError(f"dlib layer {self.i - 1}: unsupported pooling window {wy}x{wx} padding {py},{px}")
        y = self.g.node(op, [x.name], "pool", kernel_shape=[wy, wx], strides=[sy, sx], pads=[py, px, py, px])
        shape = (x.shape[0], _out_size(x.shape[1], wy, sy, py), _out_size(x.shape[2], wx, sx, px))
        return _Value(y, shape)

    def pad_to(self, x: _Value, shape: tuple[int, int, int]) -> _Value:
        """Zero-pad ``x`` at the end of C, H and W up to ``shape`` (dlib's ``add_prev``)."""
        if x.shape == shape:
            return x
        extra = [t - s for s, t in zip(x.shape, shape)]
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)  # begins N C H W, ends N C H W
        y = self.g.node("Pad", [x.name, self.g.const("pads", pads)], "padded", mode="constant")
        return _Value(y, shape)

    def add_prev(self, a: _Value, b: _Value) -> _Value:
        shape = tuple(max(s, t) for s, t in zip(a.shape, b.shape))
        a, b = self.pad_to(a, shape), self.pad_to(b, shape)  # type: ignore[arg-type]
        return _Value(self.g.node("Add", [a.name, b.name], "sum"), shape)  # type: ignore[arg-type]

    # structure
    def block(self, x: _Value) -> _Value:
        """``relu(add_prev(x, affine(con(relu(affine(con(x)))))))``, the skip pooled in a down block."""
        self._expect(TAG_OR_SKIP, "tag1 of a residual block")
        first = self._expect("con", "first block convolution")
        y = self.conv(x, first)
        y = self.affine(y, self._expect("affine", "block affine"))
        y = self.relu(y, self._expect("relu", "block relu"))
        y = self.conv(y, self._expect("con", "second block convolution"))
        y = self.affine(y, self._expect("affine", "block affine"))
        nxt = self._peek()
        if nxt is not None and nxt.kind == TAG_OR_SKIP:  # residual_down: tag2, skip1, avg_pool
            self._expect(TAG_OR_SKIP, "tag2 of a down block")
            self._expect(TAG_OR_SKIP, "skip1 of a down block")
            skip = self.pool(x, self._expect("avg_pool", "down block skip pooling"), "AveragePool")
        else:
            skip = x
        self._expect("add_prev", "residual addition")
        y = self.add_prev(skip, y)
        return self.relu(y, self._expect("relu", "block output relu"))

    def convert(self) -> tuple[list, list, dict[str, float]]:
        from onnx import TensorProto

        inp = self._expect("input_rgb_image", "input layer")
        size = (inp.params.get("nr"), inp.params.get("nc"))
        if size != (DLIB_RESNET_INPUT_SIZE, DLIB_RESNET_INPUT_SIZE):
            raise ModelError(f"dlib input layer is {size}, expected {DLIB_RESNET_INPUT_SIZE}x{DLIB_RESNET_INPUT_SIZE}")
        means = {k: inp.params[f"avg_{k}"] for k in ("red", "green", "blue")}
        g = self.g

        # uint8 NHWC RGB -> float NCHW, (pixel - mean) / 256 exactly as dlib's to_tensor does
        x = g.node("Transpose", [INPUT_NAME], "nchw_u8", perm=[0, 3, 1, 2])
        x = g.node("Cast", [x], "nchw", to=TensorProto.FLOAT)
        mean = np.array([means["red"], means["green"], means["blue"]], dtype=np.float32).reshape(1, 3, 1, 1)
        x = g.node("Sub", [x, g.const("mean", mean)], "centred")
        x = g.node("Mul", [x, g.const("scale", np.array(1.0 / 256.0, dtype=np.float32))], "normalised")
        v = _Value(x, (3, DLIB_RESNET_INPUT_SIZE, DLIB_RESNET_INPUT_SIZE))

        v = self.conv(v, self._expect("con", "stem convolution"))
        v = self.affine(v, self._expect("affine", "stem affine"))
        v = self.relu(v, self._expect("relu", "stem relu"))
        v = self.pool(v, self._expect("max_pool", "stem max pooling"), "MaxPool")
        blocks = 0
        while (nxt := self._peek()) is not None and nxt.kind == TAG_OR_SKIP:
            v = self.block(v)
            blocks += 1
        if blocks == 0:
            raise ModelError("dlib network has no residual blocks; not the face recognition ResNet")
        pool = self._expect("avg_pool", "global average pooling")
        if pool.params["window"] != (0, 0):
            raise ModelError(f"expected dlib's avg_pool_everything, found window {pool.params['window']}")
        v = self.pool(v, pool, "AveragePool")
        fc = self._expect("fc", "final fully connected layer")
        weights = fc.params["weights"]
        if weights.shape[0] != int(np.prod(v.shape)):
            raise ModelError(f"dlib fc layer takes {weights.shape[0]} inputs, the network gives {v.shape}")
        flat = g.node("Flatten", [v.name], "flat", axis=1)
        if fc.params["bias"] is None:
            g.node("MatMul", [flat, g.const("fc_w", weights.astype(np.float32))], "fc", output=OUTPUT_NAME)
        else:
            y = g.node("MatMul", [flat, g.const("fc_w", weights.astype(np.float32))], "fc")
            g.node("Add", [y, g.const("fc_b", fc.params["bias"].astype(np.float32))], "fc", output=OUTPUT_NAME)
        if self.i != len(self.layers):
            raise ModelError(f"unexpected dlib layers after the fc layer: {self.layers[self.i :]}")
        self.out_dim = weights.shape[1]
        return g.nodes, g.initializers, means


def build_dlib_resnet_onnx(dat_path: str | os.PathLike[str] | None = None) -> bytes:
    """Convert dlib's face ResNet ``.dat`` file to a serialized ONNX model (opset 17).

    ``dat_path`` defaults to :func:`dlib_resnet_weights_path`. See the module docstring for
    the graph's input and output. Raises :class:`ModelError` when the file is missing,
    truncated or not this network.
    """
    import onnx
    from onnx import TensorProto, helper

    path = Path(dat_path) if dat_path is not None else dlib_resnet_weights_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read dlib model file {path}: {exc}") from exc
    net = read_dlib_network(raw, name=str(path))
    conv = _Converter(net)
    nodes, initializers, means = conv.convert()

    size = DLIB_RESNET_INPUT_SIZE
    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", conv.out_dim])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceatlas",
        producer_version=CONVERTER_VERSION,
        doc_string=(
            f"dlib face recognition ResNet converted from {path.name}. Input {INPUT_NAME!r}: uint8 "
            f"[N,{size},{size},3] RGB face chip (dlib.get_face_chip, padding 0.25). Output "
            f"{OUTPUT_NAME!r}: float32 [N,{conv.out_dim}] raw dlib descriptor (not L2-normalised)."
        ),
    )
    model.ir_version = 8  # the lowest IR for opset 17: loads in older onnxruntime builds too
    helper.set_model_props(
        model,
        {
            "faceatlas.converter": "dlib_resnet",
            "faceatlas.converter_version": CONVERTER_VERSION,
            "source_file": path.name,
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "mean_rgb": ",".join(repr(means[k]) for k in ("red", "green", "blue")),
            "loss_distance_threshold": repr(net.loss.params.get("distance_threshold")),
        },
    )
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError; report either
        raise ModelError(f"the ONNX graph built from {path} failed onnx's checker: {exc}") from exc
    return model.SerializeToString()

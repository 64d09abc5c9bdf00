"""A Keras 2.1 FaceNet (Inception-ResNet-v1, ``facenet_keras.h5``) as an ONNX graph.

Pure Python: the ``.h5`` is read with h5py (imported lazily) and the graph written with
``onnx.helper``; neither Keras nor TensorFlow is needed. The model's own ``model_config`` JSON is
walked layer by layer, so only the layer kinds this model uses are accepted, and anything else
(another Lambda, an unknown activation, a layer shared between two calls) is refused by name.

Graph contract:

- input ``"image"``: uint8 ``[N, 160, 160, 3]``, RGB, NHWC, dynamic batch N. The graph casts,
  applies FaceNet's per-image prewhitening ``(x - mean) / max(std, 1/sqrt(size))`` (mean and the
  population std over all H×W×3 values of each image, as davidsandberg/facenet's ``prewhiten``)
  and transposes to NCHW. Prewhitening lives in the graph so every caller gets it right.
- output ``"embedding"``: float32 ``[N, 128]``, the raw bottleneck (not L2-normalised).

Conversion facts that matter: Keras kernels are HWIO (ONNX wants OIHW), Dense kernels are
(in, out); BatchNormalization (``scale=False`` here, epsilon from the config) is folded into the
Conv2D or Dense before it; ``padding="same"`` becomes explicit pads split as TensorFlow splits
them (the extra pixel, for an even total, goes after: bottom/right); the residual ``Lambda`` is
``inputs[0] + inputs[1] * scale`` (its marshalled bytecode is checked, not trusted).
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceatlas.errors import ModelError

__all__ = ["CONVERTER_VERSION", "INPUT_NAME", "INPUT_SIZE", "OUTPUT_NAME", "build_facenet_onnx", "tf_same_pads"]

#: Bump when the generated graph changes, so cached conversions are rebuilt.
CONVERTER_VERSION = "1"
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
INPUT_SIZE = 160
OPSET = 17
# Python 3.6 bytecode of `lambda inputs, scale: inputs[0] + inputs[1] * scale` (facenet_keras_v1.py):
# LOAD_FAST inputs, LOAD_CONST 0, BINARY_SUBSCR, LOAD_FAST inputs, LOAD_CONST 1, BINARY_SUBSCR,
# LOAD_FAST scale, BINARY_MULTIPLY, BINARY_ADD, RETURN_VALUE
_SCALE_SUM_CODE = b"|\x00d\x01\x19\x00|\x00d\x02\x19\x00|\x01\x14\x00\x17\x00S\x00"


def tf_same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding of one axis: (before, after), the odd pixel after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]  # without the batch: (C, H, W) for images, (C,) after pooling


class _Converter:
    def __init__(self, weights: Any, layers: list[dict[str, Any]]) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.weights = weights
        self.layers = {layer["name"]: layer for layer in layers}
        self.order = [layer["name"] for layer in layers]
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.values: dict[str, _Tensor] = {}
        consumers: dict[str, list[str]] = {}
        for layer in layers:
            if len(layer["inbound_nodes"]) > 1:
                raise ModelError(f"layer {layer['name']!r} is called more than once; not supported")
            for inbound in self._inbound(layer):
                consumers.setdefault(inbound, []).append(layer["name"])
        # a BatchNormalization is folded into the Conv2D/Dense it alone follows
        self.fold: dict[str, str] = {}
        for layer in layers:
            if layer["class_name"] == "BatchNormalization":
                (src,) = self._inbound(layer)
                if self.layers[src]["class_name"] in ("Conv2D", "Dense") and consumers[src] == [layer["name"]]:
                    self.fold[src] = layer["name"]

    @staticmethod
    def _inbound(layer: dict[str, Any]) -> list[str]:
        nodes = layer["inbound_nodes"]
        return [entry[0] for entry in nodes[0]] if nodes else []

    def _weight(self, layer: str, suffix: str) -> np.ndarray | None:
        group = self.weights[layer]
        for raw in group.attrs.get("weight_names", []):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            if name.rsplit("/", 1)[-1].split(":")[0] == suffix:
                return np.asarray(group[name], dtype=np.float32)
        return None

    def _const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def _node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def _bn_scale_shift(self, bn: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.layers[bn]["config"]
        mean, var = self._weight(bn, "moving_mean"), self._weight(bn, "moving_variance")
        if mean is None or var is None:
            raise ModelError(f"BatchNormalization {bn!r} has no moving mean/variance in the file")
        gamma = self._weight(bn, "gamma") if cfg.get("scale", True) else None
        beta = self._weight(bn, "beta") if cfg.get("center", True) else None
        scale = (np.ones(channels, np.float32) if gamma is None else gamma) / np.sqrt(var + float(cfg["epsilon"]))
        shift = (np.zeros(channels, np.float32) if beta is None else beta) - mean * scale
        return scale.astype(np.float32), shift.astype(np.float32)

    def _activation(self, x: _Tensor, kind: str, out: str) -> _Tensor:
        if kind == "linear":
            return x
        if kind == "relu":
            return _Tensor(self._node("Relu", [x.name], out), x.shape)
        raise ModelError(f"activation {kind!r} of layer {out!r} is not supported (only relu and linear)")

    def _conv(self, name: str, cfg: dict[str, Any], x: _Tensor) -> _Tensor:
        kernel = self._weight(name, "kernel")
        if kernel is None:
            raise ModelError(f"Conv2D {name!r} has no kernel in the file")
        kh, kw, cin, cout = kernel.shape
        if cfg.get("data_format", "channels_last") != "channels_last" or cin != x.shape[0]:
            raise ModelError(f"Conv2D {name!r}: kernel {kernel.shape} does not fit input {x.shape}")
        (sh, sw), (dh, dw) = cfg["strides"], cfg.get("dilation_rate", [1, 1])
        bias = self._weight(name, "bias") if cfg.get("use_bias", True) else None
        weight = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        bias = np.zeros(cout, np.float32) if bias is None else bias
        if name in self.fold:
            scale, shift = self._bn_scale_shift(self.fold[name], cout)
            weight, bias = weight * scale[:, None, None, None], bias * scale + shift
        _, h, w = x.shape
        if cfg["padding"] == "same":
            (top, bottom), (left, right) = tf_same_pads(h, kh, sh, dh), tf_same_pads(w, kw, sw, dw)
        elif cfg["padding"] == "valid":
            top = bottom = left = right = 0
        else:
            raise ModelError(f"Conv2D {name!r}: padding {cfg['padding']!r} is not supported")
        out_name = self.fold.get(name, name)
        self._node(
            "Conv",
            [x.name, self._const(name + "/W", weight), self._const(name + "/B", bias)],
            out_name,
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            dilations=[dh, dw],
            pads=[top, left, bottom, right],
        )
        oh = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
        ow = (w + left + right - (kw - 1) * dw - 1) // sw + 1
        return self._activation(_Tensor(out_name, (cout, oh, ow)), cfg.get("activation", "linear"), out_name + "/act")

    def _dense(self, name: str, cfg: dict[str, Any], x: _Tensor) -> _Tensor:
        kernel = self._weight(name, "kernel")
        if kernel is None or len(x.shape) != 1 or kernel.shape[0] != x.shape[0]:
            raise ModelError(f"Dense {name!r}: kernel does not fit input {x.shape}")
        bias = self._weight(name, "bias") if cfg.get("use_bias", True) else None
        bias = np.zeros(kernel.shape[1], np.float32) if bias is None else bias
        if name in self.fold:
            scale, shift = self._bn_scale_shift(self.fold[name], kernel.shape[1])
            kernel, bias = kernel * scale[None, :], bias * scale + shift
        out_name = self.fold.get(name, name)
        self._node("Gemm", [x.name, self._const(name + "/W", kernel), self._const(name + "/B", bias)], out_name)
        return self._activation(
            _Tensor(out_name, (kernel.shape[1],)), cfg.get("activation", "linear"), out_name + "/act"
        )

    def _layer(self, layer: dict[str, Any], ins: list[_Tensor]) -> _Tensor:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        if kind == "Conv2D":
            return self._conv(name, cfg, ins[0])
        if kind == "Dense":
            return self._dense(name, cfg, ins[0])
        if kind == "BatchNormalization":
            if self._inbound(layer)[0] in self.fold:
                return ins[0]  # already folded into the layer before
            axis = cfg.get("axis", -1)
            if axis not in (-1, len(ins[0].shape)):
                raise ModelError(f"BatchNormalization {name!r} on axis {axis} is not supported")
            scale, shift = self._bn_scale_shift(name, ins[0].shape[0])
            shape = (-1,) + (1,) * (len(ins[0].shape) - 1)
            mul = self._node("Mul", [ins[0].name, self._const(name + "/scale", scale.reshape(shape))], name + "/mul")
            return _Tensor(
                self._node("Add", [mul, self._const(name + "/shift", shift.reshape(shape))], name), ins[0].shape
            )
        if kind == "Activation":
            return self._activation(ins[0], cfg["activation"], name)
        if kind == "Concatenate":
            rank = len(ins[0].shape) + 1
            if cfg.get("axis", -1) not in (-1, rank - 1) or any(t.shape[1:] != ins[0].shape[1:] for t in ins):
                raise ModelError(f"Concatenate {name!r}: only channel concatenation is supported")
            channels = sum(t.shape[0] for t in ins)
            return _Tensor(self._node("Concat", [t.name for t in ins], name, axis=1), (channels, *ins[0].shape[1:]))
        if kind == "MaxPooling2D":
            (kh, kw), (sh, sw) = cfg["pool_size"], cfg.get("strides") or cfg["pool_size"]
            c, h, w = ins[0].shape
            if cfg["padding"] == "same":
                (top, bottom), (left, right) = tf_same_pads(h, kh, sh), tf_same_pads(w, kw, sw)
            else:
                top = bottom = left = right = 0
            pool = self._node(
                "MaxPool", [ins[0].name], name, kernel_shape=[kh, kw], strides=[sh, sw], pads=[top, left, bottom, right]
            )
            return _Tensor(pool, (c, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1))
        if kind == "GlobalAveragePooling2D":
            pooled = self._node("GlobalAveragePool", [ins[0].name], name + "/pool")
            return _Tensor(self._node("Flatten", [pooled], name, axis=1), (ins[0].shape[0],))
        if kind == "Dropout":
            return ins[0]  # identity at inference
        if kind == "Lambda":
            code = base64.b64decode("".join(cfg["function"][0].split()))
            scale = cfg.get("arguments", {}).get("scale")
            if cfg.get("function_type") != "lambda" or _SCALE_SUM_CODE not in code or scale is None or len(ins) != 2:
                raise ModelError(f"Lambda {name!r} is not FaceNet's `inputs[0] + inputs[1] * scale`")
            if ins[0].shape != ins[1].shape:
                raise ModelError(f"Lambda {name!r}: shapes {ins[0].shape} and {ins[1].shape} differ")
            branch = ins[1].name
            if float(scale) != 1.0:
                branch = self._node(
                    "Mul", [branch, self._const(name + "/scale", np.array(scale, np.float32))], name + "/mul"
                )
            return _Tensor(self._node("Add", [ins[0].name, branch], name), ins[0].shape)
        raise ModelError(f"layer {name!r} of kind {kind!r} is not supported by this converter")

    def convert(self, input_layer: str, output_layer: str) -> tuple[list[Any], list[Any]]:
        from onnx import TensorProto

        batch_shape = self.layers[input_layer]["config"]["batch_input_shape"]
        h, w, c = batch_shape[1:]
        if c != 3 or h is None or w is None:
            raise ModelError(f"expected a fixed-size RGB input, the model declares {batch_shape}")
        x = self._node("Cast", [INPUT_NAME], "input/float", to=TensorProto.FLOAT)
        mean = self._node("ReduceMean", [x], "input/mean", axes=[1, 2, 3], keepdims=1)
        centred = self._node("Sub", [x, mean], "input/centred")
        var = self._node("ReduceMean", [self._node("Mul", [centred, centred], "input/sq")], "input/var", axes=[1, 2, 3])
        floor = self._const("input/std_floor", np.array(1.0 / math.sqrt(h * w * c), np.float32))
        std = self._node("Max", [self._node("Sqrt", [var], "input/std"), floor], "input/std_adj")
        white = self._node("Div", [centred, std], "input/white")
        self.values[input_layer] = _Tensor(self._node("Transpose", [white], "input/nchw", perm=[0, 3, 1, 2]), (c, h, w))
        for name in self.order:
            if name != input_layer:
                layer = self.layers[name]
                self.values[name] = self._layer(layer, [self.values[i] for i in self._inbound(layer)])
        self._node("Identity", [self.values[output_layer].name], OUTPUT_NAME)
        return self.nodes, self.inits


def build_facenet_onnx(h5_path: str | os.PathLike[str]) -> bytes:
    """Convert a Keras 2.1 ``facenet_keras.h5`` to a serialized ONNX model (opset 17)."""
    try:
        h5py = importlib.import_module("h5py")  # untyped: imported by name keeps mypy quiet without stubs
    except ImportError as exc:
        raise ModelError(
            'converting FaceNet needs h5py, which is not installed. Fix: pip install h5py (or pip install "faceatlas[facenet]")'
        ) from exc
    from onnx import TensorProto, checker, helper

    try:
        with h5py.File(h5_path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None or "model_weights" not in f:
                raise ModelError(f"{h5_path} is not a Keras model file with weights (no model_config/model_weights)")
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            if config.get("class_name") not in ("Model", "Functional"):
                raise ModelError(f"{h5_path}: expected a Keras functional Model, found {config.get('class_name')!r}")
            spec = config["config"]
            (input_layer, *_), (output_layer, *_) = spec["input_layers"][0], spec["output_layers"][0]
            converter = _Converter(f["model_weights"], spec["layers"])
            nodes, inits = converter.convert(input_layer, output_layer)
            h, w = converter.values[input_layer].shape[1:]
            dim = converter.values[output_layer].shape
    except OSError as exc:
        raise ModelError(f"could not read {h5_path} as HDF5: {exc}") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{h5_path} does not look like the Keras FaceNet this converter knows: {exc!r}") from exc
    graph = helper.make_graph(
        nodes,
        "facenet_keras",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", h, w, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", *dim])],
        inits,
    )
    model = helper.make_model(
        graph,
        producer_name="faceatlas",
        producer_version=CONVERTER_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = 8  # the lowest IR for opset 17: loads in older onnxruntime builds too
    checker.check_model(model)
    return model.SerializeToString()

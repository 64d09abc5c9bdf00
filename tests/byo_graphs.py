"""Toy ONNX graphs with the signatures of real exports (SCRFD, YuNet, ArcFace, RetinaFace, others), for
tests/test_byo_models.py: small, deterministic, and built so that known inputs decode to known faces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
YUNET_BOX = (0.5, 0.25, math.log(3.0), math.log(4.0))  # centre offset (cells), log of size (strides)


def _save(path, nodes, inputs, outputs, inits, opset=13, check=True):
    graph = helper.make_graph(nodes, "toy", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="faceatlas-tests")
    model.ir_version = 8
    if check:  # the checker wants every output's shape declared; ONNX Runtime does not
        onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString())
    return Path(path)


class _G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value, name=None):
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op, inputs, out=None, **attrs):
        self.n += 1
        out = out or f"t{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out


def _cell_score(g, x, stride, channel, scale, bias, gain=100.0):
    """sigmoid(gain * (mean of channel over each stride cell * scale - bias)): (N, 1, H/s, W/s)."""
    w = np.zeros((1, 3, stride, stride), np.float32)
    w[0, channel] = scale / stride**2
    conv = g.op(
        "Conv", [x, g.const(w), g.const(np.float32([-bias]))], kernel_shape=[stride, stride], strides=[stride, stride]
    )
    return conv, g.op("Sigmoid", [g.op("Mul", [conv, g.const(np.float32(gain))])])


def _per_cell(g, zero_like, values):
    """(N, len(values), H, W): the constants broadcast over the grid of zero_like (N, 1, H, W)."""
    zero = g.op("Mul", [zero_like, g.const(np.float32(0.0))])
    return g.op("Add", [zero, g.const(np.float32(values).reshape(1, -1, 1, 1))])


def _flatten_head(g, t, width, batched, out):
    """(N, A*width, H, W) → (N, H*W*A, width) [or (H*W*A, width)], anchors fastest."""
    tr = g.op("Transpose", [t], perm=[0, 2, 3, 1])
    shape = [0, -1, width] if batched else [-1, width]
    return g.op("Reshape", [tr, g.const(np.int64(shape))], out=out)


def scrfd(
    path,
    *,
    fixed=640,
    batch=1,
    batched=True,
    kps=True,
    fire=16,
    bias=0.9,
    channel=0,
    bbox=(1.0, 1.5, 2.0, 2.5),
    points=((-0.5, -0.5), (0.5, -0.5), (0.0, 0.25), (-0.4, 0.9), (0.4, 0.9)),
    order=None,
    declare=True,
    anchors=2,
    strides=(8, 16, 32),
):
    """An SCRFD-like graph: score fires (≈1) on stride-``fire`` cells whose ``channel`` mean, after
    (x-127.5)/128, exceeds ``bias``; constant box distances and keypoint offsets (stride units)."""
    g = _G()
    in_shape = [batch, 3, fixed, fixed] if fixed else [batch if batch else "batch", 3, "height", "width"]
    heads = {}
    for s in strides:
        conv, score = _cell_score(g, "input.1", s, channel, 1.0, bias if s == fire else 5.0)
        heads[("score", s)] = (g.op("Concat", [score] * anchors, axis=1), 1)
        heads[("bbox", s)] = (_per_cell(g, conv, list(bbox) * anchors), 4)
        if kps:
            heads[("kps", s)] = (_per_cell(g, conv, [v for p in points for v in p] * anchors), 10)
    roles = ["score", "bbox", "kps"] if kps else ["score", "bbox"]
    keys = [(r, s) for r in roles for s in strides]
    if order is not None:
        keys = [keys[i] for i in order]
    outputs = []
    for i, key in enumerate(keys):
        t, width = heads[key]
        name = str(448 + 3 * i)  # InsightFace's exports name outputs by number
        _flatten_head(g, t, width, batched, name)
        if not declare:
            outputs.append(helper.make_tensor_value_info(name, F, None))
            continue
        s = key[1]
        k = (fixed // s) ** 2 * anchors if fixed else f"k{s}"
        shape = ([batch if batch else "batch", k, width]) if batched else [k, width]
        outputs.append(helper.make_tensor_value_info(name, F, shape))
    inp = helper.make_tensor_value_info("input.1", F, in_shape)
    return _save(path, g.nodes, [inp], outputs, g.inits, check=declare)


def yunet(
    path,
    *,
    fixed=640,
    fire=16,
    bias=0.9,
    bbox=YUNET_BOX,
    points=((0.2, 0.1), (0.8, 0.1), (0.5, 0.5), (0.3, 0.8), (0.7, 0.8)),
):
    """A YuNet-2023mar-like graph; fires on stride-``fire`` cells whose BGR channel 0 (blue) mean/255 > bias."""
    g = _G()
    in_shape = [1, 3, fixed, fixed] if fixed else [1, 3, "height", "width"]
    outs, decl = {}, []
    for s in (8, 16, 32):
        conv, score = _cell_score(g, "input", s, 0, 1.0 / 255.0, bias if s == fire else 5.0)
        outs[f"cls_{s}"] = (score, 1)
        outs[f"obj_{s}"] = (g.op("Identity", [score]), 1)
        outs[f"bbox_{s}"] = (_per_cell(g, conv, bbox), 4)
        outs[f"kps_{s}"] = (_per_cell(g, conv, [v for p in points for v in p]), 10)
    for role in ("cls", "obj", "bbox", "kps"):
        for s in (8, 16, 32):
            t, width = outs[f"{role}_{s}"]
            name = f"{role}_{s}"
            _flatten_head(g, t, width, True, name)
            k = (fixed // s) ** 2 if fixed else f"k{s}"
            decl.append(helper.make_tensor_value_info(name, F, [1, k, width]))
    inp = helper.make_tensor_value_info("input", F, in_shape)
    return _save(path, g.nodes, [inp], decl, g.inits)


def arcface(path, *, dim=512, size=112, seed=0, batch="None", nhwc=False, out_name="683"):
    """An ArcFace-like embedder: conv 8x8/8 → ReLU → flatten → Gemm → dim (random weights)."""
    rng = np.random.default_rng(seed)
    g = _G()
    x = "input.1"
    if nhwc:
        x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    w = rng.normal(0, 0.2, (16, 3, 8, 8)).astype(np.float32)
    conv = g.op(
        "Conv", [x, g.const(w), g.const(rng.normal(0, 0.1, 16).astype(np.float32))], kernel_shape=[8, 8], strides=[8, 8]
    )
    flat = g.op("Flatten", [g.op("Relu", [conv])], axis=1)
    cells = 16 * (size // 8) ** 2
    fc = rng.normal(0, 1 / math.sqrt(cells), (cells, dim)).astype(np.float32)
    g.op("Gemm", [flat, g.const(fc), g.const(np.zeros(dim, np.float32))], out=out_name)
    shape = [batch, size, size, 3] if nhwc else [batch, 3, size, size]
    inp = helper.make_tensor_value_info("input.1", F, shape)
    out = helper.make_tensor_value_info(out_name, F, [batch, dim])
    return _save(path, g.nodes, [inp], [out], g.inits)


def pooled_head(path, *, size, outputs, seed=0):
    """One N×3×size×size input → global pool → Gemm → ``outputs`` values (a classifier, a landmark or attribute model)."""
    rng = np.random.default_rng(seed)
    g = _G()
    flat = g.op("Flatten", [g.op("GlobalAveragePool", ["data"])], axis=1)
    g.op(
        "Gemm",
        [flat, g.const(rng.normal(0, 1, (3, outputs)).astype(np.float32)), g.const(np.zeros(outputs, np.float32))],
        out="fc1",
    )
    inp = helper.make_tensor_value_info("data", F, [1, 3, size, size])
    out = helper.make_tensor_value_info("fc1", F, [1, outputs])
    return _save(path, g.nodes, [inp], [out], g.inits)


def retinaface(path):
    """biubug6's signature: loc (N,K,4), conf (N,K,2), landms (N,K,10) (constant values)."""
    g = _G()
    conv, _ = _cell_score(g, "input", 8, 0, 1.0, 5.0)
    outs = []
    for name, width in (("loc", 4), ("conf", 2), ("landms", 10)):
        _flatten_head(g, _per_cell(g, conv, [0.0] * width), width, True, name)
        outs.append(helper.make_tensor_value_info(name, F, ["batch", "anchors", width]))
    inp = helper.make_tensor_value_info("input", F, ["batch", 3, "height", "width"])
    return _save(path, g.nodes, [inp], outs, g.inits)

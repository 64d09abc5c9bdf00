"""What kind of face model an ONNX file is, told from the graph itself (never from its file name).

:func:`read_signature` reads a file's inputs, outputs and operator types with ``onnx.load``
(external weights are not read); :func:`classify` places it:

* **SCRFD** (InsightFace's detector, ``det_500m.onnx``, ``det_10g.onnx``...): one N×3×H×W
  input (fixed, e.g. 1×3×640×640, or dynamic ``['?', 3, '?', '?']``); per stride 8/16/32 a
  score (last dim 1), a box (last dim 4) and optionally keypoint (last dim 10) output: 6 or 9
  outputs (10 or 15 for the 5-stride variants), each (N, K, C) or batchless (K, C). The outputs
  are grouped by their last dimension; the stride of each is told by its anchor count K (the
  biggest K is stride 8), at load time when the shapes are declared, else at run time.
* **YuNet** (OpenCV Zoo's ``face_detection_yunet_2023mar``): 12 outputs, ``cls``/``obj`` (1),
  ``bbox`` (4) and ``kps`` (10) per stride 8/16/32, one prior per location.
* **RetinaFace** (biubug6's export): 3 outputs ``loc`` (N,K,4), ``conf`` (N,K,2), ``landms`` (N,K,10).
* **ArcFace-style embedder**: one input N×3×S×S (or N×S×S×3) with S from 112 to 160, one output
  N×D with 128 ≤ D ≤ 1024, float or INT8-quantised (quantisation does not change the signature).

Graphs whose outputs declare no shape are run once on zeros (with ONNX Runtime) to learn them.
Anything else is refused with a ModelError that lists what the graph has and what is accepted.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from faceatlas.errors import ModelError

Dim = int | str | None  # a fixed size, a symbolic name, or unknown
DetectorKind = Literal["scrfd", "yunet", "retinaface"]

# ops that mark an INT8-quantised graph (QDQ, QOperator or dynamic quantisation)
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "ConvInteger",
        "MatMulInteger",
    }
)
EMBEDDER_SIZES = range(112, 161)  # ArcFace's 112 px up to FaceNet's 160; 192-px graphs are landmark models
EMBEDDING_DIMS = range(128, 1025)
PROBE_SIZE = 640  # what a graph with a dynamic input is run at to learn undeclared output shapes

ACCEPTED = (
    "faceatlas accepts: an SCRFD detector (one N×3×H×W input; per stride 8/16/32 a score, box and "
    "optional keypoint output with last dims 1/4/10: 6 or 9 outputs), a YuNet detector (12 outputs "
    "cls/obj/bbox/kps per stride 8/16/32), a RetinaFace detector (3 outputs loc/conf/landms, last dims "
    "4/2/10), or an ArcFace-style embedder (one N×3×112×112 or N×112×112×3 input, up to 160 px, and one "
    "N×D output with 128 ≤ D ≤ 1024)"
)


@dataclass(frozen=True, slots=True)
class Tensor:
    """A graph input or output: ``shape`` is None when the graph does not declare its rank."""

    name: str
    dtype: str  # numpy's name, e.g. "float32"
    shape: tuple[Dim, ...] | None

    def fixed(self, axis: int) -> int | None:
        """The size of ``axis`` when the graph fixes it, else None."""
        if self.shape is None or not -len(self.shape) <= axis < len(self.shape):
            return None
        d = self.shape[axis]
        return d if isinstance(d, int) else None

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name} {self.dtype}[shape not declared]"
        dims = ", ".join(str(d) if isinstance(d, int) else "?" for d in self.shape)
        return f"{self.name} {self.dtype}[{dims}]"


@dataclass(frozen=True, slots=True)
class Signature:
    """What :func:`read_signature` learns about a file without running it."""

    path: Path
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    op_types: frozenset[str]
    opset: int
    producer: str

    @property
    def quantized(self) -> bool:
        return bool(self.op_types & QUANTIZED_OPS)

    def describe(self) -> str:
        ins = "; ".join(t.describe() for t in self.inputs) or "none"
        outs = "; ".join(t.describe() for t in self.outputs) or "none"
        return f"inputs: {ins}; outputs ({len(self.outputs)}): {outs}"


@dataclass(frozen=True, slots=True)
class DetectorGraph:
    """A face detector's graph. ``heads`` maps a role ("score", "bbox", "kps" for SCRFD; "cls",
    "obj", "bbox", "kps" for YuNet; "loc", "conf", "landms" for RetinaFace) to its output names,
    stride 8 first where the declared shapes tell the strides apart, else in the graph's order
    (the decoder then orders them by their anchor counts at run time)."""

    kind: DetectorKind
    signature: Signature
    input: Tensor
    heads: dict[str, tuple[str, ...]]
    batched: bool  # the outputs carry a leading batch axis: (N, K, C); else (K, C), one image a run
    strides: tuple[int, ...]

    @property
    def keypoints(self) -> bool:
        return bool(self.heads.get("kps") or self.heads.get("landms"))

    @property
    def input_hw(self) -> tuple[int, int] | None:
        """(height, width) when the graph fixes them, else None (any multiple of the largest stride)."""
        h, w = self.input.fixed(2), self.input.fixed(3)
        return (h, w) if h is not None and w is not None else None

    @property
    def fixed_batch(self) -> int | None:
        return self.input.fixed(0)


@dataclass(frozen=True, slots=True)
class EmbedderGraph:
    """An ArcFace-style embedder's graph: square ``size`` crops in ``layout``, ``dim``-d vectors."""

    signature: Signature
    input: Tensor
    output: Tensor
    layout: Literal["NCHW", "NHWC"]
    size: int
    dim: int

    @property
    def fixed_batch(self) -> int | None:
        return self.input.fixed(0)


Graph = DetectorGraph | EmbedderGraph


# ---------------------------------------------------------------------------------------------
# Reading


def _tensor(value_info: object) -> Tensor:
    import onnx

    vi: onnx.ValueInfoProto = value_info  # type: ignore[assignment]
    tt = vi.type.tensor_type
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    except (KeyError, TypeError, ValueError):
        dtype = f"onnx-type-{tt.elem_type}"
    shape: tuple[Dim, ...] | None = None
    if tt.HasField("shape"):
        dims: list[Dim] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return Tensor(vi.name, dtype, shape)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"no model file at {path}: give the path of an .onnx file or of a model-pack folder")
    if not path.is_file():
        raise ModelError(f"{path} is not a file: give the path of an .onnx file or of a model-pack folder")
    if path.stat().st_size == 0:
        raise ModelError(f"{path} is empty (0 bytes), not an ONNX model; copy the file again")


def read_signature(path: str | os.PathLike[str]) -> Signature:
    """The inputs (initialisers excluded), outputs and op types of an ONNX file (cached per file state)."""
    p = Path(path).expanduser()
    _check_file(p)
    stat = p.stat()
    return _read_signature(p.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_signature(path: Path, size: int, mtime_ns: int) -> Signature:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not a model, or a truncated one
        raise ModelError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}); it may be truncated or "
            "another kind of file. Give an .onnx export of a face detector or embedder."
        ) from exc
    graph = model.graph
    if model.ir_version <= 0 or not graph.output or not graph.node:
        raise ModelError(
            f"{path} is not an ONNX model (no graph, nodes or outputs in it: ir_version {model.ir_version}, "
            f"{len(graph.node)} nodes, {len(graph.output)} outputs); it may be truncated or another kind of file"
        )
    initialisers = {t.name for t in graph.initializer}
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return Signature(
        path=path,
        inputs=tuple(_tensor(v) for v in graph.input if v.name not in initialisers),
        outputs=tuple(_tensor(v) for v in graph.output),
        op_types=frozenset(n.op_type for n in graph.node),
        opset=int(opset),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
    )


def probe_shapes(signature: Signature, input_shape: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Run the graph once on zeros of ``input_shape`` (CPU) and return its outputs' shapes."""
    import numpy as np

    from faceatlas.models.runtime import create_session

    (inp,) = signature.inputs
    session = create_session(signature.path, ["CPUExecutionProvider"])
    try:
        dtype = np.dtype(inp.dtype)
        outs = session.run(None, {inp.name: np.zeros(tuple(input_shape), dtype=dtype)})
    except Exception as exc:
        raise ModelError(
            f"{signature.path.name} declares no output shapes, and running it on zeros of shape "
            f"{tuple(input_shape)} to learn them failed ({exc}). Found: {signature.describe()}. {ACCEPTED}"
        ) from exc
    return tuple(tuple(int(d) for d in np.shape(o)) for o in outs)


def _with_shapes(signature: Signature, shapes: Sequence[tuple[int, ...]]) -> Signature:
    outputs = tuple(Tensor(t.name, t.dtype, tuple(s)) for t, s in zip(signature.outputs, shapes, strict=True))
    return Signature(signature.path, signature.inputs, outputs, signature.op_types, signature.opset, signature.producer)


# ---------------------------------------------------------------------------------------------
# Classifying


def inspect_model(path: str | os.PathLike[str]) -> Graph:
    """Read and classify one ONNX file (see the module docstring); ModelError when it is no face model."""
    return classify(read_signature(path))


@functools.lru_cache(maxsize=64)
def classify(signature: Signature) -> Graph:
    """Place a signature, probing undeclared output shapes once; ModelError when nothing fits."""
    sig = signature
    if len(sig.inputs) == 1 and any(_last(t) is None for t in sig.outputs):
        sig = _probed(sig)
    placed = _place(sig)
    if placed is None:
        raise ModelError(f"{sig.path.name} is not a face model faceatlas can place. Found {sig.describe()}. {ACCEPTED}")
    return placed


def _probed(sig: Signature) -> Signature:
    (inp,) = sig.inputs
    if inp.shape is None or len(inp.shape) != 4:
        return sig  # refused below with its signature
    nhwc = inp.fixed(3) == 3 and inp.fixed(1) != 3
    spatial = (1, 2) if nhwc else (2, 3)
    shape = [inp.fixed(i) or (1 if i == 0 else 3 if i not in spatial else PROBE_SIZE) for i in range(4)]
    return _with_shapes(sig, probe_shapes(sig, shape))


def _last(t: Tensor) -> int | None:
    return t.fixed(-1) if t.shape else None


def _place(sig: Signature) -> Graph | None:
    if len(sig.inputs) != 1:
        return None
    (inp,) = sig.inputs
    if inp.shape is None or len(inp.shape) != 4:
        return None
    if len(sig.outputs) == 1:
        return _embedder(sig, inp, sig.outputs[0])
    return _detector(sig, inp)


def _embedder(sig: Signature, inp: Tensor, out: Tensor) -> EmbedderGraph | None:
    if inp.fixed(1) == 3 and inp.fixed(2) is not None and inp.fixed(2) == inp.fixed(3):
        layout: Literal["NCHW", "NHWC"] = "NCHW"
        size = inp.fixed(2)
    elif inp.fixed(3) == 3 and inp.fixed(1) is not None and inp.fixed(1) == inp.fixed(2):
        layout, size = "NHWC", inp.fixed(1)
    else:
        return None
    if size not in EMBEDDER_SIZES or out.shape is None:
        return None
    # (N, D), or (N, D, 1, 1) from a graph that ends in a 1×1 convolution
    if len(out.shape) == 2 or (len(out.shape) == 4 and out.fixed(2) == 1 and out.fixed(3) == 1):
        dim = out.fixed(1)
        if dim is not None and dim in EMBEDDING_DIMS:
            return EmbedderGraph(sig, inp, out, layout, int(size), dim)  # type: ignore[arg-type]
    return None


def _detector(sig: Signature, inp: Tensor) -> DetectorGraph | None:
    if inp.fixed(1) not in (3, None):
        return None
    ranks = {len(t.shape) for t in sig.outputs if t.shape is not None}
    if len(ranks) != 1 or any(t.shape is None for t in sig.outputs) or ranks - {2, 3}:
        return None
    batched = ranks == {3}
    by_last: dict[int | None, list[Tensor]] = {}
    for t in sig.outputs:
        by_last.setdefault(_last(t), []).append(t)
    widths = {k: len(v) for k, v in by_last.items()}
    n = widths.get(4, 0)
    if widths == {4: 1, 2: 1, 10: 1}:
        heads = {"loc": by_last[4], "conf": by_last[2], "landms": by_last[10]}
        return _made("retinaface", sig, inp, heads, batched, (8, 16, 32))
    if n in (3, 5) and widths.get(1) == n and set(widths) <= {1, 4, 10} and widths.get(10, 0) in (0, n):
        heads = {"score": by_last[1], "bbox": by_last[4], "kps": by_last.get(10, [])}
        return _made("scrfd", sig, inp, heads, batched, tuple(8 * 2**i for i in range(n)))
    if widths == {1: 6, 4: 3, 10: 3}:
        ones = by_last[1]
        cls = [t for t in ones if "cls" in t.name.lower()]
        obj = [t for t in ones if "obj" in t.name.lower()]
        if len(cls) != 3 or len(obj) != 3:  # unnamed: OpenCV's order, cls_8..32 then obj_8..32
            cls, obj = ones[:3], ones[3:]
        heads = {"cls": cls, "obj": obj, "bbox": by_last[4], "kps": by_last[10]}
        return _made("yunet", sig, inp, heads, batched, (8, 16, 32))
    return None


def _made(
    kind: DetectorKind,
    sig: Signature,
    inp: Tensor,
    heads: dict[str, list[Tensor]],
    batched: bool,
    strides: tuple[int, ...],
) -> DetectorGraph | None:
    """Order each head by stride when every anchor count is declared, checking they agree."""
    axis = 1 if batched else 0
    counts = [t.fixed(axis) for ts in heads.values() for t in ts]
    ordered: dict[str, tuple[str, ...]] = {}
    if kind != "retinaface" and all(c is not None for c in counts):
        reference: list[int] | None = None
        for role, ts in heads.items():
            if not ts:
                ordered[role] = ()
                continue
            ts = sorted(ts, key=lambda t: -(t.fixed(axis) or 0))  # stable: ties keep the graph's order
            ks = [int(t.fixed(axis) or 0) for t in ts]
            if reference is None:
                reference = ks
            elif ks != reference or len(set(ks)) != len(ks):
                return None  # heads that disagree on the anchors per stride: not this family
            ordered[role] = tuple(t.name for t in ts)
        hw = (inp.fixed(2), inp.fixed(3))
        if reference is not None and hw[0] is not None and hw[1] is not None and not _grid_fits(reference, hw, strides):
            return None
    else:
        ordered = {role: tuple(t.name for t in ts) for role, ts in heads.items()}
    return DetectorGraph(kind, sig, inp, ordered, batched, strides)


def _grid_fits(counts: Sequence[int], hw: tuple[int | None, int | None], strides: Sequence[int]) -> bool:
    """Whether anchor counts are a whole number of anchors per cell of each stride's grid."""
    h, w = hw
    assert h is not None and w is not None
    cells = [(h // s) * (w // s) for s in strides]
    if any(c == 0 or k % c for k, c in zip(counts, cells, strict=True)):
        return False
    return len({k // c for k, c in zip(counts, cells, strict=True)}) == 1


def describe_kind(graph: Graph) -> str:
    """A short phrase for messages and cards, e.g. "SCRFD detector (9 outputs, keypoints)"."""
    q = ", INT8-quantised" if graph.signature.quantized else ""
    if isinstance(graph, EmbedderGraph):
        return f"ArcFace-style embedder ({graph.dim}-d, {graph.size}×{graph.size} {graph.layout}{q})"
    names = {"scrfd": "SCRFD", "yunet": "YuNet", "retinaface": "RetinaFace"}
    kps = "keypoints" if graph.keypoints else "no keypoints"
    size = f"{graph.input_hw[1]}×{graph.input_hw[0]}" if graph.input_hw else "dynamic"
    return f"{names[graph.kind]} detector ({len(graph.signature.outputs)} outputs, {kps}, {size} input{q})"

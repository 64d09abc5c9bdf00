"""Run faceatlas' ONNX graphs with PyTorch: the CUDA path where torch has CUDA but onnxruntime does not.

:class:`TorchSession` converts an ONNX file once with ``onnx2torch`` (pure Python) into a torch
module on a device and answers the part of ONNX Runtime's ``InferenceSession`` that faceatlas
uses: ``run(output_names | None, {input_name: array})``, ``get_inputs()``, ``get_outputs()``
(each with ``.name``, ``.shape``, ``.type``). Arrays go in as numpy, come back as numpy (float
outputs as float32), whatever the device and precision.

Chosen through :func:`faceatlas.models.runtime.create_session` by a pseudo-provider (``"torch"``,
``"torch:cpu"``, ``"torch:cuda"``, ``"torch:cuda:1"``, each optionally ending ``":fp16"``) or by
``FACEATLAS_BACKEND``; see that module.

- **fp16** runs under ``torch.autocast`` (convolutions and matrix products in half precision, the
  rest in float32) rather than ``.half()``: graphs that cast inside (dlib's ResNet casts its uint8
  input to float) stay well-typed. Inputs and outputs stay float32.
- **CUDA out of memory** on a batch: the batch is split in halves and each half retried, down to
  one item (logged once per session); a single item that does not fit is a :class:`ModelError`.
- **Graphs onnx2torch cannot convert**: a :class:`ModelError` naming the ops it has no converter
  for, raised when the session is created, never a crash mid-run. Two onnx2torch gaps are patched
  in the graph before conversion: weights reached through an ``Identity`` of an initializer (old
  PyTorch exports, e.g. RetinaFace) become initializers, and every graph output gets its own
  ``Identity`` so outputs of one multi-output node (MTCNN P-Net's ``Split``) come back one by one.
- onnx2torch's ``Slice`` indexes a tensor with a list of slices, which torch deprecates (and means
  to read as a tensor index); it is replaced by the same code indexing with a tuple.
- **CPU threads**: when the backend is the first to import torch, it sets ``OMP_WAIT_POLICY=PASSIVE``
  (unless set) so torch's idle OpenMP threads sleep instead of spinning, as onnxruntime's do here
  (see :func:`import_torch`: on a busy 2-core machine one analysis took 1.6-3.0 s spinning, 0.11 s not).
- ``torchvision``: onnx2torch imports it at import time for two ops (RoiAlign, NonMaxSuppression)
  that no faceatlas graph uses. Where it is missing or broken (PyPI's CUDA torchvision beside a CPU
  torch fails to import), onnx2torch is imported with a stand-in, and those two ops are refused.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceatlas.errors import InvalidArgumentError, ModelError

if TYPE_CHECKING:
    import onnx
    import torch

_log = logging.getLogger(__name__)

PREFIX = "torch"
_TORCHVISION_OPS = frozenset({"RoiAlign", "NonMaxSuppression"})
_IMPORT_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class TorchProvider:
    """A parsed ``torch[:device][:fp16|:fp32]`` pseudo-provider. ``device`` None: CUDA when torch sees
    a GPU, else the CPU; ``fp16`` None: not said (``FACEATLAS_FP16`` decides, see ``runtime``)."""

    device: str | None = None
    fp16: bool | None = None

    def name(self) -> str:
        return ":".join([PREFIX, *([self.device] if self.device else []), *(["fp16"] if self.fp16 else [])])


def parse_provider(name: str) -> TorchProvider | None:
    """The torch pseudo-provider ``name`` stands for, or None when it is not one (an onnxruntime provider)."""
    if name != PREFIX and not name.startswith(PREFIX + ":"):
        return None
    parts = name.split(":")[1:]
    fp16 = {"fp16": True, "fp32": False}.get(parts.pop()) if parts and parts[-1] in ("fp16", "fp32") else None
    device = ":".join(parts) or None
    if device is not None and device not in ("cpu", "cuda") and not _is_cuda_index(device):
        raise InvalidArgumentError(
            f"torch provider {name!r}: the device must be cpu, cuda or cuda:N, optionally followed by :fp16 "
            f"(e.g. 'torch:cuda:fp16'), got {device!r}"
        )
    return TorchProvider(device, fp16)


def _is_cuda_index(device: str) -> bool:
    kind, _, index = device.partition(":")
    return kind == "cuda" and index.isdigit()


def nvidia_gpu_visible() -> bool:
    """Whether an NVIDIA driver is loaded here: cheap (two file checks), no torch import."""
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")


@dataclass(frozen=True, slots=True)
class NodeArg:
    """An input or output as ``InferenceSession.get_inputs()`` describes it."""

    name: str
    shape: list[int | str | None]
    type: str  # "tensor(float)", "tensor(uint8)", ... as onnxruntime writes it


def import_torch() -> Any:
    """``torch``; when this is its first import, with OpenMP's idle threads sleeping rather than spinning
    (``OMP_WAIT_POLICY=PASSIVE`` unless set): spinning threads starve a busy CPU, as with onnxruntime
    (runtime.py turns its spinning off). Measured here on 2 loaded cores: a RetinaFace + dlib
    analysis of one image took 1.6-3.0 s spinning, 0.11 s passive."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError as exc:
        raise ModelError(
            f"the torch backend needs torch ({exc}); install it with pip install 'faceatlas[torch]'"
        ) from exc
    return torch


def import_onnx2torch() -> Any:
    """``onnx2torch``, importable even where ``torchvision`` is missing or fails to import (see module doc)."""
    import_torch()
    with _IMPORT_LOCK:
        if "onnx2torch" in sys.modules:  # imported before, maybe by the caller: patch it all the same
            return _patched(sys.modules["onnx2torch"])
        try:
            import torchvision  # noqa: F401  (onnx2torch needs it importable; nothing here uses it)
        except (ImportError, RuntimeError, OSError, AttributeError):  # missing, or a CUDA build beside a CPU torch
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            stand_in = _torchvision_stand_in()
            sys.modules.update(stand_in)
            try:
                return _import_onnx2torch_module()
            finally:  # the stand-in is for onnx2torch alone: a later `import torchvision` gets the real one
                for name in stand_in:
                    sys.modules.pop(name, None)
        return _import_onnx2torch_module()


def _import_onnx2torch_module() -> Any:
    try:
        import onnx2torch
    except ImportError as exc:
        raise ModelError(
            f"the torch backend needs onnx2torch and torch ({exc}); install them with pip install 'faceatlas[torch]'"
        ) from exc
    return _patched(onnx2torch)


def _patched(onnx2torch: Any) -> Any:
    slicing = getattr(onnx2torch.node_converters, "slice", None)
    if slicing is not None and hasattr(slicing, "_do_slice"):
        slicing._do_slice = _do_slice
    return onnx2torch


def _do_slice(x: torch.Tensor, flip_dims: list, pos_axes_slices: list, neg_axes_slices: list) -> torch.Tensor:
    """onnx2torch 1.5's Slice, indexing with a tuple of slices: it indexes with a list, which torch
    deprecates (a warning on every RetinaFace run) and means to read as a tensor index later."""
    import torch

    if flip_dims:
        x = torch.flip(x, dims=flip_dims)
    if pos_axes_slices:
        x = x[tuple(pos_axes_slices)]
    if neg_axes_slices:
        x = x[tuple(neg_axes_slices)]
    return x


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise ModelError("this graph needs torchvision (RoiAlign / NonMaxSuppression), which does not import here")

    root, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    for name in ("roi_align", "nms", "box_convert"):
        setattr(ops, name, refuse)
    root.ops = ops  # type: ignore[attr-defined]
    return {"torchvision": root, "torchvision.ops": ops}


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """The ops of ``model`` that onnx2torch has no converter for, as ``"Op (domain, opset N)"``, sorted."""
    onnx2torch = import_onnx2torch()
    registry = onnx2torch.node_converters.registry
    torchvision_works = _torchvision_is_real(onnx2torch)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    missing = set()
    for node in model.graph.node:
        domain = node.domain or "ai.onnx"
        label = f"{node.op_type} ({domain}, opset {opsets.get(domain, '?')})"
        if domain not in opsets:
            missing.add(label)
            continue
        try:
            registry.get_converter(operation_type=node.op_type, version=opsets[domain], domain=node.domain)
        except NotImplementedError:
            missing.add(label)
            continue
        if node.op_type in _TORCHVISION_OPS and not torchvision_works:
            missing.add(label + " [needs torchvision, which does not import here]")
    return sorted(missing)


def _torchvision_is_real(onnx2torch: Any) -> bool:
    module = getattr(getattr(onnx2torch.node_converters, "nms", None), "torchvision", None)
    return bool(module is not None and getattr(module, "__file__", None))


_ONNX_TYPES = {1: "float", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "double"}
_NUMPY_TYPES = {f"tensor({name})": np.dtype("float32" if name == "float" else name) for name in _ONNX_TYPES.values()}


def _node_arg(value: onnx.ValueInfoProto) -> NodeArg:
    tensor = value.type.tensor_type
    shape: list[int | str | None] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
    ]
    return NodeArg(value.name, shape, f"tensor({_ONNX_TYPES.get(tensor.elem_type, str(tensor.elem_type))})")


def _prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with the two onnx2torch gaps patched (see the module doc); ``model`` is not changed."""
    import onnx

    patched = onnx.ModelProto()
    patched.CopyFrom(model)
    graph = patched.graph
    inits = {t.name: t for t in graph.initializer}
    keep = []
    for node in graph.node:  # nodes are in topological order, so chains of Identity fold too
        if node.op_type == "Identity" and not node.domain and node.input[0] in inits:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(inits[node.input[0]])
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            inits[tensor.name] = tensor
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    for i, output in enumerate(graph.output):
        wrapped = f"{output.name}__faceatlas_output_{i}"
        graph.node.append(onnx.helper.make_node("Identity", [output.name], [wrapped], name=f"faceatlas_output_{i}"))
        output.name = wrapped
    return patched


def resolve_device(wanted: str | None) -> str:
    """``wanted`` checked against this machine: None picks CUDA when torch sees a GPU, else the CPU.

    Asking for CUDA where torch sees none is a :class:`ModelError` (no silent fallback: a run that
    was meant for a GPU should not quietly take a hundred times longer).
    """
    import torch

    if wanted is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda"):
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
            raise ModelError(
                f"the torch backend was asked for {wanted!r} but torch sees no CUDA GPU ({build}); "
                "use 'torch:cpu', or FACEATLAS_BACKEND=auto to take the GPU only where there is one"
            )
        index = int(wanted.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelError(
                f"the torch backend was asked for {wanted!r}; torch sees {torch.cuda.device_count()} GPU(s)"
            )
    return wanted


class TorchSession:
    """An ONNX graph converted to torch and run on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``,
    None: CUDA when visible), in fp16 autocast when ``fp16``; ``threads`` > 0 sets torch's CPU
    threads (process-wide, as torch has one pool). ``channels_last`` lays 4-D weights out NHWC
    (often faster for convolutions on CUDA; off by default until measured).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | None = None,
        fp16: bool = False,
        threads: int = 0,
        channels_last: bool = False,
    ) -> None:
        import onnx

        onnx2torch = import_onnx2torch()
        torch = import_torch()

        self.path = Path(path)
        self.device = resolve_device(device)
        self.fp16 = bool(fp16)
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            model = onnx.load(str(self.path))
        except Exception as exc:
            raise ModelError(f"the torch backend could not load {path}: {exc}") from exc
        self._inputs = [
            _node_arg(v) for v in model.graph.input if v.name not in {t.name for t in model.graph.initializer}
        ]
        self._outputs = [_node_arg(v) for v in model.graph.output]
        missing = unsupported_ops(model)
        if missing:
            raise ModelError(
                f"the torch backend cannot run {self.path.name}: onnx2torch has no converter for {', '.join(missing)}; "
                "run this model on onnxruntime instead (providers=['CPUExecutionProvider'] or FACEATLAS_BACKEND=onnxruntime)"
            )
        try:
            module = onnx2torch.convert(_prepare(model)).eval()
        except Exception as exc:
            raise ModelError(f"onnx2torch could not convert {self.path.name}: {type(exc).__name__}: {exc}") from exc
        module = module.to(self.device)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self._module = module
        self._oom_logged = False

    def __repr__(self) -> str:
        return f"TorchSession({self.path.name!r}, device={self.device!r}, fp16={self.fp16})"

    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [TorchProvider(self.device, self.fp16).name()]

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray], run_options: object = None
    ) -> list[np.ndarray]:
        """The named outputs (all, in graph order, for None) for ``input_feed``, as numpy arrays."""
        del run_options  # onnxruntime's; nothing to set here
        names = [o.name for o in self._outputs]
        wanted = names if output_names is None else list(output_names)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise InvalidArgumentError(f"{self.path.name} has no output {unknown}; its outputs are {names}")
        expected = {i.name for i in self._inputs}
        if set(input_feed) != expected:
            raise InvalidArgumentError(f"{self.path.name} takes inputs {sorted(expected)}, got {sorted(input_feed)}")
        arrays = [self._checked(i, input_feed[i.name]) for i in self._inputs]
        outputs = self._run_splitting(arrays)
        return [outputs[names.index(n)] for n in wanted]

    def _checked(self, arg: NodeArg, value: np.ndarray) -> np.ndarray:
        """``value`` as an array of the input's declared type: like onnxruntime, no silent casting."""
        array = np.asarray(value)
        declared = _NUMPY_TYPES.get(arg.type)
        if declared is not None and array.dtype != declared:
            raise InvalidArgumentError(
                f"{self.path.name}: input {arg.name!r} must be {arg.type}, got a {array.dtype} array"
            )
        return array

    def _run_splitting(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """One forward pass; on CUDA out of memory, the batch in halves (recursively), results joined."""
        import torch

        out_of_memory = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError  # torch < 2.5
        try:
            return self._forward(arrays)
        except out_of_memory as exc:
            size = len(arrays[0]) if arrays and arrays[0].ndim else 0
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if size < 2 or any(len(a) != size for a in arrays):
                raise ModelError(
                    f"{self.path.name} ran out of memory on {self.device} with a batch of {max(size, 1)}: {exc}"
                ) from exc
            if not self._oom_logged:
                self._oom_logged = True
                _log.warning(
                    "faceatlas: %s ran out of memory on %s with a batch of %d; splitting batches in halves",
                    self.path.name,
                    self.device,
                    size,
                )
            half = size // 2
            first = self._run_splitting([a[:half] for a in arrays])
            second = self._run_splitting([a[half:] for a in arrays])
            return [np.concatenate([x, y]) for x, y in zip(first, second, strict=True)]
        except ModelError:
            raise
        except RuntimeError as exc:  # e.g. a shape the graph cannot take: say which model and inputs
            shapes = ", ".join(f"{i.name} {a.shape}" for i, a in zip(self._inputs, arrays, strict=True))
            raise ModelError(f"{self.path.name} failed on {self.device} for inputs {shapes}: {exc}") from exc

    def _forward(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            tensors = [_to_tensor(a, self.device) for a in arrays]
            if self.fp16:
                with torch.autocast(device_type=self.device.partition(":")[0], dtype=torch.float16):
                    result = self._module(*tensors)
            else:
                result = self._module(*tensors)
            results = [result] if isinstance(result, torch.Tensor) else list(result)
            if len(results) != len(self._outputs):
                raise ModelError(
                    f"{self.path.name}: the converted module gave {len(results)} outputs, the graph declares "
                    f"{len(self._outputs)}"
                )
            return [_to_numpy(t) for t in results]


def _to_tensor(array: np.ndarray, device: str) -> torch.Tensor:
    import torch

    if not array.flags.writeable or not array.flags.c_contiguous:  # from_numpy shares memory: never a read-only view
        array = np.array(array, order="C")
    tensor = torch.from_numpy(array)
    return tensor.to(device, non_blocking=True) if device != "cpu" else tensor


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    if tensor.is_floating_point():
        tensor = tensor.float()
    return np.asarray(tensor.cpu().numpy())

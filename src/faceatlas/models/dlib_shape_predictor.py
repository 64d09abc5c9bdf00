"""dlib's shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014) in numpy.

Gives the same landmarks as ``dlib.shape_predictor`` (checked against ``dlib-bin`` in the
tests) without importing dlib. Written from dlib's ``image_processing/shape_predictor.h``,
``geometry/point_transforms.h``, ``geometry/vector.h``, ``matrix/matrix.h``, ``serialize.h``,
``float_details.h`` and ``pixel.h``.

File format (``serialize(shape_predictor)``), every field a packed integer or a float (two
packed integers, see :class:`~faceatlas.models.dlib_format.DlibReader`):

- int version (1);
- ``matrix<float,0,1> initial_shape``: nr and nc (written negated), then nr*nc floats
  (x0, y0, x1, y1, ...; the mean shape in the [0,1]² frame of the detection box);
- ``forests``: a std::vector (unsigned length, then the items) of cascade levels, each a
  std::vector of ``regression_tree``: ``splits`` (a std::vector of (unsigned idx1, unsigned
  idx2, float thresh)) then ``leaf_values`` (a std::vector of ``matrix<float,0,1>``);
- ``anchor_idx``: per level, a std::vector of unsigned (the shape point each feature pixel
  hangs from);
- ``deltas``: per level, a std::vector of ``dlib::vector<float,2>`` (x then y): the feature
  pixel's offset from its anchor in the initial shape.

Prediction (``shape_predictor::operator()``), for a box ``(left, top, right, bottom)``:
``current = initial_shape``; for each level, ``M`` = the 2x2 part of the least-squares
similarity transform from ``initial_shape`` to ``current`` (Umeyama, in double, cast to
float); feature pixel ``i`` is at ``M @ deltas[i] + current[anchor_idx[i]]`` (float), mapped
into the image by the box transform ``(u, v) -> (left + u*(right-left), top + v*(bottom-top))``
(in double; it sends (0,0) to the top-left corner and (1,1) to the bottom-right one, so the
inclusive right/bottom pixel and not ``right+1``; dlib fits it with a pseudo-inverse whose
rounding errors are reproduced here, see ``_DLIB_PINV_P``), rounded with ``floor(x + 0.5)``;
its value is the grayscale intensity there, 0 outside the image. Each tree walks from the root,
``node = 2*node+1`` if ``f[idx1] - f[idx2] > thresh`` else ``2*node+2``, to leaf ``node -
len(splits)``, whose vector is added to ``current`` (in float, tree after tree). Finally
each point goes through the box transform and is rounded to an integer pixel (dlib's
``point``); :meth:`ShapePredictor.predict` can also return the unrounded positions.

For an RGB image dlib's intensity is ``(r + g + b) // 3`` (integer division, see
:func:`dlib_gray`), not the luma weights of OpenCV or PIL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.models.dlib_format import DlibReader, read_source

__all__ = [
    "SHAPE_PREDICTOR_5_FILE",
    "ShapePredictor",
    "ShapePredictorModel",
    "dlib_gray",
    "read_shape_predictor",
    "shape_predictor_5_path",
]

SHAPE_PREDICTOR_5_FILE = "shape_predictor_5_face_landmarks.dat"

# dlib::float_details codes for special values
_FLOAT_IS_INF = 32000
_FLOAT_IS_NINF = 32001
_FLOAT_IS_NAN = 32002

# dlib maps the [0,1]² shape frame into the image with ``unnormalizing_tform(rect)``, an affine
# transform fitted by ``find_affine_transform`` to (0,0)->tl, (1,0)->tr, (1,1)->br, i.e.
# ``Q @ pinv(P)`` with Q the three corners (as float) and P = [[0,1,1],[0,0,1],[1,1,1]] the
# fixed source points in homogeneous columns. dlib's pinv (an SVD) is a few ulps off the exact
# inverse, so the transform is too (e.g. 255.99999999999997 for a width of 256), and those
# ulps decide how a feature pixel lying exactly on a half pixel is rounded (such ties need box
# sizes with large powers of two; about one box in a few thousand of size 2**k is affected, and
# its landmarks then move by up to tens of pixels). These are the nine
# doubles of dlib's pinv(P), from dlib's own svd3 compiled without FMA (g++ -O2, x86-64), which
# dlib-bin reproduces (tests/test_dlib_shape_predictor.py checks boxes with exact ties).
_DLIB_PINV_P = np.array(
    [
        [float.fromhex("-0x1.0000000000001p+0"), float.fromhex("-0x1p-52"), float.fromhex("0x1.0000000000001p+0")],
        [float.fromhex("0x1.ffffffffffffdp-1"), float.fromhex("-0x1.ffffffffffffbp-1"), float.fromhex("0x1.8p-53")],
        [0.0, float.fromhex("0x1.0000000000001p+0"), float.fromhex("0x1.8p-54")],
    ]
)

_CORNER_COLUMNS = np.array([[0, 2, 2], [1, 1, 3]])  # tl, tr, br of (left, top, right, bottom)

_CHUNK = 1024  # bytes per chunk of the vectorised tokenizer
_MAX_LUT_SPLITS = 16  # trees with at most this many splits are walked through a lookup table


# -- the model -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ShapePredictorModel:
    """A parsed dlib shape predictor; all arrays are read-only.

    With P parts, C cascade levels of T trees of S splits and L = S + 1 leaves, and F
    feature pixels per level:

    - ``initial_shape``: (P, 2) float32, the mean shape in the box's [0,1]² frame;
    - ``split_idx1``, ``split_idx2``: (C, T, S) int64, feature pixel indices (< F);
    - ``split_thresh``: (C, T, S) float32;
    - ``leaf_values``: (C, T, L, P, 2) float32, the shape increments;
    - ``anchor_idx``: (C, F) int64, the part each feature pixel is anchored to (< P);
    - ``deltas``: (C, F, 2) float32, its offset from that part in ``initial_shape``.
    """

    initial_shape: np.ndarray
    split_idx1: np.ndarray
    split_idx2: np.ndarray
    split_thresh: np.ndarray
    leaf_values: np.ndarray
    anchor_idx: np.ndarray
    deltas: np.ndarray

    @property
    def num_parts(self) -> int:
        return int(self.initial_shape.shape[0])

    @property
    def num_cascades(self) -> int:
        return int(self.split_idx1.shape[0])

    @property
    def trees_per_cascade(self) -> int:
        return int(self.split_idx1.shape[1])

    @property
    def tree_depth(self) -> int:
        return int(self.leaf_values.shape[2]).bit_length() - 1

    @property
    def num_feature_pixels(self) -> int:
        return int(self.anchor_idx.shape[1])

    def __repr__(self) -> str:
        return (
            f"ShapePredictorModel(parts={self.num_parts}, cascades={self.num_cascades}, "
            f"trees={self.trees_per_cascade}, depth={self.tree_depth}, "
            f"feature_pixels={self.num_feature_pixels})"
        )


def shape_predictor_5_path() -> Path:
    """Path of ``shape_predictor_5_face_landmarks.dat`` inside ``face_recognition_models``
    (found without importing it; :class:`ModelError` with the fix when it is missing)."""
    from faceatlas.models.cards import DLIB_SHAPE_PREDICTOR_CARD

    return DLIB_SHAPE_PREDICTOR_CARD.source[0].locate()


# -- reading ---------------------------------------------------------------------------------


def _token_starts(b: np.ndarray) -> tuple[np.ndarray, int]:
    """Start offsets of the packed integers that follow each other from offset 0.

    A packed integer is a control byte whose low nibble n says how many bytes follow, so the
    tokens form a chain ``p -> p + 1 + (b[p] & 15)``. Walking it in Python costs ~1 s for a
    9 MB file; here the bytes are cut into chunks, each chunk works out in one vectorised
    backward sweep where a chain entering it at each offset leaves it, the entries are linked
    chunk to chunk, and a forward sweep marks the tokens. Returns the starts and the offset
    just past the last token (> len(b) when the data ends inside a token).
    """
    n = b.size
    if n == 0:
        return np.zeros(0, np.int64), 0
    if n >= 1 << 30:
        raise ValueError("files of 1 GiB or more are not supported")
    k = -(-n // _CHUNK)
    step = np.ones(k * _CHUNK + 16, np.uint8)  # padding: steps of 1 past the end
    step[:n] += b & 15
    # transposed: row o holds offset o of every chunk, so the sweep reads contiguous rows
    step_t = np.ascontiguousarray(step[: k * _CHUNK].reshape(k, _CHUNK).T).astype(np.int32)
    base = np.arange(k, dtype=np.int32) * _CHUNK
    cols = np.arange(k, dtype=np.int32)
    # exits[o, c]: the first token start at or after chunk c+1, for a chain at offset o of c
    exits = np.empty((_CHUNK, k), np.int32)
    flat_exits = exits.reshape(-1)
    for o in range(_CHUNK - 1, -1, -1):
        nxt = step_t[o] + o
        inside = nxt < _CHUNK
        later = flat_exits[np.minimum(nxt, _CHUNK - 1) * k + cols]
        np.copyto(exits[o], np.where(inside, later, base + nxt))
    # link the chunks: where the true chain enters each one
    entries = np.empty(k, np.int64)
    pos = 0
    for c in range(k):
        entries[c] = pos
        pos = int(flat_exits[(pos - c * _CHUNK) * k + c])
    # mark the tokens, all chunks at once
    marks = np.zeros(k * _CHUNK + 16, bool)
    cur = entries
    limit = np.minimum(base.astype(np.int64) + _CHUNK, n)
    active = cur < limit
    while active.any():
        idx = cur[active]
        marks[idx] = True
        cur[active] = idx + step[idx].astype(np.int64)
        active &= cur < limit
    starts = np.flatnonzero(marks[:n])
    return starts, int(starts[-1]) + int(step[starts[-1]])


def _decode_tokens(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """All packed integers of ``data``: (values as int64, start offsets)."""
    b = np.frombuffer(data, np.uint8)
    r = DlibReader(data, source)
    try:
        starts, end = _token_starts(b)
    except ValueError as exc:
        raise r.error(str(exc)) from None
    if end != b.size:
        r.pos = int(starts[-1]) if starts.size else 0
        raise r.error(f"unexpected end of data: the last packed integer needs {end - b.size} more bytes")
    ctrl = b[starts]
    size = ctrl & 0x0F
    bad = (size == 0) | (size > 8) | ((ctrl & 0x70) != 0)
    if bad.any():
        r.pos = int(starts[np.argmax(bad)])
        raise r.error(f"invalid packed integer control byte 0x{b[r.pos]:02x}")
    padded = np.zeros(b.size + 8, np.uint8)
    padded[: b.size] = b
    # the 8 bytes after each control byte, as one little-endian uint64, then masked to size
    windows = np.lib.stride_tricks.as_strided(padded, shape=(b.size, 8), strides=(1, 1))
    raw = np.ascontiguousarray(windows[starts + 1]).view("<u8").reshape(-1)
    masks = np.array([0] + [(1 << (8 * i)) - 1 for i in range(1, 9)], np.uint64)
    mag = raw & masks[size]
    if (mag >> np.uint64(63)).any():
        r.pos = int(starts[np.argmax(mag >> np.uint64(63))])
        raise r.error("packed integer out of the int64 range")
    values = mag.astype(np.int64)
    np.negative(values, out=values, where=(ctrl & 0x80) != 0)
    return values, starts


def _as_floats(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """dlib::float_details (mantissa * 2**exponent, with codes for inf/nan) as float32."""
    special = exponent >= _FLOAT_IS_INF
    exp = np.where(special, 0, exponent)
    if (np.abs(exp) > 2000).any():
        raise ValueError("float exponent out of range")
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(mantissa.astype(np.float64), exp.astype(np.int32)).astype(np.float32)
    if special.any():
        out[exponent == _FLOAT_IS_INF] = np.inf
        out[exponent == _FLOAT_IS_NINF] = -np.inf
        out[exponent == _FLOAT_IS_NAN] = np.nan
        if (special & (exponent > _FLOAT_IS_NAN)).any():
            raise ValueError("unknown float exponent code")
    return out


class _Tokens:
    """A cursor over the decoded integers, with errors pointing at the byte offset."""

    def __init__(self, values: np.ndarray, starts: np.ndarray, data: bytes, source: str) -> None:
        self.values = values
        self.starts = starts
        self.i = 0
        self._reader = DlibReader(data, source)
        self._size = len(data)

    def error(self, message: str) -> ModelError:
        self._reader.pos = int(self.starts[self.i]) if self.i < self.starts.size else self._size
        return self._reader.error(message)

    def take(self, count: int, what: str) -> np.ndarray:
        if count < 0 or self.i + count > self.values.size:
            raise self.error(f"unexpected end of data reading {what}")
        out = self.values[self.i : self.i + count]
        self.i += count
        return out

    def read_int(self, what: str) -> int:
        return int(self.take(1, what)[0])

    def uint(self, what: str, at_most: int = 1 << 31) -> int:
        value = self.read_int(what)
        if value < 0 or value > at_most:
            self.i -= 1
            raise self.error(f"implausible {what}: {value}")
        return value

    def floats(self, count: int, what: str) -> np.ndarray:
        pairs = self.take(2 * count, what).reshape(-1, 2)
        try:
            return _as_floats(pairs[:, 0], pairs[:, 1])
        except ValueError as exc:
            self.i -= 2 * count
            raise self.error(f"{exc} reading {what}") from None

    def matrix_shape(self, what: str) -> tuple[int, int]:
        nr, nc = self.read_int(f"{what} (rows)"), self.read_int(f"{what} (columns)")
        return abs(nr), abs(nc)  # new format writes them negated


def _read_vector_block(t: _Tokens, item_tokens: int, what: str) -> np.ndarray:
    """A std::vector whose items are ``item_tokens`` packed integers each: (len, item_tokens)."""
    count = t.uint(f"{what} (length)")
    return t.take(count * item_tokens, what).reshape(count, item_tokens)


def _parse(data: bytes, source: str) -> ShapePredictorModel:
    values, starts = _decode_tokens(data, source)
    t = _Tokens(values, starts, data, source)

    version = t.read_int("shape_predictor version")
    if version != 1:
        t.i -= 1
        raise t.error(f"unexpected shape_predictor version {version} (expected 1); not a dlib shape predictor file")
    nr, nc = t.matrix_shape("initial_shape")
    if nc != 1 or nr == 0 or nr % 2:
        raise t.error(f"initial_shape is {nr}x{nc}, expected an even-length column vector")
    initial = t.floats(nr, "initial_shape").reshape(-1, 2)
    dim = nr
    num_parts = dim // 2

    num_cascades = t.uint("number of cascade levels", 10_000)
    if num_cascades == 0:
        raise t.error("the model has no cascade levels")
    forests: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    layout: tuple[int, int] | None = None
    for c in range(num_cascades):
        num_trees = t.uint(f"number of trees of level {c}", 1 << 20)
        if num_trees == 0:
            raise t.error(f"cascade level {c} has no trees")
        # every tree of dlib's trainer has the same depth: read the first tree's sizes, then
        # the whole level as one regular block and check that it is regular
        head = t.i
        num_splits = t.uint(f"number of splits of level {c}", 1 << 20)
        num_leaves_at = t.i + 4 * num_splits
        if num_leaves_at >= values.size:
            raise t.error(f"unexpected end of data in level {c}")
        num_leaves = int(values[num_leaves_at])
        if num_leaves != num_splits + 1 or num_leaves & (num_leaves - 1):
            t.i = num_leaves_at
            raise t.error(f"tree with {num_splits} splits and {num_leaves} leaves (expected a full binary tree)")
        if layout is None:
            layout = (num_splits, num_leaves)
        elif layout != (num_splits, num_leaves):
            t.i = head
            raise t.error(f"level {c} has trees of {num_splits} splits, level 0 of {layout[0]} (unsupported)")
        leaf_tokens = 2 + 2 * dim
        tree_tokens = 1 + 4 * num_splits + 1 + num_leaves * leaf_tokens
        t.i = head
        block = t.take(num_trees * tree_tokens, f"the trees of level {c}").reshape(num_trees, tree_tokens)
        splits = block[:, 1 : 1 + 4 * num_splits].reshape(num_trees, num_splits, 4)
        leaves = block[:, 2 + 4 * num_splits :].reshape(num_trees, num_leaves, leaf_tokens)
        irregular = (
            (block[:, 0] != num_splits)
            | (block[:, 1 + 4 * num_splits] != num_leaves)
            | (np.abs(leaves[:, :, 0]) != dim).any(axis=1)
            | (np.abs(leaves[:, :, 1]) != 1).any(axis=1)
        )
        if irregular.any():
            t.i = head + int(np.argmax(irregular)) * tree_tokens
            raise t.error(
                f"tree {int(np.argmax(irregular))} of level {c} differs in size from the first "
                f"({num_splits} splits, {num_leaves} leaves of {dim} values)"
            )
        try:
            thresh = _as_floats(splits[:, :, 2].reshape(-1), splits[:, :, 3].reshape(-1))
            leaf = _as_floats(leaves[:, :, 2::2].reshape(-1), leaves[:, :, 3::2].reshape(-1))
        except ValueError as exc:
            t.i = head
            raise t.error(f"{exc} in the trees of level {c}") from None
        forests.append(
            (
                splits[:, :, 0],
                splits[:, :, 1],
                thresh.reshape(num_trees, num_splits),
                leaf.reshape(num_trees, num_leaves, num_parts, 2),
            )
        )
    if len({f[0].shape[0] for f in forests}) != 1:
        raise t.error("cascade levels with different numbers of trees are not supported")

    n_anchor_levels = t.uint("number of anchor_idx levels", 10_000)
    if n_anchor_levels != num_cascades:
        raise t.error(f"{n_anchor_levels} anchor_idx levels for {num_cascades} cascade levels")
    anchors = [_read_vector_block(t, 1, f"anchor_idx of level {c}")[:, 0] for c in range(num_cascades)]
    n_delta_levels = t.uint("number of deltas levels", 10_000)
    if n_delta_levels != num_cascades:
        raise t.error(f"{n_delta_levels} deltas levels for {num_cascades} cascade levels")
    deltas = []
    for c in range(num_cascades):
        count = t.uint(f"deltas of level {c} (length)")
        deltas.append(t.floats(2 * count, f"deltas of level {c}").reshape(count, 2))
    if t.i != values.size:
        raise t.error(f"{values.size - t.i} unexpected trailing values after the shape predictor")

    num_features = anchors[0].size
    for c in range(num_cascades):
        if anchors[c].size != num_features or deltas[c].shape[0] != num_features:
            raise t.error(
                f"level {c}: {anchors[c].size} anchors and {deltas[c].shape[0]} deltas, expected {num_features}"
            )
        if anchors[c].size and (anchors[c].min() < 0 or anchors[c].max() >= num_parts):
            raise t.error(f"level {c}: anchor index out of range (parts: {num_parts})")
        for idx in (forests[c][0], forests[c][1]):
            if idx.size and (idx.min() < 0 or idx.max() >= num_features):
                raise t.error(f"level {c}: split feature index out of range (feature pixels: {num_features})")

    def frozen(a: np.ndarray, dtype: type) -> np.ndarray:
        out: np.ndarray = np.ascontiguousarray(a, dtype=dtype)
        out.flags.writeable = False
        return out

    return ShapePredictorModel(
        initial_shape=frozen(initial, np.float32),
        split_idx1=frozen(np.stack([f[0] for f in forests]), np.int64),
        split_idx2=frozen(np.stack([f[1] for f in forests]), np.int64),
        split_thresh=frozen(np.stack([f[2] for f in forests]), np.float32),
        leaf_values=frozen(np.stack([f[3] for f in forests]), np.float32),
        anchor_idx=frozen(np.stack(anchors), np.int64),
        deltas=frozen(np.stack(deltas), np.float32),
    )


def read_shape_predictor(source: str | os.PathLike[str] | bytes, name: str | None = None) -> ShapePredictorModel:
    """Parse a dlib shape predictor file (a path or its bytes).

    Raises :class:`ModelError` on a truncated or corrupt file, on trailing bytes and on
    anything that is not a dlib ``shape_predictor``. ``name`` labels the data in messages.
    """
    data, label = read_source(source, name, "dlib shape predictor file")
    return _parse(data, label)


# -- prediction ------------------------------------------------------------------------------


def dlib_gray(rgb: np.ndarray) -> np.ndarray:
    """dlib's grayscale of an HxWx3 RGB uint8 image: ``(r + g + b) // 3`` per pixel (HxW uint8).

    That is ``get_pixel_intensity(rgb_pixel)`` (the integer mean, truncated: not the luma
    weights of OpenCV or PIL), what ``dlib.shape_predictor`` reads from an RGB image. A 2-D
    uint8 array is returned as is.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise InvalidArgumentError(f"expected a uint8 image, got {arr.dtype}")
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidArgumentError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    total = arr[:, :, 0].astype(np.uint16)
    total += arr[:, :, 1]
    total += arr[:, :, 2]
    return (total // 3).astype(np.uint8)


def _leaf_lut(num_splits: int) -> np.ndarray:
    """Leaf reached for each bit pattern of the splits' outcomes (bit j: split j went left)."""
    codes = np.arange(1 << num_splits, dtype=np.int64)
    node = np.zeros_like(codes)
    while True:
        inner = node < num_splits
        if not inner.any():
            break
        left = (codes >> np.minimum(node, num_splits - 1)) & 1
        node = np.where(inner, np.where(left == 1, 2 * node + 1, 2 * node + 2), node)
    return (node - num_splits).astype(np.int16)


class ShapePredictor:
    """Runs a :class:`ShapePredictorModel` on grayscale images.

    ``predict`` gives the landmarks ``dlib.shape_predictor`` gives for the same image and box.
    """

    def __init__(self, model: ShapePredictorModel) -> None:
        self.model = model
        m = model
        c, t, s = m.split_idx1.shape
        p = m.num_parts
        self._num_trees, self._num_splits, self._num_parts = t, s, p
        self._depth = m.tree_depth
        # the similarity fit in closed form (see _similarity): current (n, 2P) @ _sim gives
        # (A, B, -B, A) / (P * sigma_from), the initial shape being centred
        init = m.initial_shape.astype(np.float64)
        fr = init - init.mean(axis=0)
        sigma = float((fr**2).sum() / p)
        col_a = np.stack([fr[:, 0], fr[:, 1]], axis=1).reshape(-1)  # A = sum(x*fx + y*fy)
        col_b = np.stack([-fr[:, 1], fr[:, 0]], axis=1).reshape(-1)  # B = sum(y*fx - x*fy)
        self._sim = np.stack([col_a, col_b, -col_b, col_a], axis=1) / (p * sigma) if sigma else None
        # Trees of up to 16 splits: the splits' outcomes, padded to 8 or 16 with splits that
        # never go left, are packed into an integer that indexes a table of leaves.
        self._lut = _leaf_lut(s) if s <= _MAX_LUT_SPLITS else None
        s_pad = (8 if s <= 8 else 16) if self._lut is not None else s
        self._padded_splits = s_pad
        self._levels = []
        for i in range(c):
            anchor = m.anchor_idx[i].astype(np.intp)
            idx = np.zeros((2, t, s_pad), np.intp)
            idx[0, :, :s], idx[1, :, :s] = m.split_idx1[i], m.split_idx2[i]
            # feature values are integers 0..255, so (f1 - f2 > thresh) == (f1 - f2 > floor(thresh))
            with np.errstate(invalid="ignore"):
                thresh = np.floor(m.split_thresh[i].astype(np.float64))
            thresh = np.where(np.isnan(thresh), 32767, np.clip(thresh, -256, 256))
            thresh_pad = np.full((t, s_pad), 32767, np.int16)
            thresh_pad[:, :s] = thresh
            self._levels.append(
                (
                    np.ascontiguousarray(m.deltas[i, :, 0]),  # dx (F,) float32
                    np.ascontiguousarray(m.deltas[i, :, 1]),  # dy
                    np.stack([2 * anchor, 2 * anchor + 1]),  # (2, F) into current
                    idx.reshape(2, t * s_pad),
                    thresh_pad.reshape(t * s_pad),
                    np.ascontiguousarray(m.leaf_values[i].reshape(t * (s + 1), 2 * p)),
                )
            )
        self._leaf_offset = np.arange(t, dtype=np.intp) * (s + 1)

    @classmethod
    def from_package(cls) -> ShapePredictor:
        """dlib's 5-point face landmark model from ``face_recognition_models`` (parsed once)."""
        return cls(_package_model())

    @property
    def num_parts(self) -> int:
        return self._num_parts

    # -- API ---------------------------------------------------------------------------------

    def predict(
        self,
        gray: np.ndarray,
        box: tuple[float, float, float, float],
        *,
        subpixel: bool = False,
    ) -> np.ndarray:
        """Landmarks (num_parts, 2) float64, (x, y) in pixels (pixel centres are integers).

        ``gray``: HxW uint8 intensities as dlib sees them (:func:`dlib_gray` of an RGB image).
        ``box``: (left, top, right, bottom) as in ``dlib.rectangle``: right and bottom are the
        last pixel column/row inside the box, and the mean shape's (0,0) and (1,1) go to the
        centres of the top-left and bottom-right pixels. Integer boxes give exactly dlib's
        result. Float coordinates are used as they are (after a cast to float32, as dlib does
        with its integer corners), which dlib's integer rectangles cannot express; round them
        to reproduce dlib.

        By default the points are rounded to whole pixels with ``floor(x + 0.5)``, as dlib
        does when it stores them in a ``full_object_detection``. ``subpixel=True`` returns the
        positions before that rounding (same computation, no rounding step).
        """
        return self.predict_many(gray, [box], subpixel=subpixel)[0]

    def predict_many(self, gray: np.ndarray, boxes, *, subpixel: bool = False) -> np.ndarray:
        """:meth:`predict` for several boxes of one image at once: (n, num_parts, 2)."""
        img = np.asarray(gray)
        if img.ndim != 2 or img.dtype != np.uint8:
            raise InvalidArgumentError(
                f"expected an HxW uint8 grayscale image, got {img.dtype} {img.shape}; use dlib_gray()"
            )
        rects = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not (np.abs(rects) < 2**31).all():
            raise InvalidArgumentError("box coordinates must be finite and within +-2**31")
        n = rects.shape[0]
        if n == 0:
            return np.zeros((0, self._num_parts, 2), np.float64)
        tform = _box_transforms(rects)
        shape = self._run(img, tform).reshape(n, self._num_parts, 2).astype(np.float64)
        out = _apply(tform, shape[:, :, 0], shape[:, :, 1])  # (n, 2, P)
        if not subpixel:
            np.floor(out + 0.5, out=out)
        return out.transpose(0, 2, 1).copy()

    # -- internals ---------------------------------------------------------------------------

    def _similarity(self, current: np.ndarray) -> np.ndarray:
        """The 2x2 part of the similarity transform from the initial shape to each current
        shape, float32 (n, 2, 2, 1): ``[:, 0]`` = (a, b) and ``[:, 1]`` = (-b, a), the
        columns of ``[[a, -b], [b, a]]``.

        dlib's find_similarity_transform (Umeyama, via an SVD) in closed form: with ``cov``
        the covariance of the target and source points, the optimal ``c*R`` is
        ``[[A, -B], [B, A]] / sigma_from``, ``A = cov00 + cov11``, ``B = cov10 - cov01``.
        Computed in double and rounded to float like dlib's ``matrix_cast<float>``; the two
        computations differ by ulps of double, far below float's resolution.
        """
        n = current.shape[0]
        if self._sim is None:  # a one-point mean shape: dlib's c = 1 and R = I
            return np.repeat(np.array([[[[1], [0]], [[0], [1]]]], np.float32), n, axis=0)
        return (current.astype(np.float64) @ self._sim).astype(np.float32).reshape(n, 2, 2, 1)

    def _run(self, img: np.ndarray, tform: np.ndarray) -> np.ndarray:
        """The cascade: the final shapes (n, 2P) float32 in the [0,1]² frame."""
        n = tform.shape[0]
        h, w = img.shape
        flat_img = img.reshape(-1) if img.flags.c_contiguous else np.ascontiguousarray(img).reshape(-1)
        bounds = np.array([[w], [h]], np.uint64)
        t_x, t_y, t_off = tform[:, :, 0:1], tform[:, :, 1:2], tform[:, :, 2:3]
        t, d = self._num_trees, 2 * self._num_parts
        current = np.repeat(self.model.initial_shape.reshape(1, d), n, axis=0)
        buf = np.empty((t + 1, n, d), np.float32)  # the shape, then each tree's increment
        for dx, dy, anchor2, split_idx, thresh, leaves in self._levels:
            coef = self._similarity(current)
            # feature pixels in the shape frame, float32 in dlib's order: (m·delta) + anchor
            pts = coef[:, 0] * dx + coef[:, 1] * dy
            pts += np.take(current, anchor2, axis=1)  # (n, 2, F)
            # into the image in double (float32 operands are widened exactly), then
            # floor(x + 0.5) as dlib's conversion of a vector<double> to a point
            xy = t_x * pts[:, 0:1] + t_y * pts[:, 1:2]
            xy += t_off
            xy += 0.5
            xyi = np.floor(xy, out=xy).astype(np.int64)
            ok = xyi.view(np.uint64) < bounds  # 0 <= x < w and 0 <= y < h
            inside = ok[:, 0] & ok[:, 1]
            where = xyi[:, 1] * w + xyi[:, 0]
            where *= inside
            feats = flat_img[where]
            feats *= inside  # 0 outside the image
            # every split of every tree at once (exact in int16), then each tree's leaf
            pair = np.take(feats, split_idx, axis=1)  # (n, 2, T*S)
            go_left = np.subtract(pair[:, 0], pair[:, 1], dtype=np.int16) > thresh
            leaf = np.add(self._leaves_reached(go_left).T, self._leaf_offset[:, None], dtype=np.intp)
            # dlib adds the trees' leaf vectors to the shape one after the other, in float.
            # Reducing the outer axis of a C-contiguous array adds row after row (numpy sums
            # pairwise only along the innermost axis): a sequential float sum, per column.
            buf[0] = current
            np.take(leaves, leaf, axis=0, out=buf[1:], mode="clip")
            current = np.add.reduce(buf, axis=0)
        return current

    def _leaves_reached(self, go_left: np.ndarray) -> np.ndarray:
        """Leaf index (n, T) of each tree, from the splits' outcomes (n, T*S) (True: left)."""
        n = go_left.shape[0]
        t, s = self._num_trees, self._num_splits
        if self._lut is not None:
            code = np.packbits(go_left.reshape(-1), bitorder="little")
            if self._padded_splits == 16:
                code = code.view("<u2")
            return self._lut[code].reshape(n, t)
        flat = go_left.reshape(-1)
        node_rows = np.arange(n * t, dtype=np.intp) * s
        node = np.zeros(n * t, np.intp)
        for _ in range(self._depth):
            node = 2 * node + 2 - flat[node_rows + node]
        return (node - s).reshape(n, t)


def _box_transforms(rects: np.ndarray) -> np.ndarray:
    """dlib's ``unnormalizing_tform(rect)`` for each (left, top, right, bottom): (n, 2, 3).

    ``[:, :, :2]`` is the 2x2 matrix and ``[:, :, 2]`` the offset; ideally
    ``[[right-left, 0, left], [0, bottom-top, top]]``, computed as dlib does it (the corners
    as float, times dlib's pinv, summed in order) so that it carries dlib's rounding errors.
    """
    corners = rects.astype(np.float32).astype(np.float64)
    q = corners[:, _CORNER_COLUMNS]  # (n, 2, 3): [[left, right, right], [top, top, bottom]]
    a = _DLIB_PINV_P
    return (q[:, :, 0:1] * a[0] + q[:, :, 1:2] * a[1]) + q[:, :, 2:3] * a[2]


def _apply(tform: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m @ (u, v) + b`` per box in dlib's order of operations, for u, v (n, k): (n, 2, k)."""
    out = tform[:, :, 0:1] * u[:, None, :] + tform[:, :, 1:2] * v[:, None, :]
    out += tform[:, :, 2:3]
    return out


@lru_cache(maxsize=1)
def _package_model() -> ShapePredictorModel:
    return read_shape_predictor(shape_predictor_5_path())

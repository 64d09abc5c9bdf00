"""A plain numpy forward pass of MTCNN's three networks, straight from the Keras weights.

Written independently of the ONNX converter and in Keras' own NHWC layout (kernels HWIO, "same"
pools padded at the end, Permute((2, 1, 3)) before Flatten), so that it catches layout mistakes
in the converter rather than repeating them. Input: float32 NCHW normalised images (the same
contract as the ONNX graphs); outputs in the graphs' layout.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv_valid(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """NHWC 'valid' convolution, stride 1 (Keras Conv2D; cross-correlation)."""
    kh, kw = kernel.shape[:2]
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, H', W', C, kh, kw)
    out = np.einsum("nyxcij,ijco->nyxo", windows, kernel, optimize=True, dtype=np.float64)
    return (out + bias).astype(np.float32)


def prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * alpha.reshape(-1)).astype(np.float32)


def max_pool(x: np.ndarray, k: int, stride: int, padding: str) -> np.ndarray:
    """Keras MaxPooling2D; 'same' pads with -inf, putting the extra at the bottom/right."""
    n, h, w, c = x.shape
    if padding == "same":
        oh, ow = math.ceil(h / stride), math.ceil(w / stride)
        ph = max((oh - 1) * stride + k - h, 0)
        pw = max((ow - 1) * stride + k - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=-np.inf)
    else:
        oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    windows = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return windows[:, :oh, :ow].max(axis=(-2, -1))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) @ kernel + bias).astype(np.float32)


def keras_flatten(x: np.ndarray) -> np.ndarray:
    """Permute((2, 1, 3)) then Flatten, on NHWC."""
    return x.transpose(0, 2, 1, 3).reshape(x.shape[0], -1)


def pnet(w: list[np.ndarray], image_nchw: np.ndarray) -> dict[str, np.ndarray]:
    x = image_nchw.transpose(0, 2, 3, 1)
    x = max_pool(prelu(conv_valid(x, w[0], w[1]), w[2]), 2, 2, "same")
    x = prelu(conv_valid(x, w[3], w[4]), w[5])
    x = prelu(conv_valid(x, w[6], w[7]), w[8])
    reg = conv_valid(x, w[9], w[10])
    prob = softmax(conv_valid(x, w[11], w[12]))
    return {"prob": prob.transpose(0, 3, 1, 2), "bbox_reg": reg.transpose(0, 3, 1, 2)}


def rnet(w: list[np.ndarray], image_nchw: np.ndarray) -> dict[str, np.ndarray]:
    x = image_nchw.transpose(0, 2, 3, 1)
    x = max_pool(prelu(conv_valid(x, w[0], w[1]), w[2]), 3, 2, "same")
    x = max_pool(prelu(conv_valid(x, w[3], w[4]), w[5]), 3, 2, "valid")
    x = prelu(conv_valid(x, w[6], w[7]), w[8])
    x = prelu(dense(keras_flatten(x), w[9], w[10]), w[11])
    return {"prob": softmax(dense(x, w[14], w[15])), "bbox_reg": dense(x, w[12], w[13])}


def onet(w: list[np.ndarray], image_nchw: np.ndarray) -> dict[str, np.ndarray]:
    x = image_nchw.transpose(0, 2, 3, 1)
    x = max_pool(prelu(conv_valid(x, w[0], w[1]), w[2]), 3, 2, "same")
    x = max_pool(prelu(conv_valid(x, w[3], w[4]), w[5]), 3, 2, "valid")
    x = max_pool(prelu(conv_valid(x, w[6], w[7]), w[8]), 2, 2, "same")
    x = prelu(conv_valid(x, w[9], w[10]), w[11])
    x = prelu(dense(keras_flatten(x), w[12], w[13]), w[14])
    return {
        "prob": softmax(dense(x, w[19], w[20])),
        "bbox_reg": dense(x, w[15], w[16]),
        "landmarks": dense(x, w[17], w[18]),
    }


FORWARD = {"pnet": pnet, "rnet": rnet, "onet": onet}

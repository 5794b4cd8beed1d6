"""Network layers in numpy, float32, NCHW, with torch's semantics (the names and defaults of
``torch.nn.functional``): what the model's encoders need and nothing more."""

from __future__ import annotations

import numpy as np

EPS = 1e-5  # torch's default eps of GroupNorm and BatchNorm


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1, padding: int = 0) -> np.ndarray:
    """x (N, C, H, W), w (O, C, kh, kw), b (O,) -> (N, O, Ho, Wo): cross-correlation, zero padding."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    if kh == kw == 1 and padding == 0:
        xs = x[:, :, ::stride, ::stride]
        y = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], xs, optimize=True)
    else:
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
        Ho, Wo = win.shape[2:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
        y = (cols @ w.reshape(O, -1).T).reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2)
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y, dtype=np.float32)


def group_norm(x: np.ndarray, groups: int, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    N, C, H, W = x.shape
    g = x.reshape(N, groups, -1)
    mean = g.mean(-1, keepdims=True)
    var = g.var(-1, keepdims=True)
    y = ((g - mean) / np.sqrt(var + EPS)).reshape(N, C, H, W)
    return y * weight[None, :, None, None] + bias[None, :, None, None]


def batch_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Eval mode: the running statistics."""
    scale = weight / np.sqrt(var + EPS)
    return x * scale[None, :, None, None] + (bias - mean * scale)[None, :, None, None]


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, dtype=np.float32)


def max_pool2d(x: np.ndarray, k: int = 2) -> np.ndarray:
    N, C, H, W = x.shape
    return x[:, :, : H - H % k, : W - W % k].reshape(N, C, H // k, k, W // k, k).max((3, 5))


def avg_pool2d(x: np.ndarray, k: int) -> np.ndarray:
    N, C, H, W = x.shape
    return x[:, :, : H - H % k, : W - W % k].reshape(N, C, H // k, k, W // k, k).mean((3, 5))


def adaptive_avg_pool2d(x: np.ndarray, size: int) -> np.ndarray:
    N, C, H, W = x.shape
    out = np.empty((N, C, size, size), np.float32)
    for i in range(size):
        r0, r1 = (i * H) // size, -((-(i + 1) * H) // size)
        for j in range(size):
            c0, c1 = (j * W) // size, -((-(j + 1) * W) // size)
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean((2, 3))
    return out


def upsample_nearest2(x: np.ndarray) -> np.ndarray:
    return x.repeat(2, axis=2).repeat(2, axis=3)


def bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray, border: str = "zero") -> np.ndarray:
    """img (H, W, C) sampled at pixel positions x, y (any one shape S; pixel centres at integers)
    -> (S..., C), bilinearly, the weights in x's and y's dtype. A corner outside the image reads 0
    (``border="zero"``) or the nearest edge pixel (``"replicate"``). The one bilinear lookup of
    the runtime: torch's ``grid_sample``, TFLite's and MediaPipe's resampling are built on it."""
    H, W = img.shape[:2]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    out = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            v = img[np.clip(yi, 0, H - 1), np.clip(xi, 0, W - 1)]
            if border == "zero":
                v = v * ((xi >= 0) & (xi < W) & (yi >= 0) & (yi < H))[..., None]
            out = out + v * (wx * wy)
    return out


def grid_sample(m: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Bilinear samples of one map m (C, h, w) at grid (P, 2) in [-1, 1] (x, y) -> (P, C);
    ``align_corners=False``, zeros outside (``F.grid_sample`` on one image)."""
    _, h, w = m.shape
    x = ((grid[:, 0] + 1) * w - 1) / 2
    y = ((grid[:, 1] + 1) * h - 1) / 2
    return bilinear(m.transpose(1, 2, 0), x, y).astype(np.float32)


def weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The weight of ``torch.nn.utils.parametrizations.weight_norm`` (dim 0): g * v / |v| per row."""
    return (g * v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

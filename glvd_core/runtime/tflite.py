"""A numpy interpreter for the TFLite models the face detector runs (MediaPipe's, converted by
``scripts/convert_mediapipe_models.py`` into ``assets/mediapipe_models.npz``).

It runs the operators those models use, float32, batch 1, NHWC, with TFLite's semantics (SAME
padding as TensorFlow pads, fused activations) and MediaPipe's three custom operators of the
attention face mesh (``mediapipe/util/tflite/operations``, version 2).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .nn import bilinear

F32 = np.float32
ASSET = Path(__file__).resolve().parents[1] / "assets" / "mediapipe_models.npz"


def _act(x: np.ndarray, act: str | None) -> np.ndarray:
    if act == "relu":
        return np.maximum(x, 0)
    if act == "relu6":
        return np.clip(x, 0, 6)
    return x


def _same_pad(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of TensorFlow's SAME padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return out, total // 2, total - total // 2


def _padded(x: np.ndarray, kh: int, kw: int, o: dict, value: float = 0.0) -> np.ndarray:
    """x (1, H, W, C) padded for a kh x kw window with the op's padding and strides."""
    if o["padding"] == "valid":
        return x
    _, t, b = _same_pad(x.shape[1], kh, o["stride"][0])
    _, le, r = _same_pad(x.shape[2], kw, o["stride"][1])
    if t or b or le or r:
        x = np.pad(x, ((0, 0), (t, b), (le, r), (0, 0)), constant_values=value)
    return x


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, o: dict) -> np.ndarray:
    """x (1, H, W, Cin), w (Cout, kh, kw, Cin) -> (1, Ho, Wo, Cout)."""
    cout, kh, kw, cin = w.shape
    sh, sw = o["stride"]
    if o.get("dilation", [1, 1]) != [1, 1]:
        raise ValueError("dilated convolutions are not supported")
    xp = _padded(x, kh, kw, o)
    if kh == kw == 1:
        xs = xp[:, ::sh, ::sw]
        y = xs.reshape(-1, cin) @ w.reshape(cout, cin).T
        y = y.reshape(xs.shape[:3] + (cout,))
    else:
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
        ho, wo = win.shape[1:3]
        cols = win.reshape(ho * wo, cin * kh * kw)  # (C, kh, kw) order
        y = (cols @ w.transpose(0, 3, 1, 2).reshape(cout, -1).T).reshape(1, ho, wo, cout)
    if b is not None:
        y = y + b
    return _act(y.astype(F32, copy=False), o["act"])


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, o: dict) -> np.ndarray:
    """x (1, H, W, C), w (1, kh, kw, C * multiplier) -> (1, Ho, Wo, C * multiplier)."""
    _, kh, kw, cout = w.shape
    if o.get("depth_multiplier", 1) != 1 and cout != x.shape[3]:
        x = np.repeat(x, cout // x.shape[3], axis=3)
    sh, sw = o["stride"]
    xp = _padded(x, kh, kw, o)
    ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    y = np.empty((1, ho, wo, cout), F32)
    tmp = np.empty_like(y)
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            if i == j == 0:
                np.multiply(tap, w[0, 0, 0], out=y)
            else:
                np.add(y, np.multiply(tap, w[0, i, j], out=tmp), out=y)
    if b is not None:
        y += b
    return _act(y, o["act"])


def max_pool2d(x: np.ndarray, o: dict) -> np.ndarray:
    kh, kw = o["filter"]
    sh, sw = o["stride"]
    xp = _padded(x, kh, kw, o, -np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    return _act(win.max((-2, -1)), o["act"])


def avg_pool2d(x: np.ndarray, o: dict) -> np.ndarray:
    """Average over each window's pixels inside the image (TFLite does not count SAME padding)."""
    kh, kw = o["filter"]
    sh, sw = o["stride"]
    ones = np.ones(x.shape[:3] + (1,), F32)
    sums = [np.lib.stride_tricks.sliding_window_view(_padded(a, kh, kw, o), (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
            .sum((-2, -1)) for a in (x, ones)]
    return _act((sums[0] / sums[1]).astype(F32), o["act"])


def resize_bilinear(x: np.ndarray, size: np.ndarray, o: dict) -> np.ndarray:
    """x (1, H, W, C) -> (1, h, w, C), TFLite's RESIZE_BILINEAR (half-pixel centres or not)."""
    _, H, W, _ = x.shape
    h, w = (int(v) for v in size)

    def axis(n_in, n_out):
        if o["align_corners"] and n_out > 1:
            scale = (n_in - 1) / (n_out - 1)
        else:
            scale = n_in / n_out
        i = np.arange(n_out, dtype=F32)
        v = (i + 0.5) * scale - 0.5 if o["half_pixel_centers"] else i * scale
        lo = np.floor(v)
        frac = (v - lo).astype(F32)
        i0 = np.clip(lo, 0, n_in - 1).astype(int)
        i1 = np.clip(np.ceil(v), 0, n_in - 1).astype(int) if o["half_pixel_centers"] else np.minimum(i0 + 1, n_in - 1)
        return i0, i1, frac

    y0, y1, fy = axis(H, h)
    x0, x1, fx = axis(W, w)
    fx = fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    fy = fy[None, :, None, None]
    return (top * (1 - fy) + bottom * fy).astype(F32)


def depth_to_space(x: np.ndarray, b: int) -> np.ndarray:
    _, H, W, C = x.shape
    c = C // (b * b)
    return x.reshape(1, H, W, b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(1, H * b, W * b, c)


def transpose_conv_bias(x: np.ndarray, w: np.ndarray, bias: np.ndarray, o: dict) -> np.ndarray:
    """MediaPipe's Convolution2DTransposeBias: x (1, H, W, Cin), w (Cout, kh, kw, Cin), bias (Cout,)
    -> (1, H * s, W * s, Cout) with SAME padding (or the VALID size)."""
    _, H, W, cin = x.shape
    cout, kh, kw, _ = w.shape
    sh, sw = o["stride"]
    full = np.zeros((1, (H - 1) * sh + kh, (W - 1) * sw + kw, cout), F32)
    y = x.reshape(-1, cin) @ w.reshape(cout * kh * kw, cin).T  # (H*W, cout*kh*kw)
    y = y.reshape(H, W, cout, kh, kw)
    for i in range(kh):
        for j in range(kw):
            full[0, i:i + sh * (H - 1) + 1:sh, j:j + sw * (W - 1) + 1:sw] += y[:, :, :, i, j]
    if o["padding"] == "same":
        oh, ow = H * sh, W * sw
        t, le = max(kh - sh, 0) // 2, max(kw - sw, 0) // 2
        full = full[:, t:t + oh, le:le + ow]
    return full + bias


def strided_slice(x: np.ndarray, begin: np.ndarray, end: np.ndarray, strides: np.ndarray, o: dict) -> np.ndarray:
    idx = []
    for d in range(x.ndim):
        b = None if o["begin_mask"] >> d & 1 else int(begin[d])
        e = None if o["end_mask"] >> d & 1 else int(end[d])
        if o["shrink_axis_mask"] >> d & 1:
            idx.append(int(begin[d]))
        else:
            idx.append(slice(b, e, int(strides[d])))
    if o["ellipsis_mask"] or o["new_axis_mask"]:
        raise ValueError("STRIDED_SLICE with ellipsis or new axes is not supported")
    return x[tuple(idx)]


# -- MediaPipe's custom operators (mediapipe/util/tflite/operations, version 2) ---------------------
def landmarks_to_transform_matrix(lm: np.ndarray, o: dict) -> np.ndarray:
    """(1, N, 3) landmarks -> (1, 4, 4): the matrix from a output_width x output_height grid to the
    landmarks' frame, over the box of ``subset_idxs`` levelled by the two rotation landmarks."""
    p = lm.reshape(-1, 3).astype(F32)
    left, right = p[o["left_rotation_idx"], :2], p[o["right_rotation_idx"], :2]
    r = F32(o["target_rotation_radians"]) - np.arctan2(right[1] - left[1], right[0] - left[0], dtype=F32)
    sub = p[np.asarray(o["subset_idxs"]).reshape(-1), :2]
    c, s = np.cos(r), np.sin(r)
    rot = sub @ np.array([[c, s], [-s, c]], F32)  # each point rotated by r
    lo, hi = rot.min(0), rot.max(0)
    w, h = hi - lo
    mid = (lo + hi) / 2
    ci, si = np.cos(-r), np.sin(-r)
    cx, cy = ci * mid[0] - si * mid[1], si * mid[0] + ci * mid[1]
    rr = -r
    sx = F32(o["scale_x"]) * w / F32(o["output_width"])
    sy = F32(o["scale_y"]) * h / F32(o["output_height"])
    T = np.eye(4, dtype=F32)
    T[0, 3], T[1, 3] = cx, cy
    R = np.eye(4, dtype=F32)
    R[0, 0], R[0, 1], R[1, 0], R[1, 1] = np.cos(rr), -np.sin(rr), np.sin(rr), np.cos(rr)
    S = np.diag([sx, sy, 1, 1]).astype(F32)
    T2 = np.eye(4, dtype=F32)
    T2[0, 3], T2[1, 3] = -o["output_width"] / 2.0, -o["output_height"] / 2.0
    return (T @ R @ S @ T2)[None].astype(F32)


def transform_tensor_bilinear(x: np.ndarray, m: np.ndarray, o: dict) -> np.ndarray:
    """x (1, H, W, C) sampled bilinearly on an output_height x output_width grid mapped by m (1, 4, 4)."""
    _, H, W, C = x.shape
    oh, ow = o["output_height"], o["output_width"]
    xt, yt = m[0, 0, :4].astype(F32).copy(), m[0, 1, :4].astype(F32).copy()
    xt[3] += xt[0] * 0.5 + xt[1] * 0.5 - 0.5
    yt[3] += yt[0] * 0.5 + yt[1] * 0.5 - 0.5
    gy, gx = np.mgrid[0:oh, 0:ow].astype(F32)
    tx = xt[0] * gx + xt[1] * gy + xt[3]
    ty = yt[0] * gx + yt[1] * gy + yt[3]
    inside = (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    return (bilinear(x[0], tx, ty) * inside[..., None])[None].astype(F32)


def transform_landmarks(lm: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(1, N, 2 or 3) landmarks mapped by the x and y rows of m (1, 4, 4); z kept."""
    out = lm.astype(F32).copy()
    xy1 = np.concatenate([lm[..., :2], np.zeros(lm.shape[:-1] + (1,), F32), np.ones(lm.shape[:-1] + (1,), F32)], -1)
    out[..., 0] = xy1 @ m[0, 0]
    out[..., 1] = xy1 @ m[0, 1]
    return out


class Model:
    """One converted model: ``model(input (1, H, W, C) float32) -> {output name: array}``."""

    def __init__(self, graph: dict, consts: dict):
        self.graph = graph
        self.consts = {k: v.astype(F32) if v.dtype == np.float16 else v for k, v in consts.items()}
        self.ops = graph["ops"]
        self.shapes = {int(k): v for k, v in graph["shapes"].items()}

    def __call__(self, x: np.ndarray) -> dict:
        t = dict(self.consts)
        t[self.graph["inputs"][0]] = np.asarray(x, F32)
        for op in self.ops:
            t[op["outputs"][0]] = self._run(op, [t.get(i) if i >= 0 else None for i in op["inputs"]])
        return {name: t[i] for name, i in zip(self.graph["output_names"], self.graph["outputs"])}

    def _run(self, op: dict, a: list) -> np.ndarray:
        name, o = op["op"], op["options"]
        if name == "CONV_2D":
            return conv2d(a[0], a[1], a[2] if len(a) > 2 else None, o)
        if name == "DEPTHWISE_CONV_2D":
            return depthwise_conv2d(a[0], a[1], a[2] if len(a) > 2 else None, o)
        if name == "ADD":
            return _act(a[0] + a[1], o["act"])
        if name == "MUL":
            return _act(a[0] * a[1], o["act"])
        if name == "RELU":
            return np.maximum(a[0], 0)
        if name == "PRELU":
            return np.where(a[0] >= 0, a[0], a[0] * a[1]).astype(F32)
        if name == "MAX_POOL_2D":
            return max_pool2d(a[0], o)
        if name == "PAD":
            return np.pad(a[0], np.asarray(a[1]).tolist())
        if name == "RESHAPE":
            return a[0].reshape(self.shapes[op["outputs"][0]])
        if name == "CONCATENATION":
            return _act(np.concatenate(a, o["axis"]), o["act"])
        if name == "STRIDED_SLICE":
            return strided_slice(a[0], a[1], a[2], a[3], o)
        if name == "AVERAGE_POOL_2D":
            return avg_pool2d(a[0], o)
        if name == "RESIZE_BILINEAR":
            return resize_bilinear(a[0], a[1], o)
        if name == "DEPTH_TO_SPACE":
            return depth_to_space(a[0], o["block_size"])
        if name == "HARD_SWISH":
            return (a[0] * np.clip(a[0] + 3, 0, 6) / 6).astype(F32)
        if name == "LOGISTIC":
            return (1 / (1 + np.exp(-np.clip(a[0], -80, 80)))).astype(F32)
        if name == "Convolution2DTransposeBias":
            return transpose_conv_bias(a[0], a[1], a[2], o)
        if name == "DEQUANTIZE":
            return a[0].astype(F32)
        if name == "Landmarks2TransformMatrix":
            return landmarks_to_transform_matrix(a[0], o)
        if name == "TransformTensorBilinear":
            return transform_tensor_bilinear(a[0], a[1], o)
        if name == "TransformLandmarks":
            return transform_landmarks(a[0], a[1])
        raise ValueError(f"operator {name} is not supported by the numpy interpreter")


@lru_cache(maxsize=4)
def load_model(name: str, path: str | None = None) -> Model:
    """A converted model by name (``face_detection_short_range``, ``face_landmark_with_attention``)."""
    p = Path(path) if path else ASSET
    with np.load(p) as d:
        if f"{name}/graph" not in d:
            raise ValueError(f"{p}: no model {name!r} (rebuild it with scripts/convert_mediapipe_models.py)")
        graph = json.loads(d[f"{name}/graph"].tobytes())
        consts = {int(k.split("/", 1)[1]): d[k] for k in d.files if k.startswith(name + "/") and not k.endswith("/graph")}
    return Model(graph, consts)

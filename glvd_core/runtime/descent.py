"""GLVD's encoders and descent in numpy: the same computation as :class:`glvd_core.model.glvd.GLVD`
for one scene (B = 1), float32, from the same model file.

Shapes: V views, P points, N template vertices, K keypoints, S input size, h = S / 4.
Points are in the normalised frame (:mod:`glvd_core.model.frame`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..model.config import GLVDConfig
from ..geometry.similarity import umeyama
from ..model.frame import R_ICT_TO_CAM
from ..template import Template
from . import nn

F32 = np.float32


def clip_norm(d: np.ndarray, c: float) -> np.ndarray:
    """Scale each 3-vector of d (..., 3) to length at most c."""
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return (d * np.minimum(c / np.maximum(n, 1e-12), 1.0)).astype(F32)


def project_grid(points: np.ndarray, A: np.ndarray, b: np.ndarray, K: np.ndarray, size: int) -> np.ndarray:
    """Normalised points (P, 3) -> sampling coordinates (V, P, 2) in [-1, 1] for each view
    (A, b, K: (V, 3, 3), (V, 3), (V, 3, 3)); pixel centres at ((u + 0.5) / size) * 2 - 1."""
    x = np.einsum("vij,pj->vpi", A, points) + b[:, None]
    z = np.maximum(x[..., 2:3], 1e-4)
    uv = np.einsum("vij,vpj->vpi", K[:, :2, :], x / z)
    return ((uv + 0.5) / size * 2 - 1).astype(F32)


def landmark_heatmaps(points_px: np.ndarray, valid: np.ndarray, size: int, feat: int, sigma: float) -> np.ndarray:
    """(V, L, 2) input-image pixels, (V, L) validity -> (V, L, feat, feat) Gaussians."""
    u = (points_px + 0.5) * (feat / size) - 0.5
    ax = np.arange(feat, dtype=F32)
    gx = np.exp(-0.5 * ((ax - u[..., 0:1]) / sigma) ** 2)
    gy = np.exp(-0.5 * ((ax - u[..., 1:2]) / sigma) ** 2)
    return (gy[..., :, None] * gx[..., None, :] * valid[..., None, None]).astype(F32)


class _Weights:
    """A state dict (numpy) read by prefix, every float as float32."""

    def __init__(self, state: dict, prefix: str = ""):
        self.state, self.prefix = state, prefix

    def __call__(self, name: str) -> np.ndarray:
        return np.asarray(self.state[self.prefix + name], F32)

    def has(self, name: str) -> bool:
        return self.prefix + name in self.state

    def sub(self, name: str) -> "_Weights":
        return _Weights(self.state, f"{self.prefix}{name}.")


class _Net:
    def __init__(self, w: _Weights, groups: int):
        self.w, self.groups = w, groups

    def gn(self, x, w):
        return nn.group_norm(x, min(self.groups, x.shape[1]), w("weight"), w("bias"))

    def conv(self, x, w, stride=1, padding=0):
        return nn.conv2d(x, w("weight"), w("bias") if w.has("bias") else None, stride, padding)

    def residual(self, x, w):
        b = w.sub("body")
        y = self.conv(nn.relu(self.gn(x, b.sub("0"))), b.sub("2"))
        y = self.conv(nn.relu(self.gn(y, b.sub("3"))), b.sub("5"), padding=1)
        y = self.conv(nn.relu(self.gn(y, b.sub("6"))), b.sub("8"))
        return y + (self.conv(x, w.sub("skip")) if w.has("skip.weight") else x)

    def hourglass(self, x, w):
        up = self.residual(x, w.sub("up1"))
        low = self.residual(nn.max_pool2d(x, 2), w.sub("low1"))
        low = self.hourglass(low, w.sub("low2")) if w.has("low2.up1.body.0.weight") else self.residual(low, w.sub("low2"))
        return up + nn.upsample_nearest2(self.residual(low, w.sub("low3")))


class _MLP:
    """A WNMLP (weight-normalised 3-layer ReLU MLP): hidden layers and the last layer as (N, 3, H)."""

    def __init__(self, w: _Weights, n_targets: int):
        def layer(name):
            lw = w.sub(name)
            return (nn.weight_norm(lw("parametrizations.weight.original0"), lw("parametrizations.weight.original1")),
                    lw("bias"))

        (self.w1, self.b1), (self.w2, self.b2), (w3, b3) = layer("l1"), layer("l2"), layer("l3")
        self.w3, self.b3 = w3.reshape(n_targets, 3, -1), b3.reshape(n_targets, 3)

    def hidden(self, x: np.ndarray) -> np.ndarray:
        return nn.relu(nn.relu(x @ self.w1.T + self.b1) @ self.w2.T + self.b2)

    def head(self, h: np.ndarray) -> np.ndarray:
        """Each point's own row (the diagonal): h (P, H) for targets 0..P-1 -> (P, 3)."""
        return np.einsum("ph,pch->pc", h, self.w3[: len(h)], optimize=True) + self.b3[: len(h)]


@dataclass
class Features:
    fv: list                        # f_v stack maps, each (V, C, h, w)
    fk: np.ndarray                  # f_s map (V, fs_out, h, w)
    shape_w: np.ndarray | None = None  # (M,) identity weights of the "image" prior (None: the mean shape)


class IdentityReader:
    """The identity CNN (model/identity_cnn.py) in numpy: (B, 3, 112, 112) uint8 crops -> (B, M)."""

    def __init__(self, state: dict):
        self.w = _Weights(state)
        self.blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("f.")})

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = (np.asarray(crops, F32) / 255 - 0.5) / 0.25
        for i in self.blocks:
            b = self.w.sub(f"f.{i}")
            for conv, bn, stride in (("0", "1", 2), ("3", "4", 1)):
                x = nn.conv2d(x, b(f"{conv}.weight"), None, stride, 1)
                x = nn.relu(nn.batch_norm(x, b(f"{bn}.running_mean"), b(f"{bn}.running_var"), b(f"{bn}.weight"),
                                          b(f"{bn}.bias")))
        x = nn.adaptive_avg_pool2d(x, 4).reshape(len(x), -1)
        return x @ self.w("head.2.weight").T + self.w("head.2.bias")


class NumpyGLVD:
    """GLVD for one scene in numpy, from a model file's config and state dict (numpy arrays,
    :func:`.torchfile.load_model`); ``Reconstructor.from_pretrained(runtime="numpy")`` builds it."""

    def __init__(self, cfg: GLVDConfig, template: Template, state: dict, identity_state: dict | None = None):
        self.cfg = cfg
        arch = cfg.arch
        if arch.encoding != "relative" or arch.update != "parallel":
            raise ValueError(f"the numpy runtime runs encoding='relative', update='parallel' models, not "
                             f"{arch.encoding!r}, {arch.update!r}")
        self.template = template
        self._w = _Weights(state)
        self._net = _Net(self._w, arch.groups)
        N = template.num_vertices
        self.g_v = _MLP(self._w.sub("g_v"), N)
        self.g_k = _MLP(self._w.sub("g_k"), arch.num_keypoints)
        self.kp_index = np.asarray(template.keypoint_indices(arch.num_keypoints), np.int64)
        init = (template.vertices_m - template.vertices_m.mean(0)) @ R_ICT_TO_CAM.T / arch.frame_scale_m
        self.vertex_init = init.astype(F32)
        self.id_modes = None
        if cfg.inference.vertex_prior == "image":
            from ..expression.shape_space import identity_modes

            m = identity_modes(template).astype(np.float64) @ R_ICT_TO_CAM.T / arch.frame_scale_m
            self.id_modes = m.astype(F32)
        self.identity = IdentityReader(identity_state) if identity_state is not None else None

    # -- encoders ------------------------------------------------------------------------------
    def encode(self, images: np.ndarray, masks: np.ndarray, heatmaps: np.ndarray) -> Features:
        """images (V, 3, S, S) in [0, 1], masks (V, 1, S, S) in [0, 1], heatmaps (V, L, h, w)."""
        x = np.concatenate([images, masks], 1).astype(F32)
        fv = self._stacked_hourglass(x)
        small = nn.avg_pool2d(x, 4)
        net, w = self._net, self._w.sub("f_s")
        y = np.concatenate([small, fv[0], heatmaps.astype(F32)], 1)
        y = net.residual(nn.relu(net.gn(net.conv(y, w.sub("inp.0"), padding=1), w.sub("inp.1"))), w.sub("inp.3"))
        y = net.hourglass(y, w.sub("hg"))
        fk = net.conv(net.residual(y, w.sub("out.0")), w.sub("out.1"))
        return Features(fv, fk)

    def _stacked_hourglass(self, x: np.ndarray) -> list:
        net, w = self._net, self._w.sub("f_v")
        s = w.sub("stem")
        x = nn.relu(net.gn(net.conv(x, s.sub("0"), stride=2, padding=3), s.sub("1")))
        x = net.residual(x, s.sub("3"))
        x = net.residual(nn.max_pool2d(x, 2), s.sub("5"))
        x = net.residual(x, s.sub("6"))
        maps = []
        for i in range(self.cfg.arch.fv_stacks):
            f = net.hourglass(x, w.sub(f"hgs.{i}"))
            fs = w.sub(f"feats.{i}")
            f = nn.relu(net.gn(net.conv(net.residual(f, fs.sub("0")), fs.sub("1")), fs.sub("2")))
            o = net.conv(f, w.sub(f"outs.{i}"))
            maps.append(o)
            if i < self.cfg.arch.fv_stacks - 1:
                x = x + net.conv(f, w.sub(f"merge_f.{i}")) + net.conv(o, w.sub(f"merge_o.{i}"))
        return maps

    # -- one descent step ------------------------------------------------------------------------
    def _sampled(self, maps: list, points, A, b, K) -> np.ndarray:
        """(V, P, sum C) features of every view at the points' projections."""
        grid = project_grid(points, A, b, K, self.cfg.arch.image_size)
        return np.stack([np.concatenate([nn.grid_sample(m[v], grid[v]) for m in maps], 1) for v in range(len(grid))])

    def vertex_prior(self, keypoints: np.ndarray, shape_w: np.ndarray | None) -> np.ndarray | None:
        prior = self.cfg.inference.vertex_prior
        if prior == "none":
            return None
        shape = self.vertex_init
        if prior == "image" and shape_w is not None:
            shape = shape + np.tensordot(shape_w.astype(F32), self.id_modes, 1)
        s, R, t = umeyama(shape[self.kp_index], keypoints)
        return (F32(s) * shape @ R.T.astype(F32) + t.astype(F32)).astype(F32)

    def step(self, feats: Features, vertices: np.ndarray, keypoints: np.ndarray, A: np.ndarray, b: np.ndarray,
             K: np.ndarray, clip: float,
             move_vertices: bool = True) -> tuple[np.ndarray, np.ndarray]:
        V = len(A)
        fk = self._sampled([feats.fk], keypoints, A, b, K)
        inp = np.concatenate([np.broadcast_to(keypoints, (V,) + keypoints.shape), fk], -1)
        dk = clip_norm(self.g_k.head(self.g_k.hidden(inp).mean(0)), clip)
        k_new = keypoints + dk
        if not move_vertices:
            return vertices, k_new
        f = self._sampled(feats.fv, vertices, A, b, K)
        enc = (keypoints[None] - vertices[:, None]).reshape(len(vertices), -1)
        inp = np.concatenate([np.broadcast_to(vertices, (V,) + vertices.shape), f,
                              np.broadcast_to(enc, (V,) + enc.shape)], -1)
        d = self.g_v.head(self.g_v.hidden(inp).mean(0))
        prior = self.vertex_prior(keypoints, feats.shape_w)
        if prior is not None:
            d = d + clip_norm(prior - vertices, self.cfg.inference.clip)
        return vertices + clip_norm(d, clip), k_new

    def descent(self, feats: Features, vertices: np.ndarray, keypoints: np.ndarray, A: np.ndarray, b: np.ndarray,
                K: np.ndarray, clip: float,
                iterations: int, keypoint_warmup: int = 0,
                held: tuple[np.ndarray, np.ndarray] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """As :meth:`GLVD.descent`: yields (vertices (N, 3), keypoints (K, 3)) after each step;
        ``held``: (positions (K, 3), mask (K,) bool) of keypoints the artist placed."""
        A, b, K = (np.asarray(x, F32) for x in (A, b, K))
        vertices, keypoints = np.asarray(vertices, F32), np.asarray(keypoints, F32)
        if held is not None:
            keypoints = np.where(held[1][:, None], held[0], keypoints).astype(F32)
        for t in range(iterations):
            vertices, keypoints = self.step(feats, vertices, keypoints, A, b, K, clip, t >= keypoint_warmup)
            if held is not None:
                keypoints = np.where(held[1][:, None], held[0], keypoints).astype(F32)
            yield vertices, keypoints

"""The GLVD model: encoders, per-point MLP evaluation and one descent step.

Tensor shapes: B scenes, V views, P points, K keypoints, N template vertices, S input size,
h = S / 4 feature size. Points are in the normalised frame (see :mod:`.frame`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..geometry.tensor import clip_norm, similarity_fit
from ..template import Template
from .config import GLVDConfig
from .frame import R_ICT_TO_CAM
from .networks import GLVDNet, sample_maps


def project_grid(points_n: torch.Tensor, A: torch.Tensor, b: torch.Tensor, K: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised points (B, P, 3) -> grid_sample coordinates (B, V, P, 2) for each view.

    A, b, K: (B, V, 3, 3), (B, V, 3), (B, V, 3, 3). Pixel centres at integer coordinates map to
    ((u + 0.5) / size) * 2 - 1 (``align_corners=False``)."""
    x = torch.einsum("bvij,bpj->bvpi", A, points_n) + b.unsqueeze(2)
    z = x[..., 2:3].clamp_min(1e-4)
    uv = torch.einsum("bvij,bvpj->bvpi", K[..., :2, :], x / z)
    return (uv + 0.5) / size * 2 - 1


@dataclass
class Features:
    fv: list            # f_v stack maps, each (B*V, C, h, w)
    fk: torch.Tensor    # f_s map (B*V, fs_out, h, w)
    B: int
    V: int
    shape_w: torch.Tensor | None = None  # (B, M) identity weights of the "image" prior, read from the
                                         # face crop before the descent (None: the mean shape)


def landmark_heatmaps(points_px: torch.Tensor, valid: torch.Tensor, size: int, feat: int, sigma: float) -> torch.Tensor:
    """(B, V, L, 2) input-image pixel positions, (B, V, L) validity -> (B, V, L, feat, feat) Gaussians."""
    u = (points_px + 0.5) * (feat / size) - 0.5
    ax = torch.arange(feat, dtype=points_px.dtype, device=points_px.device)
    gx = torch.exp(-0.5 * ((ax - u[..., 0:1]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((ax - u[..., 1:2]) / sigma) ** 2)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2) * valid[..., None, None].to(points_px.dtype)


class GLVD(nn.Module):
    def __init__(self, cfg: GLVDConfig, template: Template):
        super().__init__()
        self.cfg = cfg
        self.net = GLVDNet(cfg, template.num_vertices)
        kp = template.keypoint_indices(cfg.arch.num_keypoints)
        init = (template.vertices_m - template.vertices_m.mean(0)) @ R_ICT_TO_CAM.T / cfg.arch.frame_scale_m
        self.register_buffer("kp_index", torch.as_tensor(kp, dtype=torch.long), persistent=False)
        self.register_buffer("vertex_init", torch.as_tensor(init, dtype=torch.float32), persistent=False)
        if cfg.inference.vertex_prior == "image":
            self._init_identity_modes(template)
        self.template_sha256 = template.sha256

    # -- encoders ----------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, masks: torch.Tensor, heatmaps: torch.Tensor) -> Features:
        """images (B, V, 3, S, S) in [0, 1], masks (B, V, 1, S, S) in [0, 1], heatmaps (B, V, L, h, w)."""
        B, V = images.shape[:2]
        x = torch.cat([images, masks], 2).flatten(0, 1)
        fv = self.net.f_v(x)
        small = F.avg_pool2d(x, 4)
        fk = self.net.f_s(small, fv[0].detach(), heatmaps.flatten(0, 1))
        return Features(fv, fk, B, V)

    def encode_vertex_only(self, images: torch.Tensor, masks: torch.Tensor) -> list:
        return self.net.f_v(torch.cat([images, masks], 2).flatten(0, 1))

    # -- per-point hidden states (mean over views after layer 2) ------------------------------
    def _grid(self, points, A, b, K):
        g = project_grid(points, A, b, K, self.cfg.arch.image_size)  # (B, V, P, 2)
        return g.flatten(0, 1)

    def vertex_hidden(self, fv: list, B: int, V: int, points: torch.Tensor, keypoints: torch.Tensor, A: torch.Tensor,
                      b: torch.Tensor, K: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> torch.Tensor:
        grid = self._grid(points, A, b, K)
        f = sample_maps(fv, grid).unflatten(0, (B, V))  # (B, V, P, C)
        if dropout_mask is not None:
            f = f * dropout_mask
        enc = self.net.encoding(points, keypoints)
        P = points.shape[1]
        inp = torch.cat([points.unsqueeze(1).expand(B, V, P, 3), f, enc.unsqueeze(1).expand(B, V, P, enc.shape[-1])], -1)
        return self.net.g_v.hidden(inp).mean(1)

    def keypoint_hidden(self, fk: torch.Tensor, B: int, V: int, points: torch.Tensor, A: torch.Tensor, b: torch.Tensor,
                        K: torch.Tensor) -> torch.Tensor:
        grid = self._grid(points, A, b, K)
        f = sample_maps([fk], grid).unflatten(0, (B, V))
        P = points.shape[1]
        inp = torch.cat([points.unsqueeze(1).expand(B, V, P, 3), f], -1)
        return self.net.g_k.hidden(inp).mean(1)

    def sdf(self, fv: list, B: int, V: int, points: torch.Tensor, A: torch.Tensor, b: torch.Tensor,
            K: torch.Tensor) -> torch.Tensor:
        grid = self._grid(points, A, b, K)
        f = sample_maps(fv, grid).unflatten(0, (B, V)).mean(1)
        return self.net.sdf(torch.cat([points, f], -1))

    # -- keypoint-posed template (cfg.inference.vertex_prior "keypoints" or "image") ------------
    def _init_identity_modes(self, template: Template):
        """Buffer of the "image" prior: the ICT identity modes in the normalised frame (M, N, 3)."""
        from ..expression.shape_space import identity_modes

        modes = identity_modes(template).astype(np.float64) @ R_ICT_TO_CAM.T / self.cfg.arch.frame_scale_m
        self.register_buffer("id_modes", torch.as_tensor(modes, dtype=torch.float32), persistent=False)

    def vertex_prior(self, keypoints: torch.Tensor, shape_w: torch.Tensor | None = None) -> torch.Tensor | None:
        """(B, K, 3) keypoints -> (B, N, 3) the template moved by the similarity that best takes
        its keypoints onto ``keypoints`` (least squares, Umeyama); None without a prior. With
        ``"image"`` the template is first shaped by ``shape_w`` (B, M), the identity weights read
        from the face crop before the descent (None: the mean shape)."""
        if self.cfg.inference.vertex_prior == "none":
            return None
        shape = self.vertex_init.expand(keypoints.shape[0], -1, -1)
        w = shape_w if self.cfg.inference.vertex_prior == "image" else None
        if w is not None:
            with torch.autocast(keypoints.device.type, enabled=False):  # float32 shape, as the fit
                shape = shape + torch.einsum("bm,mnc->bnc", w, self.id_modes)
        s, R, t = similarity_fit(shape[:, self.kp_index], keypoints)
        return s[:, None, None] * shape @ R.transpose(1, 2) + t[:, None]

    def vertex_displacement(self, h: torch.Tensor, points: torch.Tensor, rows: torch.Tensor,
                            prior: torch.Tensor | None) -> torch.Tensor:
        """g_v's displacement for each point's own row: h (B, P, H), points (B, P, 3), rows (B, P)
        -> (B, P, 3), plus the prior's pull when there is one."""
        d = self.net.g_v.head(h, rows)
        if prior is not None:
            d = d + self.prior_pull(torch.gather(prior, 1, rows[..., None].expand(-1, -1, 3)), points)
        return d

    def prior_pull(self, prior_rows: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """The prior's part of a displacement: (prior row - point) clipped to the step length, so
        g_v's residual stays small for far points too. Shapes broadcast: (..., 3)."""
        return clip_norm(prior_rows - points, self.cfg.inference.clip)

    # -- one descent step (diagonal evaluation) -------------------------------------------------
    def step(self, feats: Features, vertices: torch.Tensor, keypoints: torch.Tensor, A: torch.Tensor, b: torch.Tensor,
             K: torch.Tensor, clip: float, move_vertices: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One update of keypoints (B, K, 3) and vertices (B, N, 3) -> (new_vertices, new_keypoints).
        ``move_vertices=False``: a keypoint-only step (warm-up)."""
        B, V = feats.B, feats.V
        kidx = torch.arange(keypoints.shape[1], device=keypoints.device).expand(B, -1)
        dk = self.net.g_k.head(self.keypoint_hidden(feats.fk, B, V, keypoints, A, b, K), kidx)
        dk = clip_norm(dk, clip)
        k_new = keypoints + dk
        if not move_vertices:
            return vertices, k_new
        k_for_v = k_new if self.cfg.arch.update == "sequential" else keypoints
        vidx = torch.arange(vertices.shape[1], device=vertices.device).expand(B, -1)
        h = self.vertex_hidden(feats.fv, B, V, vertices, k_for_v, A, b, K)
        dv = clip_norm(self.vertex_displacement(h, vertices, vidx, self.vertex_prior(k_for_v, feats.shape_w)), clip)
        return vertices + dv, k_new

    def freeze_last(self, on: bool = True) -> None:
        """Materialise (``on``) or release the weight-normalised last layers of g_v and g_k: at
        inference they are computed once per reconstruction, not once per step."""
        self.net.g_v.freeze_last(on)
        self.net.g_k.freeze_last(on)

    @contextmanager
    def last_layers_frozen(self) -> Iterator[None]:
        """``with model.last_layers_frozen():`` — :meth:`freeze_last` for the block, released
        however it ends."""
        self.freeze_last(True)
        try:
            yield self
        finally:
            self.freeze_last(False)

    def descent(self, feats: Features, vertices: torch.Tensor, keypoints: torch.Tensor, A: torch.Tensor,
                b: torch.Tensor, K: torch.Tensor, clip: float, iterations: int,
                keypoint_warmup: int = 0,
                held: tuple[torch.Tensor, torch.Tensor] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The descent, as a generator: ``iterations`` calls of :meth:`step` from vertices (B, N, 3)
        and keypoints (B, K, 3), the first ``keypoint_warmup`` keypoint-only, yielding
        ``(vertices, keypoints)`` after each step, on the device and without host synchronisation
        (so a CUDA graph can capture a whole loop). Every caller runs the descent through this one
        loop; call it inside :meth:`last_layers_frozen` for speed.
        ``held``: (positions (B, K, 3), mask (B, K) bool): keypoints the artist placed, held there
        from the start and after every step (the others move as usual)."""
        if held is not None:
            keypoints = torch.where(held[1][..., None], held[0], keypoints)
        for t in range(iterations):
            vertices, keypoints = self.step(feats, vertices, keypoints, A, b, K, clip,
                                            move_vertices=t >= keypoint_warmup)
            if held is not None:
                keypoints = torch.where(held[1][..., None], held[0], keypoints)
            yield vertices, keypoints

    def descend(self, feats: Features, vertices: torch.Tensor, keypoints: torch.Tensor, A: torch.Tensor,
                b: torch.Tensor, K: torch.Tensor, clip: float, iterations: int,
                keypoint_warmup: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The final ``(vertices, keypoints)`` of :meth:`descent` (the same start after 0 steps)."""
        for vertices, keypoints in self.descent(feats, vertices, keypoints, A, b, K, clip, iterations, keypoint_warmup):
            pass
        return vertices, keypoints

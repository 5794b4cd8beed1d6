"""The GLVD model: encoders, per-point MLP evaluation and one descent step.

Tensor shapes: B scenes, V views, P points, K keypoints, N template vertices, S input size,
h = S / 4 feature size. Points are in the normalised frame (see :mod:`.frame`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..template import Template
from .config import GLVDConfig
from .frame import R_ICT_TO_CAM, project_grid
from .networks import GLVDNet, sample_maps


VERTEX_PRIORS = ("none", "keypoints", "identity", "landmarks", "image")
SHAPE_INPUT_PRIORS = ("landmarks", "image")  # priors whose identity weights come from outside the descent


@dataclass
class Features:
    fv: list            # f_v stack maps, each (B*V, C, h, w)
    fk: torch.Tensor    # f_s map (B*V, fs_out, h, w)
    B: int
    V: int
    shape_w: torch.Tensor | None = None  # (B, M) identity weights of the "landmarks" / "image" prior,
                                         # fitted to the 2D landmarks or read from the face crop before
                                         # the descent (None: the mean shape)


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
        kp = template.keypoint_indices(cfg.num_keypoints)
        init = (template.vertices_m - template.vertices_m.mean(0)) @ R_ICT_TO_CAM.T / cfg.frame_scale_m
        self.register_buffer("kp_index", torch.as_tensor(kp, dtype=torch.long), persistent=False)
        self.register_buffer("vertex_init", torch.as_tensor(init, dtype=torch.float32), persistent=False)
        if cfg.vertex_prior not in VERTEX_PRIORS:
            raise ValueError(f"vertex_prior must be one of {', '.join(VERTEX_PRIORS)}, not {cfg.vertex_prior!r}")
        if not cfg.image_prior_landmark_sd >= 0 or not cfg.prior_landmark_noise_px > 0:
            raise ValueError("image_prior_landmark_sd must be >= 0 and prior_landmark_noise_px > 0, not "
                             f"{cfg.image_prior_landmark_sd} and {cfg.prior_landmark_noise_px}")
        if cfg.vertex_prior in ("identity",) + SHAPE_INPUT_PRIORS:
            self._init_identity_prior(template, kp)
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

    def encode_vertex_only(self, images, masks) -> list:
        return self.net.f_v(torch.cat([images, masks], 2).flatten(0, 1))

    # -- per-point hidden states (mean over views after layer 2) ------------------------------
    def _grid(self, feats_B, feats_V, points, A, b, K):
        g = project_grid(points, A, b, K, self.cfg.image_size)  # (B, V, P, 2)
        return g.flatten(0, 1)

    def vertex_hidden(self, fv: list, B: int, V: int, points, keypoints, A, b, K, dropout_mask=None):
        grid = self._grid(B, V, points, A, b, K)
        f = sample_maps(fv, grid).unflatten(0, (B, V))  # (B, V, P, C)
        if dropout_mask is not None:
            f = f * dropout_mask
        enc = self.net.encoding(points, keypoints)
        P = points.shape[1]
        inp = torch.cat([points.unsqueeze(1).expand(B, V, P, 3), f, enc.unsqueeze(1).expand(B, V, P, enc.shape[-1])], -1)
        return self.net.g_v.hidden(inp).mean(1)

    def keypoint_hidden(self, fk: torch.Tensor, B: int, V: int, points, A, b, K):
        grid = self._grid(B, V, points, A, b, K)
        f = sample_maps([fk], grid).unflatten(0, (B, V))
        P = points.shape[1]
        inp = torch.cat([points.unsqueeze(1).expand(B, V, P, 3), f], -1)
        return self.net.g_k.hidden(inp).mean(1)

    def sdf(self, fv: list, B: int, V: int, points, A, b, K):
        grid = self._grid(B, V, points, A, b, K)
        f = sample_maps(fv, grid).unflatten(0, (B, V)).mean(1)
        return self.net.sdf(torch.cat([points, f], -1))

    # -- keypoint-posed template (cfg.vertex_prior == "keypoints" or "identity") ----------------
    def _init_identity_prior(self, template: Template, kp: np.ndarray):
        """Buffers of the identity prior: the ICT identity modes in the normalised frame (M, N, 3)
        and the ridge solve G (M, 3K) taking keypoint residuals to identity weights."""
        from ..expression.shape_space import identity_modes

        modes = identity_modes(template).astype(np.float64) @ R_ICT_TO_CAM.T / self.cfg.frame_scale_m
        G = ridge_solve(modes[:, kp], self.cfg.prior_noise_m / self.cfg.frame_scale_m)
        self.register_buffer("id_modes", torch.as_tensor(modes, dtype=torch.float32), persistent=False)
        self.register_buffer("id_solve", torch.as_tensor(G, dtype=torch.float32), persistent=False)

    def identity_fit(self, keypoints: torch.Tensor) -> torch.Tensor:
        """(B, K, 3) keypoints -> (B, M) identity weights (:func:`ridge_identity_fit` of the
        template's keypoints)."""
        return ridge_identity_fit(keypoints, self.vertex_init[self.kp_index], self.id_modes[:, self.kp_index],
                                  self.id_solve)

    def vertex_prior(self, keypoints: torch.Tensor, shape_w: torch.Tensor | None = None) -> torch.Tensor | None:
        """(B, K, 3) keypoints -> (B, N, 3) the template moved by the similarity that best takes
        its keypoints onto ``keypoints`` (least squares, Umeyama); None without a prior. The
        template is first shaped by identity weights: ``"identity"``, fitted to the keypoints
        (:meth:`identity_fit`); ``"landmarks"`` / ``"image"``, ``shape_w`` (B, M), fitted to the 2D landmarks
        or predicted from the face crop
        before the descent (:meth:`glvd_core.Reconstructor.reconstruct`; None: the mean shape)."""
        if self.cfg.vertex_prior == "none":
            return None
        shape = self.vertex_init.expand(keypoints.shape[0], -1, -1)
        w = self.identity_fit(keypoints) if self.cfg.vertex_prior == "identity" else shape_w
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
        return clip_norm(prior_rows - points, self.cfg.clip)

    # -- one descent step (diagonal evaluation) -------------------------------------------------
    def step(self, feats: Features, vertices, keypoints, A, b, K, clip: float, move_vertices: bool = True):
        """One update of keypoints (B, K, 3) and vertices (B, N, 3) -> (new_vertices, new_keypoints).
        ``move_vertices=False``: a keypoint-only step (warm-up)."""
        B, V = feats.B, feats.V
        kidx = torch.arange(keypoints.shape[1], device=keypoints.device).expand(B, -1)
        dk = self.net.g_k.head(self.keypoint_hidden(feats.fk, B, V, keypoints, A, b, K), kidx)
        dk = clip_norm(dk, clip)
        k_new = keypoints + dk
        if not move_vertices:
            return vertices, k_new
        k_for_v = k_new if self.cfg.update == "sequential" else keypoints
        vidx = torch.arange(vertices.shape[1], device=vertices.device).expand(B, -1)
        h = self.vertex_hidden(feats.fv, B, V, vertices, k_for_v, A, b, K)
        dv = clip_norm(self.vertex_displacement(h, vertices, vidx, self.vertex_prior(k_for_v, feats.shape_w)), clip)
        return vertices + dv, k_new

    def freeze_last(self, on: bool = True):
        """Materialise (``on``) or release the weight-normalised last layers of g_v and g_k: at
        inference they are computed once per reconstruction, not once per step."""
        self.net.g_v.freeze_last(on)
        self.net.g_k.freeze_last(on)

    @contextmanager
    def last_layers_frozen(self):
        """``with model.last_layers_frozen():`` — :meth:`freeze_last` for the block, released
        however it ends."""
        self.freeze_last(True)
        try:
            yield self
        finally:
            self.freeze_last(False)

    def descend(self, feats: Features, vertices, keypoints, A, b, K, clip: float, iterations: int,
                keypoint_warmup: int = 0):
        """``iterations`` calls of :meth:`step` from vertices (B, N, 3) and keypoints (B, K, 3),
        the first ``keypoint_warmup`` keypoint-only, with no host synchronisation (so a CUDA graph
        can capture it). Returns the final (vertices, keypoints). Call inside :meth:`last_layers_frozen` for speed."""
        for t in range(iterations):
            vertices, keypoints = self.step(feats, vertices, keypoints, A, b, K, clip,
                                            move_vertices=t >= keypoint_warmup)
        return vertices, keypoints


def similarity_fit(src: torch.Tensor, dst: torch.Tensor):
    """Least-squares similarity dst ~ s R src + t (Umeyama 1991) for src (K, 3) or (B, K, 3),
    dst (B, K, 3) -> s (B,), R (B, 3, 3) proper rotations, t (B, 3); computed in float32."""
    src, dst = src.float(), dst.float()
    with torch.autocast(dst.device.type, enabled=False):
        src = src.expand_as(dst)
        ms, md = src.mean(1), dst.mean(1)
        xs, xd = src - ms[:, None], dst - md[:, None]
        cov = xd.transpose(1, 2) @ xs / src.shape[1]  # (B, 3, 3)
        U, S, Vh = torch.linalg.svd(cov)
        d = torch.sign(torch.linalg.det(U @ Vh))
        d = torch.where(d == 0, torch.ones_like(d), d)
        D = torch.ones_like(S)
        D[:, 2] = d
        R = U @ torch.diag_embed(D) @ Vh
        s = (S * D).sum(-1) / (xs ** 2).sum(-1).mean(-1).clamp_min(1e-12)
        t = md - s[:, None] * (R @ ms[..., None])[..., 0]
    return s, R, t


def ridge_solve(modes_p: np.ndarray, noise: float) -> np.ndarray:
    """(M, P, 3) modes at P points, isotropic point noise (same unit) -> G (M, 3P), the MAP solve
    w = G r of weights w ~ N(0, 1) from point residuals r (3P,): (A^T A / noise^2 + I)^-1 A^T / noise^2."""
    A = np.asarray(modes_p, np.float64).reshape(len(modes_p), -1).T  # (3P, M)
    lam = 1.0 / noise ** 2
    return np.linalg.solve(lam * A.T @ A + np.eye(A.shape[1]), lam * A.T)


def ridge_identity_fit(points: torch.Tensor, mean_p: torch.Tensor, modes_p: torch.Tensor, solve: torch.Tensor,
                       iterations: int = 5) -> torch.Tensor:
    """Ridge (MAP) fit of shape weights so that mean + w·modes matches ``points`` up to a
    similarity, alternating the similarity and the weights: points (B, P, 3), mean_p (P, 3),
    modes_p (M, P, 3), solve (M, 3P) from :func:`ridge_solve` -> w (B, M); float32."""
    kp = points.float()
    with torch.autocast(kp.device.type, enabled=False):
        w = kp.new_zeros(kp.shape[0], modes_p.shape[0])
        for _ in range(iterations):
            s, R, t = similarity_fit(mean_p + torch.einsum("bm,mkc->bkc", w, modes_p), kp)
            in_template = (kp - t[:, None]) @ R / s[:, None, None]
            w = (in_template - mean_p).flatten(1) @ solve.T
    return w


def clip_norm(d: torch.Tensor, c: float) -> torch.Tensor:
    """Scale each 3-vector to length at most c."""
    n = d.norm(dim=-1, keepdim=True)
    return d * torch.clamp(c / n.clamp_min(1e-12), max=1.0)


def as_tensor(x, device, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)

"""GLVD networks: f_v (stacked hourglass), f_s (single hourglass), g_k, g_v and the SDF head.

Shapes: B scenes, V views, P points, N targets (7,225 vertices or K keypoints), H hidden.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from .config import GLVDConfig


def _gn(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, c), c)


class Residual(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        mid = max(cout // 2, 1)
        self.body = nn.Sequential(
            _gn(cin, groups), nn.ReLU(inplace=True), nn.Conv2d(cin, mid, 1),
            _gn(mid, groups), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            _gn(mid, groups), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    def __init__(self, depth: int, width: int, groups: int):
        super().__init__()
        self.up1 = Residual(width, width, groups)
        self.low1 = Residual(width, width, groups)
        self.low2 = Hourglass(depth - 1, width, groups) if depth > 1 else Residual(width, width, groups)
        self.low3 = Residual(width, width, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up1(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return up + F.interpolate(low, scale_factor=2, mode="nearest")


class StackedHourglass(nn.Module):
    """f_v: RGB + mask (B, 4, S, S) -> list of ``fv_stacks`` maps (B, fv_out, S/4, S/4)."""

    def __init__(self, cfg: GLVDConfig):
        super().__init__()
        w, g = cfg.arch.fv_width, cfg.arch.groups
        c1 = max(w // 4, 16)
        self.stem = nn.Sequential(nn.Conv2d(4, c1, 7, stride=2, padding=3), _gn(c1, g), nn.ReLU(inplace=True),
                                  Residual(c1, w // 2, g), nn.MaxPool2d(2), Residual(w // 2, w // 2, g),
                                  Residual(w // 2, w, g))
        self.hgs = nn.ModuleList([Hourglass(cfg.arch.hg_depth, w, g) for _ in range(cfg.arch.fv_stacks)])
        self.feats = nn.ModuleList([nn.Sequential(Residual(w, w, g), nn.Conv2d(w, w, 1), _gn(w, g), nn.ReLU(inplace=True))
                                    for _ in range(cfg.arch.fv_stacks)])
        self.outs = nn.ModuleList([nn.Conv2d(w, cfg.arch.fv_out, 1) for _ in range(cfg.arch.fv_stacks)])
        self.merge_f = nn.ModuleList([nn.Conv2d(w, w, 1) for _ in range(cfg.arch.fv_stacks - 1)])
        self.merge_o = nn.ModuleList([nn.Conv2d(cfg.arch.fv_out, w, 1) for _ in range(cfg.arch.fv_stacks - 1)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        maps = []
        for i, hg in enumerate(self.hgs):
            f = self.feats[i](hg(x))
            o = self.outs[i](f)
            maps.append(o)
            if i < len(self.hgs) - 1:
                x = x + self.merge_f[i](f) + self.merge_o[i](o)
        return maps


class KeypointFeatures(nn.Module):
    """f_s: [image, mask, first-stack features, heatmaps] at feature resolution -> F_k map."""

    def __init__(self, cfg: GLVDConfig):
        super().__init__()
        cin = 4 + cfg.arch.fv_out + cfg.arch.heatmap_channels
        w, g = cfg.arch.fs_width, cfg.arch.groups
        self.inp = nn.Sequential(nn.Conv2d(cin, w, 3, padding=1), _gn(w, g), nn.ReLU(inplace=True), Residual(w, w, g))
        self.hg = Hourglass(cfg.arch.hg_depth, w, g)
        self.out = nn.Sequential(Residual(w, w, g), nn.Conv2d(w, cfg.arch.fs_out, 1))

    def forward(self, image_mask_small: torch.Tensor, first_stack: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return self.out(self.hg(self.inp(torch.cat([image_mask_small, first_stack, heatmaps], 1))))


class WNMLP(nn.Module):
    """3-layer ReLU MLP with weight normalisation whose output is (N targets x 3).

    ``hidden`` runs the first two layers; ``head`` evaluates the last one for chosen targets:
    ``target=None`` gives every target (B, P, N, 3) (training with all targets, tests); an index
    tensor (B, P) gives each point its own row — the *diagonal* — as (B, P, 3) via a gather +
    einsum over the last layer viewed as (N, 3, H); (B, P, S) gives S rows per point;
    ``head_shared`` gives the same S rows to all points of a scene (a matmul).
    """

    def __init__(self, cin: int, hidden: int, n_targets: int):
        super().__init__()
        self.n_targets = n_targets
        self.l1 = weight_norm(nn.Linear(cin, hidden))
        self.l2 = weight_norm(nn.Linear(hidden, hidden))
        self.l3 = weight_norm(nn.Linear(hidden, n_targets * 3))
        self._frozen_w3 = None

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.l2(F.relu(self.l1(x))))

    def last_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._frozen_w3 is not None:
            return self._frozen_w3
        return self.l3.weight.view(self.n_targets, 3, -1), self.l3.bias.view(self.n_targets, 3)

    def freeze_last(self, on: bool = True) -> None:
        """Cache the normalised last-layer weight (inference: computed once, not per step)."""
        self._frozen_w3 = None
        if on:
            with torch.no_grad():
                w, b = self.last_weight()
                self._frozen_w3 = (w.detach().clone(), b.detach().clone())

    def head_shared(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Rows ``target`` (B, S) for every point of a scene: h (B, P, H) -> (B, P, S, 3), one matmul."""
        w, b = self.last_weight()
        ws = w[target]  # (B, S, 3, H)
        return torch.einsum("bph,bsch->bpsc", h, ws) + b[target].unsqueeze(1)

    def head(self, h: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.last_weight()
        if target is None:
            return (h @ self.l3.weight.t() + self.l3.bias).unflatten(-1, (self.n_targets, 3))
        if target.dim() == h.dim() - 1:  # diagonal: one row per point
            return torch.einsum("...h,...ch->...c", h, w[target]) + b[target]
        return torch.einsum("bph,bpsch->bpsc", h, w[target]) + b[target]


class SDFHead(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cin, 256), nn.ReLU(inplace=True), nn.Linear(256, 128), nn.ReLU(inplace=True),
                                 nn.Linear(128, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def sample_maps(maps: list[torch.Tensor], grid: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample feature maps (each (B, C, h, w)) at grid (B, P, 2) in [-1, 1] (x, y)
    -> (B, P, sum C). Outside the image reads zeros."""
    g = grid.unsqueeze(2)
    out = [F.grid_sample(m, g, mode="bilinear", padding_mode="zeros", align_corners=False).squeeze(-1) for m in maps]
    return torch.cat(out, 1).transpose(1, 2)


class GLVDNet(nn.Module):
    """All trainable parts of GLVD for a template of ``n_vertices`` vertices."""

    def __init__(self, cfg: GLVDConfig, n_vertices: int):
        super().__init__()
        self.cfg = cfg
        K = cfg.arch.num_keypoints
        self.f_v = StackedHourglass(cfg)
        self.f_s = KeypointFeatures(cfg)
        enc = {"relative": 3 * K, "distance": K, "none": 0}[cfg.arch.encoding]
        self.g_v = WNMLP(3 + cfg.arch.fv_dim + enc, cfg.arch.hidden_v, n_vertices)
        self.g_k = WNMLP(3 + cfg.arch.fs_out, cfg.arch.hidden_k, K)
        self.sdf = SDFHead(3 + cfg.arch.fv_dim)

    def encoding(self, points: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) points and (B, K, 3) keypoints -> the keypoint-relative encoding (B, P, E)."""
        if self.cfg.arch.encoding == "none":
            return points.new_zeros(points.shape[:-1] + (0,))
        rel = keypoints.unsqueeze(1) - points.unsqueeze(2)  # (B, P, K, 3) = k - v
        if self.cfg.arch.encoding == "distance":
            return rel.norm(dim=-1)
        return rel.flatten(2)

    def parameter_counts(self) -> dict:
        def n(m):
            return sum(p.numel() for p in m.parameters())

        c = {"f_v": n(self.f_v), "g_v": n(self.g_v), "f_s": n(self.f_s), "g_k": n(self.g_k), "sdf_head": n(self.sdf)}
        c["vertex_branch"] = c["f_v"] + c["g_v"]
        c["keypoint_branch"] = c["f_s"] + c["g_k"]
        return c

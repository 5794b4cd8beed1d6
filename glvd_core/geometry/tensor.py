"""Torch versions of the geometry the descent runs on the device (batched, float32)."""

from __future__ import annotations

import torch


def clip_norm(d: torch.Tensor, c: float) -> torch.Tensor:
    """Scale each 3-vector to length at most c."""
    n = d.norm(dim=-1, keepdim=True)
    return d * torch.clamp(c / n.clamp_min(1e-12), max=1.0)


def similarity_fit(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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

"""Training batches: scenes in memory, augmentations that keep cameras exact, normalisation.

Every random choice of a batch comes from the ``rng`` passed in, which the trainer derives
from (seed, stage, step): a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..cameras import Camera
from ..data import GLVDDataset
from ..model.config import GLVDConfig
from ..model.frame import make_frame, nominal_depth
from ..template import Template

MIRROR_WORLD = np.diag([-1.0, 1.0, 1.0])


@dataclass
class Batch:
    images: torch.Tensor       # (B, V, 3, S, S) float in [0, 1]
    masks: torch.Tensor        # (B, V, 1, S, S)
    landmarks_px: torch.Tensor  # (B, V, 68, 2) noisy projected landmarks (input pixels)
    landmarks_ok: torch.Tensor  # (B, V, 68) bool
    A: torch.Tensor            # (B, V, 3, 3) normalised -> camera
    b: torch.Tensor            # (B, V, 3)
    K: torch.Tensor            # (B, V, 3, 3)
    gt_vertices: torch.Tensor  # (B, N, 3) normalised frame
    gt_keypoints: torch.Tensor  # (B, K, 3) normalised frame
    frames: list

    def to(self, device: torch.device | str) -> "Batch":
        for k, v in vars(self).items():
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device, non_blocking=True))
        return self


class SceneBank:
    """All scenes of one or more datasets, resized to the network input, in memory."""

    def __init__(self, roots: Sequence[str | Path], cfg: GLVDConfig, template: Template, max_scenes: int | None = None,
                 log: Callable[..., None] = print):
        self.cfg, self.tpl = cfg, template
        S = cfg.arch.image_size
        self.images, self.masks, self.cams, self.gt, self.detected = [], [], [], [], []
        from ..data.landmarks import load_detected

        for root in ([roots] if isinstance(roots, (str, bytes)) or hasattr(roots, "is_dir") else roots):
            ds = GLVDDataset(root)
            if ds.meta.get("template_sha256") not in (None, template.sha256):
                raise ValueError(f"{root}: made for another template (sha256 {ds.meta.get('template_sha256')[:12]}…)")
            for i in range(len(ds)):
                if max_scenes and len(self.gt) >= max_scenes:
                    break
                s = ds[i]
                if s.vertices_m is None:
                    continue
                ims, ms, cs = [], [], []
                for im, m, c in zip(s.images, s.masks, s.cameras):
                    if c.width != c.height:
                        raise ValueError(f"{s.path}: training views must be square crops")
                    sc = S / c.width
                    ims.append(cv2.resize(im, (S, S), interpolation=cv2.INTER_AREA) if sc != 1 else im)
                    ms.append(cv2.resize(m, (S, S), interpolation=cv2.INTER_AREA) if sc != 1 else m)
                    cs.append(c.crop_resize(0, 0, sc, S, S))
                det = load_detected(s.path)
                if det is not None:  # detector landmarks, in network-input pixels
                    lm, ok = det
                    sc = S / s.cameras[0].width
                    det = (lm * sc + 0.5 * (sc - 1), ok)
                self.detected.append(det)
                self.images.append(np.stack(ims))
                self.masks.append(np.stack(ms))
                self.cams.append(cs)
                self.gt.append(s.vertices_m.astype(np.float64))
        if not self.gt:
            raise ValueError(f"no scenes with ground truth in {roots}")
        self.kp = template.keypoint_indices(cfg.arch.num_keypoints)
        n_det = sum(d is not None for d in self.detected)
        log(f"loaded {len(self.gt)} scenes ({sum(len(c) for c in self.cams)} views) at {S}px; "
            f"detector landmarks cached for {n_det} scenes")

    def __len__(self):
        return len(self.gt)

    # ------------------------------------------------------------------------------------
    def _augment_view(self, rng, img, mask, cam: Camera, flip: bool):
        """Returns (image, mask, camera, A) with A the 2x3 map of original to new pixel coordinates."""
        S = self.cfg.arch.image_size
        A = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        if flip:
            A = np.array([[-1.0, 0, S - 1], [0, 1.0, 0]])
            img, mask = img[:, ::-1], mask[:, ::-1]
            K = cam.K.copy()
            K[0, 2] = S - 1 - K[0, 2]
            Fx = np.diag([-1.0, 1.0, 1.0])
            cam = Camera(Fx @ cam.R @ MIRROR_WORLD, Fx @ cam.t, K, S, S)
        if self.cfg.train.augment:
            z = rng.uniform(0.92, 1.08)
            d = rng.uniform(-0.04, 0.04, 2) * S
            c = (S - 1) / 2
            M = np.array([[z, 0, (1 - z) * c + d[0]], [0, z, (1 - z) * c + d[1]]])
            img = cv2.warpAffine(np.ascontiguousarray(img), M, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            mask = cv2.warpAffine(np.ascontiguousarray(mask), M, (S, S), flags=cv2.INTER_LINEAR, borderValue=0)
            cam = Camera(cam.R, cam.t, np.vstack([M, [0, 0, 1]]) @ cam.K, S, S)
            A = M @ np.vstack([A, [0, 0, 1]])
            img = self._colour(rng, img)
        return np.ascontiguousarray(img), np.ascontiguousarray(mask), cam, A

    @staticmethod
    def _colour(rng, img):
        x = img.astype(np.float32) / 255
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-12, 12)) % 360
        hsv[..., 1] *= rng.uniform(0.7, 1.3)
        x = cv2.cvtColor(np.clip(hsv, 0, [360, 1, 1]).astype(np.float32), cv2.COLOR_HSV2RGB)
        x = (x - 0.5) * rng.uniform(0.75, 1.25) + 0.5 + rng.uniform(-0.12, 0.12)
        if rng.random() < 0.3:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.2))
        x = x + rng.normal(0, rng.uniform(0, 0.03), x.shape)
        return (np.clip(x, 0, 1) * 255).astype(np.uint8)

    def batch(self, rng: np.random.Generator, batch_size: int, n_views: int) -> Batch:
        cfg, tpl = self.cfg, self.tpl
        imgs, masks, lms, As, bs, Ks, gts, gks, frames = [], [], [], [], [], [], [], [], []
        for _ in range(batch_size):
            i = int(rng.integers(len(self.gt)))
            nv = len(self.cams[i])
            views = rng.choice(nv, size=min(n_views, nv), replace=False) if n_views <= nv else rng.integers(0, nv, n_views)
            flip = cfg.train.mirror and rng.random() < 0.5
            gt = self.gt[i]
            if flip:
                gt = (gt @ MIRROR_WORLD)[tpl.symmetry]
            cams, vi, vm, affs = [], [], [], []
            for v in views:
                im, m, c, aff = self._augment_view(rng, self.images[i][v], self.masks[i][v], self.cams[i][v], flip)
                vi.append(im)
                vm.append(m)
                cams.append(c)
                affs.append(aff)
            fr = make_frame(cams, cfg.arch.frame_scale_m, cfg.arch.head_extent_m, cfg.arch.nominal_fill)
            if len(cams) == 1:  # single view: GT rescaled about the camera centre to the nominal depth
                xc = cams[0].world_to_camera(gt)
                xc *= nominal_depth(cams[0], cfg.arch.head_extent_m, cfg.arch.nominal_fill) / xc.mean(0)[2]
                gt_n = (xc - fr.c_cam0) / fr.scale_m
            else:
                gt_n = fr.from_world_m(gt)
            lm3 = gt[tpl.landmarks68]
            lm = np.stack([c.project(lm3) for c in cams])
            lm = lm + rng.normal(0, cfg.train.landmark_noise_px, lm.shape)
            det = self.detected[i]
            for j, v in enumerate(views):  # the detector's landmarks where it found the face
                if det is not None and det[1][v]:
                    d = det[0][v][tpl.mirror68] if flip else det[0][v]
                    lm[j] = d @ affs[j][:, :2].T + affs[j][:, 2]
            imgs.append(np.stack(vi))
            masks.append(np.stack(vm))
            lms.append(lm)
            As.append(fr.A)
            bs.append(fr.b)
            Ks.append(fr.K)
            gts.append(gt_n)
            gks.append(gt_n[self.kp])
            frames.append(fr)
        f32 = torch.float32
        images = torch.as_tensor(np.stack(imgs)).permute(0, 1, 4, 2, 3).to(f32) / 255
        mk = torch.as_tensor(np.stack(masks)).unsqueeze(2).to(f32) / 255
        lm_t = torch.as_tensor(np.stack(lms), dtype=f32)
        ok = torch.ones(lm_t.shape[:3], dtype=torch.bool)
        drop = torch.as_tensor(rng.random(lm_t.shape[:2]) < 0.1)  # sometimes no detection at all
        ok[drop] = False
        return Batch(images, mk, lm_t, ok, torch.as_tensor(np.stack(As), dtype=f32),
                     torch.as_tensor(np.stack(bs), dtype=f32), torch.as_tensor(np.stack(Ks), dtype=f32),
                     torch.as_tensor(np.stack(gts), dtype=f32), torch.as_tensor(np.stack(gks), dtype=f32), frames)

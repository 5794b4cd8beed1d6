"""Identity from the face crop: a small CNN that reads a 112 px face crop and predicts the 100 ICT
identity weights (weights ~ N(0, 1), the template's ``identity_modes``).

It feeds the ``vertex_prior="image"`` setting of :class:`glvd_core.Reconstructor` (the template is
shaped by these weights before the keypoints pose it). Trained on synthetic renders only, with a
loss on the narrow-face shape the weights make (each mode's similarity part projected out): the
bundled weights by ``research/image_identity/`` (its NOTES.md has the command);
``python -m glvd_core train-identity`` trains new ones from scenes rendered while it trains.

The crop it reads: :mod:`glvd_core.preprocess.face_crop`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..io import first_line

if TYPE_CHECKING:
    from ..template import Template


# The bundled CNN ships inside the bundled model file, under its "identity_cnn" key.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "glvd_default.pt"


def _block(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                         nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class IdentityCNN(nn.Module):
    """(B, 3, CROP_PX, CROP_PX) uint8 crops -> (B, modes) identity weights. Five strided conv
    blocks (width w -> 8w), a 4 x 4 average pool and one linear layer (2.76 M parameters at w = 32,
    the bundled weights; 5.9 M at 48)."""

    def __init__(self, width: int = 32, modes: int = 100):
        super().__init__()
        self.arch = dict(width=width, modes=modes)  # what the package records to rebuild it
        w = width
        self.f = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w),
                               _block(8 * w, 8 * w))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * w * 16, modes))

    def forward(self, x_uint8: torch.Tensor, augment: bool = False) -> torch.Tensor:
        x = x_uint8.float() / 255
        if augment:  # training only: small affine jitter, colour gains, contrast
            b = x.shape[0]

            def rand(*shape):  # drawn on the CPU (same numbers on any device), used on x's
                return torch.rand(*shape).to(x.device)

            ang, sc = (rand(b) - 0.5) * 0.2, 1 + (rand(b) - 0.5) * 0.1
            th = torch.zeros(b, 2, 3, device=x.device)
            th[:, 0, 0], th[:, 0, 1] = sc * torch.cos(ang), -sc * torch.sin(ang)
            th[:, 1, 0], th[:, 1, 1] = sc * torch.sin(ang), sc * torch.cos(ang)
            th[:, :, 2] = (rand(b, 2) - 0.5) * 0.1
            x = F.grid_sample(x, F.affine_grid(th, x.shape, align_corners=False), padding_mode="border",
                              align_corners=False)
            x = x * (0.7 + 0.6 * rand(b, 3, 1, 1)) * (0.8 + 0.4 * rand(b, 1, 1, 1))
            m = x.mean((1, 2, 3), keepdim=True)
            x = (x - m) * (0.7 + 0.6 * rand(b, 1, 1, 1)) + m
        return self.head(F.adaptive_avg_pool2d(self.f((x - 0.5) / 0.25), 4))

    @torch.no_grad()
    def predict(self, crops: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Eval-mode prediction in batches: (B, 3, S, S) uint8 -> (B, modes) float32."""
        self.eval()
        dev = next(self.parameters()).device
        return torch.cat([self(crops[i:i + batch].to(dev)).float().cpu() for i in range(0, len(crops), batch)])


def mirror_weight_map(tpl: Template) -> torch.Tensor:
    """(M, M) float32 map ``R`` such that ``w @ R.T`` are the identity weights of the mirror image
    (x -> -x, vertex ``i`` -> ``tpl.symmetry[i]``) of the shape that ``w`` makes: each mirrored mode
    fitted by least squares over the template's vertices. ICT's identity space is mirror-closed to
    0.3 % of the modes' norm, so the map is exact to that (tested: it recovers the weights of a
    mirrored shape-space face, and applied twice it is the identity to that precision). Computed
    once per template (a least-squares solve, about 0.25 s on 2 CPU cores), then cached by its hash."""
    if tpl.sha256 not in _MIRROR_MAPS:
        from ..expression.shape_space import identity_modes

        B = identity_modes(tpl).astype(np.float64)  # (M, V, 3)
        A = B.reshape(len(B), -1).T
        R = np.linalg.lstsq(A, tpl.mirror(B).reshape(len(B), -1).T, rcond=None)[0]  # column k: mirror of mode k
        _MIRROR_MAPS[tpl.sha256] = torch.tensor(R, dtype=torch.float32)
    return _MIRROR_MAPS[tpl.sha256].clone()


_MIRROR_MAPS: dict[str, torch.Tensor] = {}


def mirror_batch(crops: torch.Tensor, weights: torch.Tensor, mirror: torch.Tensor | None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror augmentation for training: a random half of the (B, 3, S, S) crops flipped
    left-right, and their (B, M) identity weights mapped to the mirrored face's with ``mirror``
    (:func:`mirror_weight_map`); the others unchanged. Returns new tensors on the inputs' devices
    (``mirror`` None: augmentation off, the inputs themselves)."""
    if mirror is None:
        return crops, weights
    f = (torch.rand(len(crops), generator=generator) < 0.5).to(crops.device)
    crops = torch.where(f[:, None, None, None], torch.flip(crops, dims=[3]), crops)
    weights = torch.where(f[:, None].to(weights.device), weights @ mirror.to(weights).T, weights)
    return crops, weights


def round_to_fp16(net: IdentityCNN) -> dict:
    """Round ``net``'s floating-point weights to fp16, in place (its float32 parameters then hold
    the rounded values, so whatever is scored next is what ships), and return the fp16 state dict
    (on the CPU) that :func:`save_identity_cnn` writes."""
    fp16 = {k: v.detach().half().cpu() if v.is_floating_point() else v.detach().cpu() for k, v in net.state_dict().items()}
    net.load_state_dict(fp16)
    return fp16


def save_identity_cnn(path: str | Path, net: IdentityCNN, fp16_state: dict, recipe: dict, scores: dict) -> None:
    """Write the package :func:`load_identity_cnn` reads, atomically: ``model`` (the fp16 state
    dict from :func:`round_to_fp16`), ``arch`` (the constructor's arguments), ``recipe`` (how it was
    trained; ``template_sha256`` is checked on load) and ``scores``."""
    from ..checkpoint import atomic_save

    if "template_sha256" not in recipe:
        raise ValueError("the recipe must name the template it was trained for (template_sha256)")
    atomic_save(dict(model=fp16_state, arch=dict(net.arch), recipe=recipe, scores=scores), Path(path))


def identity_cnn_from_package(pkg: dict, where: str | Path) -> IdentityCNN:
    """Build the CNN from a package dict (``model``, ``arch``, ``recipe``; what
    :func:`save_identity_cnn` writes and a model file carries under ``identity_cnn``): float32,
    eval mode, on the CPU. Refuses weights made for another template."""
    if "model" not in pkg:  # a bare state dict (a training run's checkpoint)
        pkg = dict(model=pkg)
    made_for = pkg.get("recipe", {}).get("template_sha256")
    if made_for is not None:
        from ..template import load_template

        if made_for != load_template().sha256:
            raise ValueError(f"{where}: identity CNN made for another template (sha256 {made_for[:12]}…); retrain it")
    bad = [k for k, v in pkg["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{where}: identity CNN weights contain NaN or inf ({bad[0]})")
    net = IdentityCNN(**pkg.get("arch", {}))
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in pkg["model"].items()})
    except RuntimeError as e:
        raise ValueError(f"{where}: identity CNN weights do not match its architecture ({first_line(e)})") from None
    return net.eval()


@lru_cache(maxsize=2)
def load_identity_cnn(path: str | None = None) -> IdentityCNN:
    """The CNN from a file (default: the one the bundled model carries): a package that
    :func:`save_identity_cnn` wrote, or a model file with an ``identity_cnn`` entry. Float32, eval
    mode, on the CPU (it reads one crop per photo: milliseconds). Raises FileNotFoundError with
    the command that makes the weights when they are missing."""
    p = Path(path) if path else DEFAULT_WEIGHTS
    if not p.is_file():
        raise FileNotFoundError(f"no identity CNN weights at {p}; train them with "
                                "python -m glvd_core train-identity (research/image_identity/NOTES.md)")
    ck = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(ck, dict) and "format" in ck:  # a model file
        if "identity_cnn" not in ck:
            raise ValueError(f"{p}: this model file carries no identity CNN")
        ck = ck["identity_cnn"]
    return identity_cnn_from_package(ck, p)

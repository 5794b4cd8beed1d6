"""Settings of the fitting stage, one dataclass, documented field by field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Robust = Literal["cauchy", "l2"]
OutlineRegion = Literal["face", "head"]


@dataclass(frozen=True)
class FitOptions:
    """How the result is fitted to the evidence in the photos after the descent: MediaPipe's
    478 points, each tied to its calibrated place on the surface (:mod:`.dense_points`), and
    the outline of each head mask given (:mod:`.outline`).

    Attributes:
        iterations: Gauss-Newton iterations; each one is kept as a step (``fit_01`` …).
        points: the dense-point term (MediaPipe's 478 points at their calibrated places).
        expression: also fit the 57 ICT expression modes (weights in [0, 1]), so the mesh
            carries the photo's expression, a smile or an open jaw (the pipeline's ``neutral``
            removes it again). Off by default: it improved three views on data/val but not on
            the held-out tables, and it reads a neutral real face's detector errors as
            expression (research/photo_fit/NOTES.md).
        identity_prior: precision of the prior holding the 100 identity weights the fit adds to
            the descent's shape near zero (larger: nearer the descent's shape; chosen on data/val).
        expression_prior: precision of the ridge on the expression weights (weak priors read
            the detector's systematic errors as expression; chosen on data/val).
        noise_scale: multiplies each point's calibrated spread (the noise the fit assumes; larger
            trusts the points less against the priors).
        grazing: down-weight points where the surface turns away from the camera (near the
            occluding contour MediaPipe's points slide along the outline).
        outline: where a view has a head mask, pull the mesh's outer occluding contour onto the
            mask's outline (signed distance, pixels).
        outline_region: which part of the mesh's contour the outline pulls: "face" (cheeks and
            jaw, between the chin and the brows: in a photo the outline above is hair and below
            is neck or clothes) or "head" (the whole contour, for masks of the head alone).
        outline_sigma: the outline's assumed noise, a fraction of the head's size in the mask.
        outline_weight: weight of each contour vertex's residual against a point's.
        pin_sigma_px: how closely a pin is held to its pixel (its assumed noise, pixels; the
            smaller, the more a pin outweighs the other evidence and the priors).
        robust: "cauchy" (a wrong point or view weighs little) or "l2".
        cauchy_scale: where the Cauchy loss starts to discount a residual, in spreads.
        scale_prior: precision of the prior keeping the head's scale (log) at the descent's
            with one view, where scale and depth trade off.
        view_outlier_ratio: a view whose median residual is this many times the others' median
            is named in a note and down-weighted.
        max_move_m: a fit changing the face's shape (over the narrow face, after the best
            similarity) by more than this anywhere is treated as diverged: the descent's result
            is kept, with a note.
    """

    iterations: int = 10
    points: bool = True
    expression: bool = False
    identity_prior: float = 30.0
    expression_prior: float = 300.0
    noise_scale: float = 1.0
    grazing: bool = True
    outline: bool = True
    outline_region: OutlineRegion = "face"
    outline_sigma: float = 0.01
    outline_weight: float = 1.0
    pin_sigma_px: float = 0.5
    robust: Robust = "cauchy"
    cauchy_scale: float = 3.0
    scale_prior: float = 1e4
    view_outlier_ratio: float = 3.0
    max_move_m: float = 0.03

    def __post_init__(self):
        if self.iterations < 0:
            raise ValueError(f"fit iterations must be >= 0, not {self.iterations}")
        if not (self.points or self.outline):
            raise ValueError("the fit needs an evidence term: turn on points or outline")
        if self.outline_region not in ("face", "head"):
            raise ValueError(f"outline_region must be 'face' or 'head', not {self.outline_region!r}")
        if self.robust not in ("cauchy", "l2"):
            raise ValueError(f"robust must be 'cauchy' or 'l2', not {self.robust!r}")
        for name in ("pin_sigma_px", "outline_sigma", "outline_weight", "identity_prior", "expression_prior", "noise_scale", "cauchy_scale", "scale_prior",
                     "view_outlier_ratio", "max_move_m"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and v == v and v != float("inf")):
                raise ValueError(f"{name} must be a positive number, not {v!r}")

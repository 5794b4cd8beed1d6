"""The one pipeline: photos -> :class:`~glvd_core.reconstruct.Reconstruction` plus the extras
(neutral expression, photo texture, ARKit shapes). The CLI, the Blender operator and
``scripts/batch.py`` all call :func:`run`; what differs between them is only where the photos
come from and where the result goes.

    from glvd_core.pipeline import PipelineOptions, load_inputs, run
    inputs = load_inputs(["face.jpg"])
    result = run(Reconstructor.from_pretrained(), inputs, PipelineOptions(texture_size=2048))
    result.final_vertices_m, result.texture.image, result.arkit["jawOpen"]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cameras import DEFAULT_FOV_DEG
from .fitting import FitOptions, FitResult
from .reconstruct import Cancelled, Reconstruction, ReconstructOptions, Reconstructor


@dataclass(frozen=True)
class PipelineOptions:
    """What one run makes.

    Attributes:
        reconstruct: the descent's per-call settings (steps, clip, seed, field of view, detection).
        fit: the fitting stage after the descent (:class:`~glvd_core.fitting.FitOptions`), or
            None (the default) to keep the descent's result: it helps several synthetic views
            with masks and makes the real scan worse (docs/RESULTS.md), so it is a choice.
        texture_size: side of the photo texture in pixels, 64..8192 (0: no texture).
        neutral: remove the expression estimated on the photos from the rest shape.
        arkit: make the 52 ARKit shape offsets for the rest shape.
    """

    reconstruct: ReconstructOptions = field(default_factory=ReconstructOptions)
    fit: FitOptions | None = None
    texture_size: int = 0
    neutral: bool = False
    arkit: bool = False

    def __post_init__(self):  # a bad texture size fails here, before the reconstruction, not after it
        if self.texture_size:
            from .texture.bake import check_texture_size

            check_texture_size(self.texture_size)


@dataclass
class Inputs:
    """Photos read from disk, ready for :func:`run`.

    Attributes:
        paths: the photos' paths (names in messages).
        images: (H, W, 3) uint8 RGB per photo (reduced to at most 2048 px, see ``scales``).
        intrinsics: per photo a :class:`~glvd_core.cameras.Camera` with its K (EXIF or the field of view).
        masks: (H, W) uint8 head masks per photo, or None when no photo has one.
        scales: per photo the factor its pixels were scaled by on loading (1: unchanged).
        cameras: calibrated cameras in the loaded photos' pixels, or None.
        pins: per photo the artist's pins (:class:`~glvd_core.fitting.Pin`, loaded photos'
            pixels), or None; pins turn the fitting stage on.
    """

    paths: list
    images: list
    intrinsics: list
    masks: list | None
    scales: list
    cameras: list | None = None
    pins: list | None = None


@dataclass
class PipelineResult:
    """Everything one run made.

    Attributes:
        reconstruction: every descent step (vertices (T+1, 7225, 3) metres, keypoints, cameras;
            the cameras as the fit refined them when they were estimated).
        fit: the fitting stage's result (its steps (F, 7225, 3) metres; none when it kept the
            descent's result), or None when it was off.
        final_vertices_m: (7225, 3) metres, the rest shape: the last fit step (else the last
            descent step), neutralised with ``neutral``.
        expression: ARKit-named weights that ``neutral`` removed (None without it).
        texture: the baked :class:`~glvd_core.texture.Texture` (None without ``texture_size``).
        arkit: ARKit name -> (7225, 3) offsets in metres from the rest shape (None without ``arkit``).
        timings: seconds per stage ("descent", "fit", "neutral", "texture", "arkit") and "total".
    """

    reconstruction: Reconstruction
    final_vertices_m: np.ndarray
    fit: FitResult | None = None
    expression: dict | None = None
    texture: object = None
    arkit: dict | None = None
    timings: dict = field(default_factory=dict)

    @property
    def notes(self) -> list:
        return self.reconstruction.info.get("notes", [])


def load_inputs(paths: Sequence[str | Path], mask_paths: Sequence[str | Path | None] | None = None,
                fov_deg: float | None = None, default_fov_deg: float = DEFAULT_FOV_DEG) -> Inputs:
    """Photos (and optional masks, None per photo without one) from disk; no bpy, no torch.
    Each photo's field of view (degrees, longer side): ``fov_deg`` when given, else its EXIF focal
    length, else ``default_fov_deg``."""
    from .preprocess import load_photo
    from .preprocess.photo import load_mask_for

    paths = [str(p) for p in paths]
    mask_paths = list(mask_paths) if mask_paths else [None] * len(paths)
    if len(mask_paths) != len(paths):
        raise ValueError(f"{len(mask_paths)} masks for {len(paths)} images")
    photos = [load_photo(p, fov_deg=fov_deg, default_fov_deg=default_fov_deg) for p in paths]
    masks = [load_mask_for(m, ph) if m else None for m, ph in zip(mask_paths, photos)]
    return Inputs(paths, [ph.image for ph in photos], [ph.camera for ph in photos],
                  masks if any(m is not None for m in masks) else None, [ph.scale for ph in photos])


def attach_pins(inputs: Inputs, pins: str | Path | dict) -> None:
    """A ``pins.json`` file, or its document (glvd_core/fitting/pins.py: pixels of the photo files)
    for these photos, validated against their sizes, into ``inputs.pins`` in the loaded photos'
    pixels."""
    from .fitting import Pin, load_pins, parse_pins
    from .template import load_template

    sizes = [(round(im.shape[1] / s), round(im.shape[0] / s)) for im, s in zip(inputs.images, inputs.scales)]
    per_view = (parse_pins(pins, load_template(), sizes, where="pins") if isinstance(pins, dict)
                else load_pins(pins, load_template(), sizes))
    inputs.pins = [[Pin(p.vertices, p.bary, tuple((np.array(p.pixel) + 0.5) * s - 0.5)) for p in view]
                   for view, s in zip(per_view, inputs.scales)]


def run(reconstructor: Reconstructor, inputs: Inputs, options: PipelineOptions | None = None, *,
        landmarks: list[np.ndarray | None] | None = None,
        callback: Callable[[int, np.ndarray, np.ndarray], bool | None] | None = None,
        stage: Callable[[str], bool | None] | None = None, prepared: tuple | None = None) -> PipelineResult:
    """Reconstruct ``inputs`` and make the extras ``options`` ask for.

    Args:
        callback: ``callback(step, vertices_m, keypoints_m)`` after each descent step (see
            :meth:`Reconstructor.reconstruct`); returning False cancels.
        stage: ``stage(name)`` as each stage starts ("descent", "fit", "neutral", "texture",
            "blendshapes"); returning False cancels (:class:`Cancelled`) before that stage.
        landmarks, prepared: as :meth:`Reconstructor.reconstruct`.
    """
    o = options or PipelineOptions()
    tpl = reconstructor.template
    timings = {}
    t_all = time.perf_counter()

    def begin(name):
        if stage is not None and stage(name) is False:
            raise Cancelled(f"cancelled before {name}")
        return time.perf_counter()

    t = begin("descent")
    r = reconstructor.reconstruct(inputs.images, inputs.masks, inputs.cameras, o.reconstruct, landmarks=landmarks,
                                  intrinsics=inputs.intrinsics, names=inputs.paths, callback=callback,
                                  prepared=prepared)
    timings["descent"] = time.perf_counter() - t
    res = PipelineResult(r, r.final_vertices)
    shaped = r.final_vertices  # the shape before neutral: the fit's, else the descent's
    pins = inputs.pins if inputs.pins and any(inputs.pins) else None
    fit_options = o.fit if o.fit is not None or pins is None else FitOptions()  # pins need the fit
    if fit_options is not None:
        from .fitting import fit_reconstruction

        t = begin("fit")
        res.fit = fit_reconstruction(tpl, r, fit_options, masks=inputs.masks, pins=pins)  # the user's masks' outlines
        r.info.setdefault("notes", []).extend(res.fit.notes)
        if len(res.fit.steps):
            shaped = res.final_vertices_m = res.fit.steps[-1]
            r.cameras = res.fit.cameras
        timings["fit"] = time.perf_counter() - t
    if o.neutral:
        from .expression import neutralize

        t = begin("neutral")
        res.final_vertices_m, fit = neutralize(tpl, shaped)
        res.expression = fit.expression
        timings["neutral"] = time.perf_counter() - t
    if o.texture_size:
        from .texture import bake_texture

        t = begin("texture")
        res.texture = bake_texture(shaped, inputs.images, r.cameras, tpl, masks=inputs.masks,
                                   size=o.texture_size)
        timings["texture"] = time.perf_counter() - t
    if o.arkit:
        from .expression import arkit_offsets

        t = begin("blendshapes")
        res.arkit = arkit_offsets(tpl, res.final_vertices_m)
        timings["arkit"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    res.timings = timings
    return res

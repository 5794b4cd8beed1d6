"""Pins: an artist's 2D constraints. A pin says "this point of the face is at this pixel of that
photo"; the fitting stage pulls it there as far as the shape space allows.

``pins.json`` (``--pins``)::

    {"pins": [{"view": 0, "vertex": 1234, "pixel": [412.5, 300.0]},
              {"view": 1, "triangle": 55, "bary": [0.2, 0.3, 0.5], "pixel": [120, 98]}]}

``view``: the photo's index (0-based, in the order given); the point is a template ``vertex`` or a
``triangle`` with barycentric weights ``bary`` (non-negative, summing to 1); ``pixel``: (x, y)
in the photo's own pixels (x right, y down, pixel centres at integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import InputError, is_number_list, read_json
from ..template import Template


@dataclass(frozen=True)
class Pin:
    """Attributes:
        vertices: (3,) template vertex ids of the pinned point's triangle (a vertex: itself 3 times).
        bary: (3,) barycentric weights.
        pixel: (2,) where it belongs in the photo, pixels.
    """

    vertices: tuple
    bary: tuple
    pixel: tuple


def parse_pins(data: dict, template: Template, image_sizes: list[tuple[int, int]], where: str = "pins") -> list[list[Pin]]:
    """Validate a pins document; returns the pins per view. ``image_sizes``: (width, height) per
    photo. Raises :class:`InputError` naming the first bad entry."""
    if not isinstance(data, dict) or not isinstance(data.get("pins"), list):
        raise InputError(f'{where}: expected {{"pins": [...]}}')
    out = [[] for _ in image_sizes]
    nv, nf = template.num_vertices, template.num_faces
    for k, e in enumerate(data["pins"]):
        at = f"{where}: pin {k}"
        if not isinstance(e, dict):
            raise InputError(f"{at}: expected an object")
        view = e.get("view")
        if not isinstance(view, int) or isinstance(view, bool) or not 0 <= view < len(image_sizes):
            raise InputError(f"{at}: view {view!r} is not one of the {len(image_sizes)} photos (0-based)")
        if ("vertex" in e) == ("triangle" in e):
            raise InputError(f"{at}: give either a vertex or a triangle with bary")
        if "vertex" in e:
            v = e["vertex"]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < nv:
                raise InputError(f"{at}: vertex {v!r} is not a template vertex (0..{nv - 1})")
            verts, bary = (v, v, v), (1.0, 0.0, 0.0)
        else:
            t, b = e["triangle"], e.get("bary")
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < nf:
                raise InputError(f"{at}: triangle {t!r} is not a template triangle (0..{nf - 1})")
            if not is_number_list(b, 3) or min(b) < 0 or abs(sum(b) - 1) > 1e-3:
                raise InputError(f"{at}: bary must be 3 finite non-negative weights summing to 1, not {b!r}")
            verts, bary = tuple(int(i) for i in template.faces[t]), tuple(float(x) for x in b)
        px = e.get("pixel")
        W, H = image_sizes[view]
        if not is_number_list(px, 2) or not (-0.5 <= px[0] <= W - 0.5 and -0.5 <= px[1] <= H - 0.5):
            raise InputError(f"{at}: pixel {px!r} is not a finite point inside photo {view} ({W}x{H})")
        out[view].append(Pin(verts, bary, (float(px[0]), float(px[1]))))
    return out


def load_pins(path: str | Path, template: Template, image_sizes: list[tuple[int, int]]) -> list[list[Pin]]:
    """Read and validate ``pins.json`` (see the module docstring)."""
    return parse_pins(read_json(path), template, image_sizes, where=str(path))


def pin_arrays(pins: list[Pin]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 3) vertex ids, (n, 3) barycentric weights, (n, 2) target pixels."""
    return (np.array([p.vertices for p in pins], np.int64).reshape(-1, 3),
            np.array([p.bary for p in pins], np.float64).reshape(-1, 3),
            np.array([p.pixel for p in pins], np.float64).reshape(-1, 2))

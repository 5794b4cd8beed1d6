"""Loading the committed template asset (built by ``scripts/build_template.py``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp


_ASSET = Path(__file__).resolve().parent.parent / "assets" / "template.npz"


def template_path() -> Path:
    return _ASSET


@dataclass(frozen=True, eq=False)
class Template:
    """The GLVD face template. All positions in metres, ICT axes (x left of the subject... see
    :mod:`glvd_core.ict`: x to the viewer's right, y up, z out of the face).

    Attributes:
        vertices_m: (7225, 3) neutral ICT face, metres.
        faces: (14342, 3) int32 triangles, counter-clockwise seen from outside.
        uvs: (7225, 2) texture coordinates (ICT UV layout).
        symmetry: (7225,) int32; ``symmetry[i]`` is the mirror vertex of ``i`` (x -> -x).
        vertex_region: (7225,) uint8 region id; names in ``region_names``.
        narrow_face_mask: (7225,) bool; the ICT "narrow face" region without the eye/mouth caps
            (the region scored by evaluation).
        landmarks68: (68,) template vertex ids of the Multi-PIE 68 landmarks.
        keypoint_sets_68: {K: 68-layout indices} for K in 5, 9, 18, 68.
        mirror68: (68,) the 68-layout index of each landmark's mirror.
        expression_modes_m: (57, 7225, 3) ICT expression modes on the template, metres.
        expression_names: 57 names (ICT / ARKit style with ``_L``/``_R``).
        ict_map: sparse (7225, 26719) matrix W with ``template = W @ ict_vertices``.
        sha256: hash of the asset file (checkpoints record it).
    """

    vertices_m: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    symmetry: np.ndarray
    vertex_region: np.ndarray
    region_names: tuple
    narrow_face_mask: np.ndarray
    boundary: np.ndarray
    landmarks68: np.ndarray
    keypoint_sets_68: dict
    mirror68: np.ndarray
    expression_modes_m: np.ndarray
    expression_names: tuple
    ict_indptr: np.ndarray
    ict_indices: np.ndarray
    ict_weights: np.ndarray
    ict_num_vertices: int
    sha256: str
    meta: dict = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return len(self.vertices_m)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def ict_map(self) -> sp.csr_matrix:
        import scipy.sparse as sp

        return sp.csr_matrix((self.ict_weights, self.ict_indices, self.ict_indptr),
                             shape=(self.num_vertices, self.ict_num_vertices))

    def from_ict(self, ict_vertices: np.ndarray) -> np.ndarray:
        """Map ICT-topology vertices (26719, 3) (or a batch (..., 26719, 3)) onto the template."""
        x = np.asarray(ict_vertices, np.float64)
        lead = x.shape[:-2]
        flat = np.moveaxis(x.reshape((-1,) + x.shape[-2:]), 0, 1).reshape(x.shape[-2], -1)  # (26719, B*3)
        out = np.asarray(self.ict_map @ flat).reshape(self.num_vertices, -1, 3)
        return np.moveaxis(out, 1, 0).reshape(lead + (self.num_vertices, 3)).astype(np.float32)

    def keypoint_indices(self, k: int = 18) -> np.ndarray:
        """Template vertex ids of the K-keypoint subset (K in 5, 9, 18, 68)."""
        if k not in self.keypoint_sets_68:
            raise ValueError(f"no keypoint set of size {k}; choose one of {sorted(self.keypoint_sets_68)}")
        return self.landmarks68[np.asarray(self.keypoint_sets_68[k])]

    def keypoint_mirror(self, k: int = 18) -> np.ndarray:
        """Permutation p of the K keypoints such that keypoint p[j] mirrors keypoint j."""
        sub = list(self.keypoint_sets_68[k])
        return np.array([sub.index(int(self.mirror68[j])) for j in sub])

    def mirror(self, vertices: np.ndarray) -> np.ndarray:
        """Mirror a template-topology shape (..., 7225, 3) across x = 0 in its own frame."""
        v = np.asarray(vertices)[..., self.symmetry, :].copy()
        v[..., 0] *= -1
        return v


@lru_cache(maxsize=4)
def _load(path: str) -> Template:
    raw = Path(path).read_bytes()
    with np.load(path) as d:
        return Template(
            vertices_m=d["vertices_m"],
            faces=d["faces"],
            uvs=d["uvs"],
            symmetry=d["symmetry"],
            vertex_region=d["vertex_region"],
            region_names=tuple(str(s) for s in d["region_names"]),
            narrow_face_mask=d["narrow_face_mask"],
            boundary=d["boundary"],
            landmarks68=d["landmarks68"],
            keypoint_sets_68={int(k): v for k, v in json.loads(str(d["keypoint_sets_68"])).items()},
            mirror68=d["mirror68"],
            expression_modes_m=d["expression_modes_m"],
            expression_names=tuple(str(s) for s in d["expression_names"]),
            ict_indptr=d["ict_map_indptr"],
            ict_indices=d["ict_map_indices"],
            ict_weights=d["ict_map_weights"],
            ict_num_vertices=int(d["ict_num_vertices"]),
            sha256=hashlib.sha256(raw).hexdigest(),
            meta=json.loads(str(d["meta"])),
        )


def load_template(path: str | Path | None = None) -> Template:
    """Load the template (default: the committed asset). Cached; treat arrays as read-only."""
    p = Path(path) if path is not None else _ASSET
    if not p.is_file():
        raise FileNotFoundError(f"template asset not found: {p} (build it with scripts/build_template.py)")
    return _load(str(p.resolve()))

"""Access to the ICT-FaceKit light model (MIT licence, see ``assets/ICT_LICENSE.txt``).

The ICT model is the shape space of our synthetic training data and the source of the
template. It is *not* needed to run a reconstruction: the template asset carries everything
inference needs. Data generation, template building and evaluation read it from the data
directory, found in this order:

1. an explicit ``path`` argument (CLI: ``--ict PATH``);
2. the environment variable ``GLVD_ICT_PATH``;
3. ``<repo>/../shared/data/ict_facekit/ict_face_model.npz`` (the developers' layout);
4. ``<repo>/data/ict_facekit/ict_face_model.npz``.

Units: the file is in centimetres; :class:`ICTModel` converts everything to **metres**.
Axes: x to the head's left (viewer's right), y up, z out of the face (+z = facing direction).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CM_TO_M = 0.01
FACE_REGION_END = 9409  # ICT vertices [0, 9409) form the "face" region

_REPO = Path(__file__).resolve().parent.parent


def find_ict_path(path: str | os.PathLike | None = None) -> Path:
    """Resolve the ICT npz, raising a clear error that lists where it looked."""
    candidates = []
    if path is not None:
        candidates.append(Path(path))
    if os.environ.get("GLVD_ICT_PATH"):
        candidates.append(Path(os.environ["GLVD_ICT_PATH"]))
    candidates += [
        _REPO.parent / "shared" / "data" / "ict_facekit" / "ict_face_model.npz",
        _REPO / "data" / "ict_facekit" / "ict_face_model.npz",
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        "ICT-FaceKit model not found; looked at: " + ", ".join(str(c) for c in candidates)
        + ". Pass --ict PATH or set GLVD_ICT_PATH."
    )


@dataclass(frozen=True, eq=False)
class ICTModel:
    """The ICT light model in metres.

    Attributes:
        neutral_m: (N, 3) neutral head, metres.
        identity_modes_m: (100, N, 3) identity modes (weights ~ N(0, 1)), metres per unit weight.
        expression_modes_m: (57, N, 3) expression modes (weights in [0, 1]), metres.
        expression_names: 57 ARKit-style names (``_L``/``_R`` suffixes).
        triangles: (F, 3) int triangles of the whole head (quads split on the shorter diagonal).
        triangle_uvs: (F, 3) int indices into ``uvs`` for each triangle corner.
        triangle_material: (F,) material index per triangle; names in ``material_names``.
        uvs: (U, 2) texture coordinates in [0, 1].
        landmarks68: (68,) vertex indices of the Multi-PIE 68 landmarks.
        regions: name -> (start, end) vertex ranges.
    """

    neutral_m: np.ndarray
    identity_modes_m: np.ndarray
    expression_modes_m: np.ndarray
    expression_names: tuple
    triangles: np.ndarray
    triangle_uvs: np.ndarray
    triangle_material: np.ndarray
    material_names: tuple
    uvs: np.ndarray
    landmarks68: np.ndarray
    regions: dict
    path: str

    @property
    def num_vertices(self) -> int:
        return self.neutral_m.shape[0]

    def shape(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> np.ndarray:
        """Vertices (N, 3) in metres for identity weights (100,) and expression weights (57,)."""
        v = self.neutral_m.copy()
        if identity is not None:
            v += np.tensordot(np.asarray(identity, np.float32), self.identity_modes_m, axes=1)
        if expression is not None:
            v += np.tensordot(np.asarray(expression, np.float32), self.expression_modes_m, axes=1)
        return v

    def face_triangles(self) -> np.ndarray:
        """Triangles whose three vertices all lie in the face region (vertices < 9409)."""
        t = self.triangles
        return t[(t < FACE_REGION_END).all(1)]


def _split_polygons(sizes, vidx, uidx, verts):
    """Split ICT polygons (tris and quads) into triangles; quads along their shorter diagonal
    so that the split is mirror-consistent on the (symmetric) ICT head."""
    off = np.concatenate([[0], np.cumsum(sizes.astype(np.int64))])
    tris, tuvs, owner = [], [], []
    quads = np.nonzero(sizes == 4)[0]
    q = np.stack([vidx[off[quads] + k] for k in range(4)], 1)
    qu = np.stack([uidx[off[quads] + k] for k in range(4)], 1)
    d02 = np.linalg.norm(verts[q[:, 0]] - verts[q[:, 2]], axis=1)
    d13 = np.linalg.norm(verts[q[:, 1]] - verts[q[:, 3]], axis=1)
    use02 = d02 <= d13
    a = np.where(use02[:, None], q[:, [0, 1, 2]], q[:, [0, 1, 3]])
    b = np.where(use02[:, None], q[:, [0, 2, 3]], q[:, [1, 2, 3]])
    au = np.where(use02[:, None], qu[:, [0, 1, 2]], qu[:, [0, 1, 3]])
    bu = np.where(use02[:, None], qu[:, [0, 2, 3]], qu[:, [1, 2, 3]])
    tr = np.nonzero(sizes == 3)[0]
    t3 = np.stack([vidx[off[tr] + k] for k in range(3)], 1)
    u3 = np.stack([uidx[off[tr] + k] for k in range(3)], 1)
    tris = np.concatenate([a, b, t3])
    tuvs = np.concatenate([au, bu, u3])
    owner = np.concatenate([quads, quads, tr])
    return tris.astype(np.int32), tuvs.astype(np.int32), owner


@lru_cache(maxsize=2)
def _load_cached(path: str) -> ICTModel:
    d = np.load(path)
    neutral = d["neutral"].astype(np.float32) * CM_TO_M
    tris, tuvs, owner = _split_polygons(d["face_sizes"], d["face_vertex_indices"], d["face_uv_indices"], neutral)
    return ICTModel(
        neutral_m=neutral,
        identity_modes_m=d["identity_modes"].astype(np.float32) * CM_TO_M,
        expression_modes_m=d["expression_modes"].astype(np.float32) * CM_TO_M,
        expression_names=tuple(str(s) for s in d["expression_names"]),
        triangles=tris,
        triangle_uvs=tuvs,
        triangle_material=d["face_material"][owner].astype(np.int16),
        material_names=tuple(str(s) for s in d["material_names"]),
        uvs=d["uvs"].astype(np.float32),
        landmarks68=d["landmarks68"].astype(np.int64),
        regions={k: tuple(v) for k, v in json.loads(str(d["regions_json"])).items()},
        path=path,
    )


def load_ict(path: str | os.PathLike | None = None) -> ICTModel:
    """Load (and cache) the ICT model, converted to metres."""
    return _load_cached(str(find_ict_path(path).resolve()))

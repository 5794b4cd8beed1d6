"""The face mesh object: template topology, UVs and the rest shape on the object's grid."""

from __future__ import annotations

import bpy
import numpy as np


def add_face_mesh(col: bpy.types.Collection, name: str, rest_local: np.ndarray, faces: np.ndarray, uvs: np.ndarray,
                  origin: np.ndarray, smooth: bool, created: dict) -> bpy.types.Object:
    """A mesh object "``name``" at ``origin`` (3,) world metres, with (V, 3) float32 object-local
    vertices ``rest_local``, (F, 3) triangles, (V, 2) per-vertex UVs ("UVMap") and smooth or flat
    shading, linked into ``col``."""
    faces = np.asarray(faces, np.int32)
    me = bpy.data.meshes.new(name)
    created["meshes"].append(me)
    me.vertices.add(len(rest_local))
    me.vertices.foreach_set("co", rest_local.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    uv = me.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", np.asarray(uvs, np.float32)[faces.ravel()].ravel())
    me.polygons.foreach_set("use_smooth", np.full(len(faces), bool(smooth)))
    me.update(calc_edges=True)
    face = bpy.data.objects.new(name, me)
    created["objects"].append(face)
    col.objects.link(face)
    face.location = origin.tolist()
    return face

"""The face's material: the baked photo texture on a Principled BSDF."""

from __future__ import annotations

import bpy
import numpy as np


def add_texture_material(face: bpy.types.Object, texture: np.ndarray, name: str, created: dict) -> None:
    """A packed image of the baked photo texture ((S, S, 3) uint8 sRGB, row 0 = top) and a
    Principled BSDF material showing it (Material Preview, EEVEE and Cycles)."""
    import cv2

    h, w = texture.shape[:2]
    # Packed as a PNG made here at a fast compression level: Blender's own pack() of a generated
    # image encodes it slowly (0.25 s at 2K, most of a refit's scene writing). Lossless either way.
    ok, png = cv2.imencode(".png", np.ascontiguousarray(texture[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("the photo texture could not be encoded")
    img = bpy.data.images.new(f"{name} Texture", width=w, height=h, alpha=False)
    created["images"].append(img)
    img.pack(data=png.tobytes(), data_len=png.size)
    img.source = "FILE"
    mat = bpy.data.materials.new(f"{name} Material")
    created["materials"].append(mat)
    if bpy.app.version < (5, 0, 0):  # always node-based from 5.0 (use_nodes deprecated)
        mat.use_nodes = True
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.55
    tex = nt.nodes.new("ShaderNodeTexImage")
    tex.image = img
    tex.location = (-400, 300)
    nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    face.data.materials.append(mat)

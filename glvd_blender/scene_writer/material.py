"""The face's material: the baked photo texture on a Principled BSDF."""

from __future__ import annotations

import bpy
import numpy as np


def add_texture_material(face: bpy.types.Object, texture: np.ndarray, name: str, created: dict) -> None:
    """A packed image of the baked photo texture ((S, S, 3) uint8 sRGB, row 0 = top) and a
    Principled BSDF material showing it (Material Preview, EEVEE and Cycles)."""
    h, w = texture.shape[:2]
    img = bpy.data.images.new(f"{name} Texture", width=w, height=h, alpha=False)
    created["images"].append(img)
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = texture[::-1].astype(np.float32) / 255.0  # Blender's rows run bottom-up
    img.pixels.foreach_set(rgba.ravel())
    img.pack()
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

"""Exports of a GLVD face through Blender's own exporters (panel and scripts/batch.py).

Every file is written under a temporary name and renamed, so a killed export never leaves a
half-written file under the final name. glTF/GLB carry the shape keys (ARKit + descent) as
morph targets and embed the photo texture (GLB) or write it beside the file; FBX embeds it;
OBJ writes an .mtl and the texture PNG beside the .obj.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy

FORMATS = {"blend": ".blend", "glb": ".glb", "gltf": ".gltf", "fbx": ".fbx", "obj": ".obj"}


def _texture_images(objects):
    for ob in objects:
        for slot in getattr(ob, "material_slots", []):
            mat = slot.material
            if mat and mat.node_tree:
                for n in mat.node_tree.nodes:
                    if n.type == "TEX_IMAGE" and n.image is not None:
                        yield n.image


def _select_only(objects):
    view_layer = bpy.context.view_layer
    for o in view_layer.objects:
        o.select_set(False)
    for o in objects:
        o.select_set(True)
    if objects:
        view_layer.objects.active = objects[0]


def export(fmt: str, path: str | Path, objects: list[bpy.types.Object] | None = None) -> Path:
    """Write ``objects`` (default: the selected ones) to ``path`` as ``fmt`` (a key of FORMATS;
    'blend' saves a copy of the whole file). Returns the path."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if fmt == "blend":
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True, compress=True)
        os.replace(tmp, path)
        return path
    objects = list(objects) if objects is not None else list(bpy.context.selected_objects)
    if not objects:
        raise ValueError("nothing to export: select the GLVD face")
    _select_only(objects)
    restore = []
    try:
        if fmt in ("obj", "gltf"):  # texture files beside the export, referenced by name
            for img in _texture_images(objects):
                png = path.with_name(f"{path.stem}_{bpy.path.clean_name(img.name)}.png")
                restore.append((img, img.filepath_raw, img.file_format))
                img.filepath_raw = str(png)
                img.file_format = "PNG"
                img.save()
        if fmt == "obj":
            bpy.ops.wm.obj_export(filepath=str(tmp), export_selected_objects=True, export_materials=True,
                                  path_mode="STRIP", export_uv=True, export_normals=True,
                                  forward_axis="NEGATIVE_Z", up_axis="Y")
            mtl_tmp = tmp.with_suffix(".mtl")
            if mtl_tmp.exists():  # the .obj names its .mtl: keep the pair consistent
                text = tmp.read_text().replace(mtl_tmp.name, path.with_suffix(".mtl").name)
                tmp.write_text(text)
                os.replace(mtl_tmp, path.with_suffix(".mtl"))
        elif fmt in ("glb", "gltf"):
            bpy.ops.export_scene.gltf(filepath=str(tmp), export_format="GLB" if fmt == "glb" else "GLTF_SEPARATE",
                                      use_selection=True, export_morph=True, export_texcoords=True,
                                      export_normals=True)
            if fmt == "gltf":
                bin_tmp = tmp.with_suffix(".bin")
                if bin_tmp.exists():
                    text = tmp.read_text().replace(bin_tmp.name, path.with_suffix(".bin").name)
                    tmp.write_text(text)
                    os.replace(bin_tmp, path.with_suffix(".bin"))
        elif fmt == "fbx":
            bpy.ops.export_scene.fbx(filepath=str(tmp), use_selection=True, path_mode="COPY", embed_textures=True,
                                     use_mesh_modifiers=False)
        os.replace(tmp, path)
    finally:
        for img, fp, ff in restore:
            img.filepath_raw, img.file_format = fp, ff
        if tmp.exists():
            tmp.unlink()
    return path

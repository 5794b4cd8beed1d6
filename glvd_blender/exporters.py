"""Exports of a GLVD face through Blender's own exporters (panel and scripts/batch.py).

Every file is written under a temporary name, checked whole (Blender's exporters can report
success on a file a full disk cut short: header, length, seek table, face count) and only then
renamed, so a failed or killed export never leaves a half-written file under the final name.
FBX is the exception: it records its texture's path after its own name, so it is written in
place, checked, and a failure puts back the file that was there. glTF/GLB carry the shape keys
(ARKit + descent) as morph targets and embed the photo texture (GLB) or write it beside the
file; FBX embeds it; OBJ writes an .mtl and the texture PNG beside the .obj.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import bpy

_FBX_FOOTER = bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")  # the last 16 bytes of a binary FBX
FORMATS = {"blend": ".blend", "glb": ".glb", "gltf": ".gltf", "fbx": ".fbx", "obj": ".obj"}


def _why_incomplete(fmt: str, path: Path, polygons: int | None) -> str | None:
    """Why ``path`` is not a whole ``fmt`` file (None when it is); format structure only, no Blender."""
    data = path.read_bytes()
    if not data:
        return "the file is empty"
    if fmt == "blend":
        if data[:4] == b"\x28\xb5\x2f\xfd":  # zstd, Blender's seekable format: the seek table sums the frames
            if len(data) < 17 or data[-4:] != b"\xb1\xea\x92\x8f":
                return "the compressed .blend has no seek table (cut short)"
            n, desc = struct.unpack("<IB", data[-9:-4])
            entry = 12 if desc & 0x80 else 8
            table = 8 + n * entry + 9
            sizes = [struct.unpack_from("<I", data, len(data) - table + 8 + i * entry)[0] for i in range(n)]
            return None if table <= len(data) and sum(sizes) == len(data) - table else "the compressed .blend is cut short"
        if data[:7] != b"BLENDER":
            return "not a .blend file"
        return None if b"ENDB" in data[-32:] else "the .blend is cut short"
    if fmt == "glb":
        if len(data) < 12 or data[:4] != b"glTF":
            return "not a GLB file"
        return None if struct.unpack("<I", data[8:12])[0] == len(data) else "the GLB is cut short"
    if fmt == "gltf":
        try:
            doc = json.loads(data)
            for b in doc.get("buffers", []):
                if (path.parent / b["uri"]).stat().st_size != b["byteLength"]:
                    return f"its buffer {b['uri']} is cut short"
        except (ValueError, KeyError, OSError) as e:
            return f"not a whole glTF file ({e})"
        return None
    if fmt == "fbx":
        if data[:21] != b"Kaydara FBX Binary  \x00":
            return "not a binary FBX file"
        return None if data.endswith(_FBX_FOOTER) else "the FBX is cut short"
    if fmt == "png":
        whole = data[:8] == b"\x89PNG\r\n\x1a\n" and data.endswith(b"IEND\xaeB`\x82")
        return None if whole else "the PNG is cut short"
    if fmt == "obj":
        text = data.decode("utf-8", "replace")
        if not text.endswith("\n"):
            return "the OBJ is cut short"
        faces = sum(1 for line in text.splitlines() if line.startswith("f "))
        if polygons is not None and faces != polygons:
            return f"the OBJ has {faces} of {polygons} faces"
        return None if faces else "the OBJ has no faces"
    return None


def _check_whole(fmt: str, written: Path, final: Path, polygons: int | None = None) -> None:
    """Raise OSError naming ``final`` unless ``written`` is a whole ``fmt`` file: Blender's
    exporters can report success on a file they could not finish (a full disk)."""
    why = _why_incomplete(fmt, written, polygons)
    if why:
        raise OSError(f"{final}: the {fmt} export did not complete ({why}); nothing was kept")


def _export_fbx(path: Path) -> Path:
    """FBX is written under its final name: it records the embedded texture's path after its own,
    which must not be a temporary name. A file already there is set aside and put back if the
    export fails or is not whole; a killed export leaves a file that is not whole under the final
    name, which --skip-existing redoes (``is_complete``)."""
    previous = path.with_name(f".{path.name}.previous")
    if path.exists():
        os.replace(path, previous)
    try:
        bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, path_mode="COPY", embed_textures=True,
                                 use_mesh_modifiers=False)
        _check_whole("fbx", path, path)
    except BaseException:
        path.unlink(missing_ok=True)
        if previous.exists():
            os.replace(previous, path)
        raise
    previous.unlink(missing_ok=True)
    return path


def is_complete(fmt: str, path: str | Path, polygons: int | None = None) -> bool:
    """Whether ``path`` exists and is a whole ``fmt`` file (``--skip-existing`` keeps only those)."""
    path = Path(path)
    return path.is_file() and _why_incomplete(fmt, path, polygons) is None


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
    'blend' saves a copy of the whole file). Returns the path. Raises OSError naming ``path`` when
    the export fails or is not whole; nothing is then left under ``path``."""
    try:
        return _export(fmt, Path(path), objects)
    except RuntimeError as e:  # a Blender operator's error: "Error: No space left on device\n"
        text = str(e).strip().removeprefix("Error:").strip()
        raise OSError(f"{path}: the {fmt} export failed ({text.splitlines()[0] if text else 'no reason given'})") from None


def _export(fmt: str, path: Path, objects: list[bpy.types.Object] | None) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if fmt == "blend":
        try:
            bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True, compress=True)
            _check_whole(fmt, tmp, path)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
    objects = list(objects) if objects is not None else list(bpy.context.selected_objects)
    if not objects:
        raise ValueError("nothing to export: select the GLVD face")
    polygons = sum(len(o.data.polygons) for o in objects if o.type == "MESH")
    _select_only(objects)
    if fmt == "fbx":
        return _export_fbx(path)
    restore, pngs, done = [], [], False
    mtl_tmp, bin_tmp = tmp.with_suffix(".mtl"), tmp.with_suffix(".bin")
    try:
        if fmt in ("obj", "gltf"):  # texture files beside the export, referenced by name
            for img in _texture_images(objects):
                png = path.with_name(f"{path.stem}_{bpy.path.clean_name(img.name)}.png")
                restore.append((img, img.filepath_raw, img.file_format))
                img.filepath_raw = str(png)
                img.file_format = "PNG"
                pngs.append(png)
                img.save()
                _check_whole("png", png, png)
        if fmt == "obj":
            bpy.ops.wm.obj_export(filepath=str(tmp), export_selected_objects=True, export_materials=True,
                                  path_mode="STRIP", export_uv=True, export_normals=True,
                                  forward_axis="NEGATIVE_Z", up_axis="Y")
            _check_whole(fmt, tmp, path, polygons)
            if mtl_tmp.exists():  # the .obj names its .mtl: keep the pair consistent
                if mtl_tmp.stat().st_size == 0:
                    raise OSError(f"{path.with_suffix('.mtl')}: the material file is empty; nothing was kept")
                text = tmp.read_text().replace(mtl_tmp.name, path.with_suffix(".mtl").name)
                tmp.write_text(text)
                _check_whole(fmt, tmp, path, polygons)
                os.replace(mtl_tmp, path.with_suffix(".mtl"))
        elif fmt in ("glb", "gltf"):
            bpy.ops.export_scene.gltf(filepath=str(tmp), export_format="GLB" if fmt == "glb" else "GLTF_SEPARATE",
                                      use_selection=True, export_morph=True, export_texcoords=True,
                                      export_normals=True)
            if fmt == "gltf":
                _check_whole(fmt, tmp, path)
                if bin_tmp.exists():
                    text = tmp.read_text().replace(bin_tmp.name, path.with_suffix(".bin").name)
                    tmp.write_text(text)
                    os.replace(bin_tmp, path.with_suffix(".bin"))
            _check_whole(fmt, tmp, path)
        os.replace(tmp, path)
        done = True
    finally:
        for img, fp, ff in restore:
            img.filepath_raw, img.file_format = fp, ff
        for f in [tmp, mtl_tmp, bin_tmp] + ([] if done else pngs):  # a failed export leaves nothing behind
            f.unlink(missing_ok=True)
    return path

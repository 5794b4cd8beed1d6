"""Install an extension zip into a fresh Blender profile and reconstruct a photo with it, as an
artist's first run: no Python environment set, nothing but Blender (here the ``bpy`` module of
a virtual environment that holds only bpy and what bpy pulls in).

    VENV/bin/python scripts/zip_smoke.py ZIP PHOTO OUT.json

Writes OUT.json: Blender's version, Python, numpy, the runtime line the panel shows, the face's
vertices (metres, Blender's frame) and what the scene holds. Exit 0 when the panel reconstructed.
Run by blender_tests/test_artist_zip.py in each supported Blender.
"""
import json
import os
import sys
import tempfile
from pathlib import Path


def main(zip_path: str, photo: str, out: str) -> int:
    profile = tempfile.mkdtemp(prefix="glvd-profile-")
    os.environ["BLENDER_USER_RESOURCES"] = profile  # a fresh profile: no preferences, no extensions
    import bpy
    import numpy as np

    res = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    if res != {"FINISHED"}:
        raise SystemExit(f"install failed: {res}")
    mod = sys.modules["bl_ext.user_default.glvd"]
    if mod.core.glvd_core().__name__ != "bl_ext.user_default.glvd.glvd_core":
        raise SystemExit(f"the add-on runs {mod.core.glvd_core().__name__}, not the zip's glvd_core")
    ok, line = mod.core.runtime_report()
    report = dict(blender=bpy.app.version_string, python=sys.version.split()[0], numpy=np.__version__,
                  runtime_ok=ok, runtime=line, profile=profile)
    s = bpy.context.scene.glvd
    p = s.photos.add()
    p.filepath = photo
    s.texture_size = "1024"
    report["reconstruct"] = sorted(bpy.ops.glvd.reconstruct())
    report["status"] = s.status
    face = bpy.data.objects.get("GLVD Face")
    if face is not None:
        v = np.empty(len(face.data.vertices) * 3)
        face.data.vertices.foreach_get("co", v)
        report["vertices_m"] = (np.array(face.matrix_world)[:3, :3] @ v.reshape(-1, 3).T
                                + np.array(face.matrix_world)[:3, 3:]).T.tolist()
        report["shape_keys"] = len(face.data.shape_keys.key_blocks) if face.data.shape_keys else 0
        report["texture"] = [im.name for im in bpy.data.images if im.name.startswith("GLVD")]
        report["cameras"] = sorted(o.name for o in bpy.data.objects if o.type == "CAMERA")
    Path(out).write_text(json.dumps(report))
    return 0 if report["reconstruct"] == ["FINISHED"] and face is not None else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    sys.exit(main(*sys.argv[1:]))

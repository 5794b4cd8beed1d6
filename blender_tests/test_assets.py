"""Beyond the mesh: photo texture, ARKit shape keys, neutral option and exports — what an
artist uses the same afternoon."""
from pathlib import Path

import bpy
import numpy as np
import pytest

from glvd_core.expression import ARKIT_NAMES


def reconstruct(synthetic_photo, **settings):
    from glvd_blender import ops

    s = bpy.context.scene.glvd
    s.model_path = ""  # the bundled model: a plausible face, as artists get
    s.photos.add().filepath = str(synthetic_photo.path / "view_00.png")
    s.texture_size = "1024"
    for k, v in settings.items():
        setattr(s, k, v)
    job = ops.gather(bpy.context)
    job.run()
    assert job.error is None, job.error
    out = ops.write(bpy.context, job)
    return job, out["face"]


def test_texture_pixels_match_the_photo_where_the_face_is_seen(addon, synthetic_photo):
    from glvd_core import load_template
    from glvd_core.texture.bake import uv_to_texel

    job, face = reconstruct(synthetic_photo)
    img = face.data.materials[0].node_tree.nodes["Image Texture"].image
    assert img.packed_file is not None and tuple(img.size) == (1024, 1024)
    px = np.empty(1024 * 1024 * 4, np.float32)
    img.pixels.foreach_get(px)
    tex = (px.reshape(1024, 1024, 4)[::-1, :, :3] * 255)  # Blender rows run bottom-up
    np.testing.assert_allclose(tex, job.result.texture.image, atol=0.51)  # exactly what glvd_core baked
    # at vertices the photo's camera sees face-on, the texel has the photo's colour there
    tpl = load_template()
    r = job.result.reconstruction
    cam = r.cameras[0]
    V = r.final_vertices
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "tests"))
    from test_texture import visible_frontal_vertices

    vis, xy = visible_frontal_vertices(V, cam, tpl, min_cos=0.5)
    assert vis.sum() > 1000
    t = np.rint(uv_to_texel(tpl.uvs[vis], 1024)).astype(int)
    photo = job.inputs.images[0].astype(np.float32)
    xi, yi = np.rint(xy[vis]).astype(int).T
    err = np.abs(tex[t[:, 1], t[:, 0]] - photo[yi, xi]).max(1)
    assert np.median(err) < 6 and np.percentile(err, 90) < 25, (np.median(err), np.percentile(err, 90))


def test_arkit_keys_drive_the_face(addon, synthetic_photo):
    from glvd_blender import scene_writer

    job, face = reconstruct(synthetic_photo, keyframe_descent=False, bake_texture=False)
    kb = face.data.shape_keys.key_blocks
    assert [k.name for k in kb] == ["Basis"] + list(ARKIT_NAMES)
    basis = np.array([v.co for v in kb["Basis"].data], np.float32)
    np.testing.assert_array_equal(scene_writer.evaluated_coordinates(face), basis)  # all 52 at 0: the face
    from glvd_core import load_template

    chin = load_template().landmarks68[8]
    kb["jawOpen"].value = 1.0
    moved = scene_writer.evaluated_coordinates(face) - basis
    drop_mm = -moved[chin, 2] * 1e3  # Blender Z is up; the photo's head is roughly upright
    assert 10 < drop_mm < 60, drop_mm
    kb["jawOpen"].value = 0.0
    kb["mouthSmileLeft"].value = kb["mouthSmileRight"].value = 1.0
    assert np.abs(scene_writer.evaluated_coordinates(face) - basis).max() > 0.003


def test_neutral_rest_shape_follows_the_descent(addon, synthetic_photo):
    from glvd_blender import scene_writer

    job, face = reconstruct(synthetic_photo, neutral=True, bake_texture=False, frames_per_step=2)
    T = job.result.reconstruction.iterations
    scene = bpy.context.scene
    basis = np.array([v.co for v in face.data.shape_keys.key_blocks["Basis"].data], np.float32)
    M = scene_writer.camera_frame_to_blender(job.result.reconstruction.final_vertices)
    scene.frame_set(scene.frame_start + 2 * T)  # the descent's last step, expression included
    np.testing.assert_array_equal(scene_writer.evaluated_coordinates(face),
                                  scene_writer.local_coordinates(face, M, job.result.reconstruction.final_vertices))
    scene.frame_set(scene.frame_start + 2 * (T + 1))  # then the neutral rest shape
    np.testing.assert_array_equal(scene_writer.evaluated_coordinates(face), basis)
    assert face["glvd"]["neutral"] and np.abs(basis - scene_writer.local_coordinates(
        face, M, job.result.final_vertices_m)).max() < 1e-6


@pytest.mark.parametrize("fmt", ["glb", "fbx", "obj"])
def test_exports_reimport_with_the_same_mesh(addon, synthetic_photo, tmp_path, fmt):
    from glvd_blender import exporters

    reconstruct(synthetic_photo)
    assert bpy.ops.glvd.export_face.poll()
    path = tmp_path / f"face.{fmt}"
    bpy.context.scene.glvd.export_format = fmt
    assert bpy.ops.glvd.export_face(filepath=str(path)) == {"FINISHED"}
    assert path.stat().st_size > 10_000 and not list(tmp_path.glob(".*tmp*"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    {"glb": lambda: bpy.ops.import_scene.gltf(filepath=str(path)),
     "fbx": lambda: bpy.ops.import_scene.fbx(filepath=str(path)),
     "obj": lambda: bpy.ops.wm.obj_import(filepath=str(path))}[fmt]()
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    assert len(meshes) == 1 and len(meshes[0].data.vertices) == 7225
    if fmt in ("glb", "fbx"):  # shape keys travel (glTF morph targets / FBX blend shapes)
        names = {k.name for k in meshes[0].data.shape_keys.key_blocks}
        assert set(ARKIT_NAMES) <= names
    mats = meshes[0].data.materials
    assert mats and any(n.type == "TEX_IMAGE" and n.image for n in mats[0].node_tree.nodes)
    if fmt == "obj":
        assert "map_Kd face_" in (tmp_path / "face.mtl").read_text()
    assert set(exporters.FORMATS) >= {"glb", "fbx", "obj", "gltf", "blend"}


def test_an_export_cut_short_is_refused_and_leaves_nothing(addon, synthetic_photo, tmp_path, monkeypatch):
    """Blender's exporters can report success on a file a full disk cut short: the export checks
    the file, raises, and leaves no file under the final name; --skip-existing redoes such inputs."""
    from glvd_blender import exporters

    job, face = reconstruct(synthetic_photo, keyframe_descent=False, bake_texture=False)
    good = {f: exporters.export(f, tmp_path / f"good.{f}", [face]) for f in ("blend", "glb", "obj", "fbx")}
    assert all(exporters.is_complete(f, p, 14342 if f == "obj" else None) for f, p in good.items())
    for f, p in good.items():  # a truncated copy of each is not complete
        cut = tmp_path / f"cut.{f}"
        cut.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3])
        assert not exporters.is_complete(f, cut), f
    real_wm = bpy.ops.wm

    class FullDiskWM:  # the OBJ exporter "succeeds" but a third of the file made it to disk
        def __getattr__(self, name):
            return getattr(real_wm, name)

        def obj_export(self, **kw):
            real_wm.obj_export(**kw)
            path = Path(kw["filepath"])
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
            return {"FINISHED"}

    monkeypatch.setattr(bpy.ops, "wm", FullDiskWM(), raising=False)
    with pytest.raises(OSError, match="did not complete"):
        exporters.export("obj", tmp_path / "full_disk.obj", [face])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("full_disk", ".full_disk"))]

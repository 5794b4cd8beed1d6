"""Runs on every supported Blender (5.0 in the main suite; 4.2 LTS and 5.3 via scripts/smoke_blenders.sh):
registration, the scene writer — shape keys, keyframes (classic or slotted actions),
empties, cameras — and the panel's draw calls (checked against this Blender's UILayout), without
torch."""
from types import SimpleNamespace

import bpy
import numpy as np


def fake_result(T=4):
    from glvd_core import load_template
    from glvd_core.cameras import Camera

    t = load_template()
    rng = np.random.default_rng(0)
    base = t.vertices_m @ np.diag([1.0, -1.0, -1.0]).T + [0, 0, 0.6]
    V = np.stack([base + rng.normal(0, 0.002, base.shape) * (T - s) for s in range(T + 1)]).astype(np.float32)
    K = np.stack([V[s][t.keypoint_indices(18)] for s in range(T + 1)])
    cam = Camera.from_fov(320, 240, 40)
    return SimpleNamespace(vertices=V, keypoints=K, faces=t.faces, uvs=t.uvs, keypoint_indices=t.keypoint_indices(18),
                           cameras=[cam], frame="camera", info={"model": "fake", "seed": 0},
                           final_vertices=V[-1])


def test_register_and_write_scene_on_this_blender():
    import glvd_blender
    from glvd_blender import scene_writer

    bpy.ops.wm.read_factory_settings(use_empty=True)
    glvd_blender.register()
    try:
        r = fake_result()
        M = scene_writer.camera_frame_to_blender(r.final_vertices)
        scene = bpy.context.scene
        out = scene_writer.write_reconstruction(scene, r, [], M, frames_per_step=2)
        face = out["face"]
        assert (len(face.data.vertices), len(face.data.polygons)) == (7225, 14342)
        for s in range(5):
            scene.frame_set(scene.frame_start + 2 * s)
            np.testing.assert_array_equal(scene_writer.evaluated_coordinates(face),
                                          scene_writer.local_coordinates(face, M, r.vertices[s]))
        empties = [o for o in bpy.data.objects if o.type == "EMPTY"]
        assert len(empties) == 18 and all(e.animation_data and e.animation_data.action for e in empties)
        assert len([o for o in bpy.data.objects if o.type == "CAMERA"]) == 1
        # the panel, with a photo and the new face active, draws with this Blender's UI API
        from ui_recorder import draw

        scene.glvd.photos.add().filepath = "/photos/front.png"
        bpy.context.view_layer.objects.active = face
        lay = draw(bpy.types.GLVD_PT_main, bpy.context)
        assert lay.find("operator", operator="glvd.reconstruct") and lay.find("operator", operator="glvd.export_face")
        assert lay.find("template_list") and lay.find("prop", property="mask")
    finally:
        glvd_blender.unregister()
    print("blender", bpy.app.version_string)

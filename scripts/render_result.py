"""Render a reconstruction with Cycles through its photo camera, composited over the photo.

    python scripts/render_result.py PHOTO OUT.png [--samples 16]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import cycles_with_sun, reconstruct_photo_in_scene, script_args, use_checkout  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("photo")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=16)
    a = ap.parse_args(argv)
    use_checkout()
    import bpy
    import numpy as np

    import glvd_blender

    face = reconstruct_photo_in_scene(a.photo, bake_texture=False)  # an untextured skin overlay
    try:
        sc = bpy.context.scene
        sc.camera = bpy.data.objects["GLVD Camera 0"]
        cycles_with_sun(sc, a.samples).data.energy = 3.0
        mat = bpy.data.materials.new("skin")
        mat.use_nodes = True
        mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.8, 0.6, 0.5, 1)
        face.data.materials.append(mat)
        tmp = Path(a.out).with_suffix(".render.png")
        sc.render.filepath = str(tmp)
        bpy.ops.render.render(write_still=True)
        import cv2

        photo = cv2.imread(a.photo)
        rnd = cv2.imread(str(tmp), cv2.IMREAD_UNCHANGED)
        alpha = rnd[..., 3:4].astype(np.float32) / 255 * 0.85
        comp = (photo * (1 - alpha) + rnd[..., :3] * alpha).astype(np.uint8)
        cv2.imwrite(a.out, np.concatenate([photo, comp], 1))
        tmp.unlink()
        print(f"wrote {a.out}")
    finally:
        glvd_blender.unregister()


if __name__ == "__main__":
    main(script_args())

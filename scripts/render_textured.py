"""Before/after figure: the photo, its textured reconstruction from the photo's camera and from
45° to the side, and the same head with ARKit jawOpen and mouthSmile at 1 (Cycles, CPU).

    python scripts/render_textured.py PHOTO OUT.png [--samples 16] [--scale 200] [--texture 2048]
    blender -b --python scripts/render_textured.py -- PHOTO OUT.png
"""
import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import cycles_with_sun, reconstruct_photo_in_scene, script_args, use_checkout  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photo")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--scale", type=int, default=200, help="render resolution, percent of the photo's")
    ap.add_argument("--texture", default="2048", choices=["1024", "2048", "4096"])
    a = ap.parse_args(argv)
    use_checkout()
    import bpy
    import cv2
    import numpy as np
    from mathutils import Matrix

    import glvd_blender

    face = reconstruct_photo_in_scene(a.photo, texture_size=a.texture, add_keypoints=False, keyframe_descent=False)
    try:
        sc = bpy.context.scene
        cam0 = bpy.data.objects["GLVD Camera 0"]
        side = bpy.data.objects.new("side", cam0.data.copy())
        sc.collection.objects.link(side)
        pivot = Matrix.Translation(face.location)
        side.matrix_world = pivot @ Matrix.Rotation(math.radians(45), 4, "Z") @ pivot.inverted() @ cam0.matrix_world
        cycles_with_sun(sc, a.samples).data.energy = 2.5
        w, h = sc.render.resolution_x, sc.render.resolution_y
        sc.render.resolution_percentage = a.scale
        world = bpy.data.worlds.new("ambient")
        world.color = (0.35, 0.35, 0.35)
        sc.world = world
        tmp = Path(a.out).with_suffix(".render.png")

        def render(cam, keys=()):
            kb = face.data.shape_keys.key_blocks
            for k in kb[1:]:
                k.value = 0.0
            for k in keys:
                kb[k].value = 1.0
            sc.camera = cam
            sc.render.filepath = str(tmp)
            bpy.ops.render.render(write_still=True)
            rnd = cv2.imread(str(tmp), cv2.IMREAD_UNCHANGED).astype(np.float32)
            alpha = rnd[..., 3:4] / 255
            return (rnd[..., :3] * alpha + 235 * (1 - alpha)).astype(np.uint8), alpha[..., 0]

        shots = [render(cam0), render(side), render(cam0, ["jawOpen"]),
                 render(cam0, ["mouthSmileLeft", "mouthSmileRight"])]
        ph, pw = shots[0][0].shape[:2]
        photo = cv2.resize(cv2.imread(a.photo), (pw, ph), interpolation=cv2.INTER_AREA)
        ys, xs = np.nonzero(sum(al for _, al in shots) > 0.1)  # a square around the head, same for all
        cx, cy, half = (xs.min() + xs.max()) // 2, (ys.min() + ys.max()) // 2, int(0.6 * max(np.ptp(xs), np.ptp(ys)))
        x0, y0 = max(0, cx - half), max(0, cy - half)
        x1, y1 = min(pw, cx + half), min(ph, cy + half)
        panels = [cv2.resize(im[y0:y1, x0:x1], (320, 320), interpolation=cv2.INTER_AREA) for im, _ in shots]
        photo = cv2.resize(photo[y0:y1, x0:x1], (320, 320), interpolation=cv2.INTER_AREA)
        labels = ["photo", "textured (photo camera)", "45 deg to the side", "jawOpen = 1", "mouthSmile L+R = 1"]
        row = []
        for img, lab in zip([photo] + panels, labels):
            img = img.copy()
            cv2.putText(img, lab, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, lab, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
            row.append(img)
        cv2.imwrite(a.out, np.concatenate(row, 1))
        tmp.unlink()
        print(f"wrote {a.out} ({w}x{h} photo)")
    finally:
        glvd_blender.unregister()


if __name__ == "__main__":
    main(script_args())

"""What an artist waits for in Blender: one photo, the panel's default options (2K photo texture,
ARKit keys, keyframed steps, camera), from the click to the finished scene.

    python scripts/bench_blender.py [--photo PATH ...] [--runs 5] [--json out.json]     (with the bpy module)
    blender -b --python scripts/bench_blender.py -- [--photo PATH ...] [--runs 5]

Four numbers: ``first_click_s``, the click made right after the photo is added (the model is
still loading in the background, as when an artist clicks at once); ``model_preload_s``, the
background load that adding a photo starts; ``click_to_result_s``, the median of ``--runs``
further clicks with the model loaded; ``refit_s``, the median of ``--runs`` refits, each after
moving one more keypoint empty 5 mm. Each click runs the operator's own path (gather the
photos, run the pipeline, write the scene) synchronously, as ``-b`` does.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import ROOT, script_args, use_checkout  # noqa: E402


def click(bpy, ops) -> tuple[float, dict]:
    """(seconds from click to finished scene, seconds per stage)."""
    t0 = time.perf_counter()
    job = ops.gather(bpy.context)
    t1 = time.perf_counter()
    job.run()
    if job.error:
        raise RuntimeError(job.error)
    t2 = time.perf_counter()
    ops.write(bpy.context, job)
    t3 = time.perf_counter()
    stages = {"read photos": t1 - t0, **{k: v for k, v in job.result.timings.items() if k != "total"},
              "model wait": (t2 - t1) - job.result.timings["total"], "write scene": t3 - t2}
    return t3 - t0, {k: round(v, 3) for k, v in stages.items()}


def main(argv) -> int:
    ap = argparse.ArgumentParser(prog="bench_blender.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", nargs="+", default=[str(ROOT / "docs" / "examples" / "astronaut.png")],
                    help="one photo, or several of one person (a multi-view reconstruction)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="glvd-bench-"))
    use_checkout()
    t0 = time.perf_counter()
    import bpy

    import glvd_blender
    from glvd_blender import ops

    bpy.ops.wm.read_factory_settings(use_empty=True)
    glvd_blender.register()
    register = time.perf_counter() - t0
    try:
        s = bpy.context.scene.glvd
        for photo in a.photo:
            s.photos.add().filepath = str(Path(photo).resolve())
        t_add = time.perf_counter()
        loading = ops.preload(s.model_path, s.device)  # what the Add Photos operator starts
        first, first_stages = click(bpy, ops)
        if loading is not None:
            loading.join()
        preload = time.perf_counter() - t_add
        runs = [click(bpy, ops) for _ in range(a.runs)]
        refits = []
        for i in range(a.runs):  # move one keypoint 5 mm and press Refit (photos prepared and cached)
            face = bpy.context.view_layer.objects.active
            e = ops.keypoint_empties(face)[(3 * i) % 18]
            e.location = (e.location[0], e.location[1], e.location[2] + 0.005)
            bpy.context.view_layer.update()
            t = time.perf_counter()
            if bpy.ops.glvd.refit() != {"FINISHED"}:
                raise RuntimeError(s.status)
            refits.append(time.perf_counter() - t)
    finally:
        glvd_blender.unregister()
    report = dict(command=" ".join(["scripts/bench_blender.py", *argv]), blender=bpy.app.version_string,
                  photos=[Path(p).name for p in a.photo], options="panel defaults (2K texture, ARKit keys, keyframed steps, camera)",
                  import_and_register_s=round(register, 3), first_click_s=round(first, 3), first_click_stages=first_stages,
                  model_preload_s=round(preload, 3),
                  click_to_result_s=round(sorted(t for t, _ in runs)[len(runs) // 2], 3),
                  click_to_result_all_s=[round(t, 3) for t, _ in runs],
                  refit_s=round(sorted(refits)[len(refits) // 2], 3), refit_all_s=[round(t, 3) for t in refits],
                  stages_median_s={k: round(float(sorted(st[k] for _, st in runs)[len(runs) // 2]), 3) for k in runs[0][1]})
    text = json.dumps(report, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(script_args()))

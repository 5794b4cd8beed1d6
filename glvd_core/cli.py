"""Command line: ``python -m glvd_core <command> ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .fitting import FitOptions


def _make_data(a) -> int:
    from .data import make_dataset

    make_dataset(a.out, a.scenes, a.views, a.seed, a.size, workers=a.workers, ict_path=a.ict, p_plain=a.plain,
                 p_closed_eyes=a.closed_eyes)
    return 0


def _contact_sheet(a) -> int:
    import cv2
    import numpy as np

    from .data import GLVDDataset

    ds = GLVDDataset(a.data)
    n = min(a.count, len(ds))
    tiles = [ds[i].images[0] for i in range(n)]
    cols = int(np.ceil(np.sqrt(n)))
    s = tiles[0].shape[0]
    sheet = np.zeros((int(np.ceil(n / cols)) * s, cols * s, 3), np.uint8)
    for i, t in enumerate(tiles):
        sheet[(i // cols) * s:(i // cols + 1) * s, (i % cols) * s:(i % cols + 1) * s] = t
    cv2.imwrite(a.out, sheet[..., ::-1])
    print(f"wrote {a.out}")
    return 0


def _demo(a) -> int:
    """The main job on the bundled default: photos in, meshes out (+ a synthetic check when the
    ICT data is present)."""
    from pathlib import Path

    from .demo import demo_reconstruct

    return demo_reconstruct(Path(a.out), seed=a.seed)


def parse_overrides(items: Iterable[str]) -> dict:
    """``FIELD=VALUE`` strings -> typed flat config overrides (bools: true/false/1/0/yes/no);
    the values are checked when the config is made."""
    from .model.config import GLVDConfig

    out = {}
    for kv in items:
        k, eq, v = kv.partition("=")
        try:
            if not eq:
                raise ValueError
            kind = GLVDConfig.field_type(k)
        except ValueError:
            raise ValueError(f"--set {kv!r}: expected FIELD=VALUE with FIELD a config field") from None
        if kind is bool:
            if v.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"--set {kv!r}: {k} takes true or false")
            out[k] = v.lower() in ("true", "1", "yes")
        else:
            out[k] = kind(v)
    return out


def _train(a) -> int:
    from .model.config import get_config
    from .train.trainer import Trainer, TrainOptions

    cfg = get_config(a.config, **parse_overrides(a.set or []))
    opts = TrainOptions(ckpt_every=a.ckpt_every, max_scenes=a.max_scenes, device=a.device, threads=a.threads,
                        stop_after=a.stop_after, progress=not a.quiet, init=a.init, amp=a.amp,
                        time_limit_s=a.time_limit * 60, loader_threads=a.loader_threads)
    trainer = Trainer(cfg, a.data, a.out, opts, resume=a.resume)
    path = trainer.run()
    if trainer.stopped_early:
        print(f"\nstopped at {trainer.stage} step {trainer.step}; checkpoint {path} "
              f"(continue with the same command and --resume)")
    else:
        print(f"\n{path}")
    return 0


def add_fit_arguments(p: argparse.ArgumentParser, default: bool = False) -> None:
    """--fit/--no-fit, --fit-iterations and --fit-expression (reconstruct, evaluate, bench; batch.py has its own)."""
    from .fitting import FitOptions

    p.add_argument("--fit", action=argparse.BooleanOptionalAction, default=default,
                   help="fit the result to the photos' evidence after the descent: MediaPipe's points and the "
                        f"masks' outlines (default: {'on' if default else 'off'}; docs/RESULTS.md)")
    p.add_argument("--fit-iterations", type=int, default=FitOptions.iterations, metavar="N",
                   help=f"iterations of the fit, each kept as a step (default {FitOptions.iterations})")
    p.add_argument("--fit-expression", action="store_true",
                   help="the fit also reads the photo's expression (smile, open jaw) into the mesh; --neutral "
                        "removes it from the rest shape (default: off; docs/RESULTS.md)")


def fit_options(a: argparse.Namespace) -> FitOptions | None:
    """The FitOptions --fit/--fit-iterations/--fit-expression ask for (None: --no-fit)."""
    from .fitting import FitOptions

    return FitOptions(iterations=a.fit_iterations, expression=a.fit_expression) if a.fit else None


def _reconstruct(a) -> int:
    import json
    from pathlib import Path

    from .cameras import load_cameras
    from .io import check_output_paths, write_together
    from .pipeline import PipelineOptions, attach_pins, load_inputs, run
    from .reconstruct import ReconstructOptions, Reconstructor

    # every option and output path is checked before the work, so a typo costs no reconstruction
    from .reconstruct import check_keypoint_indices, load_held_keypoints

    held = load_held_keypoints(a.keypoints) if a.keypoints else None
    options = PipelineOptions(ReconstructOptions(iterations=a.iterations, clip=a.clip, seed=a.seed, detect=not a.no_detect,
                                                 keypoints=held),
                              fit=fit_options(a), texture_size=a.texture, neutral=a.neutral)
    out = Path(a.output)
    outputs = [out] + ([out.with_suffix(".mtl"), out.with_suffix(".png")] if a.texture else [])
    check_output_paths(outputs + [Path(p) for p in (a.trajectory, a.json) if p])
    inputs = load_inputs(a.images, a.masks or None, fov_deg=a.fov)
    if a.cameras:
        cams, _ = load_cameras(a.cameras)
        if len(cams) != len(inputs.images):
            raise ValueError(f"{a.cameras}: {len(cams)} views for {len(inputs.images)} images")
        for path, scale in zip(inputs.paths, inputs.scales):
            if scale != 1:
                raise ValueError(f"{path}: photos with cameras.json must be at most 2048 px (cameras are in their pixels)")
        inputs.cameras = cams
    if a.pins:
        attach_pins(inputs, a.pins)
    rec = Reconstructor.from_pretrained(a.weights, device=a.device, runtime=a.runtime)
    if held:  # the indices against this model's keypoints, naming the file
        check_keypoint_indices(held, rec.cfg.arch.num_keypoints, where=a.keypoints)
    res = run(rec, inputs, options)
    r = res.reconstruction
    for n in res.notes:
        print(f"note: {n}")
    if a.neutral:
        top = sorted(res.expression.items(), key=lambda kv: -kv[1])[:3]
        removed = ", ".join(f"{k} {v:.2f}" for k, v in top if v > 0.05)
        print(f"neutral: removed {removed}" if removed else "neutral: no expression found")
    header = f"GLVD reconstruction, metres, frame {r.frame}"
    if res.texture is not None:
        from .texture.bake import textured_obj_files

        tex = res.texture
        files = textured_obj_files(out, res.final_vertices_m, rec.template, tex, header=header)
        print(f"texture {a.texture}px: {100 * tex.stats['seen']:.0f}% seen, {100 * tex.stats['mirrored']:.0f}% mirrored, "
              f"{100 * tex.stats['filled']:.0f}% filled -> {out.with_suffix('.png')}")
    else:
        files = {out: r.obj_bytes(vertices=res.final_vertices_m)}
    if res.fit is not None and len(res.fit.steps):
        print(f"fit to photos: {len(res.fit.steps)} iterations, {res.fit.seconds:.2f} s")
        for i, errs in enumerate(res.fit.pin_errors_px):
            if errs:
                print(f"pins on photo {i + 1}: " + ", ".join(f"{e:.1f}" for e in errs) + " px from their pixels")
    if a.trajectory:
        files[Path(a.trajectory)] = r.trajectory_bytes(fit_vertices=None if res.fit is None else res.fit.steps)
    if a.json:
        files[Path(a.json)] = json.dumps(r.summary(), indent=1).encode()
    write_together(files)  # the whole result set, or none of it
    print(f"wrote {Path(a.output)}: {r.vertices.shape[1]} vertices, {len(r.faces)} triangles, frame {r.frame}, "
          f"{r.timings['total']:.2f} s on {rec.device} ({rec.runtime})")
    return 0


def _evaluate(a) -> int:
    from .evaluate import evaluate, format_table, save_json
    from .reconstruct import Reconstructor

    overrides = parse_overrides(a.set or [])
    models = {"GLVD": Reconstructor.from_pretrained(a.weights, device=a.device, overrides=overrides,
                                                    identity_cnn=a.identity_cnn)}
    if a.lvd_weights:
        models["LVD (no keypoints)"] = Reconstructor.from_pretrained(a.lvd_weights, device=a.device)
    fit = fit_options(a)
    res = evaluate(a.data, models, views=a.views, max_scenes=a.max_scenes, heatmap=a.heatmap,
                   oracle_landmarks=a.oracle_landmarks, per_step=a.per_step,
                   fits=None if fit is None else {"GLVD + fit to photos": fit})
    print(format_table(res))
    if a.json:
        save_json(a.json, dict(data=str(a.data), command=" ".join(sys.argv), **res))
    return 0


def _evaluate_likeness(a) -> int:
    from .evaluate import save_json
    from .likeness import evaluate_likeness, format_likeness, people_photos
    from .reconstruct import Reconstructor

    people_photos(a.photos)  # a bad folder fails before the model loads
    result = evaluate_likeness(a.photos, Reconstructor.from_pretrained(a.weights, device=a.device))
    print(format_likeness(result))
    if a.json:
        save_json(a.json, result)
    return 0


def _compare(a) -> int:
    import json
    from pathlib import Path

    from .evaluate import compare_runs

    try:
        diffs = compare_runs(*(json.loads(Path(f).read_text()) for f in (a.new, a.old)))
    except ValueError as e:  # also a file that is not JSON
        raise ValueError(f"{a.new} vs {a.old}: {e}") from None
    print(f"{a.new} against {a.old} (aligned mm; positive: the first is lower)")
    for name, p in diffs.items():
        lo, hi = p["ci95_mm"]
        print(f"{name:<22}{p['mean_mm']:+8.3f}  95% interval {lo:+.3f} to {hi:+.3f}  "
              f"lower in {p['better']} of {p['scenes']} scenes")
    return 0


def _preprocess(a) -> int:
    import json

    import cv2
    import numpy as np

    from . import load_template
    from .io import atomic_write_bytes
    from .model.config import get_config
    from .preprocess import MediaPipeFaces, head_crop, head_mask, load_photo, solve_pnp

    cfg, tpl = get_config("paper"), load_template()
    ph = load_photo(a.image, fov_deg=a.fov)
    d = MediaPipeFaces.detect(ph.image, where=a.image)
    pose = solve_pnp(d.landmarks68, ph.camera, tpl)
    mask = head_mask(ph.image.shape[:2], ph.camera, pose, d.person_mask)
    x0, y0, side = head_crop(ph.camera, pose, cfg.arch.head_extent_m, cfg.arch.nominal_fill)
    if a.overlay:
        img = ph.image[..., ::-1].copy()
        cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, cs, -1, (255, 200, 0), 2)
        for x, y in d.landmarks68:
            cv2.circle(img, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1)
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + side), int(y0 + side)), (0, 0, 255), 1)
        cv2.imwrite(a.overlay, img)
    info = dict(image=a.image, size=[int(ph.image.shape[1]), int(ph.image.shape[0])], scale=ph.scale,
                camera=ph.camera.to_dict(), camera_source=ph.camera_source, faces_found=d.faces_found,
                landmarks68=np.round(d.landmarks68, 2).tolist(), crop=[x0, y0, side],
                yaw_pitch_roll_deg=pose.yaw_pitch_roll_deg(), pnp_rms_px=pose.rms_px, notes=d.notes)
    if a.json:
        atomic_write_bytes(a.json, json.dumps(info, indent=1).encode())
    print(f"{a.image}: face {d.size_px:.0f} px, pose yaw/pitch/roll {np.round(pose.yaw_pitch_roll_deg(), 1).tolist()} deg, "
          f"PnP RMS {pose.rms_px:.2f} px, camera: {ph.camera_source}")
    for n in d.notes:
        print(f"note: {n}")
    return 0


def _detect_landmarks(a) -> int:
    from .data.landmarks import cache_detected_landmarks

    cache_detected_landmarks(a.data)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m glvd_core", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make-data", help="generate a synthetic dataset (glvd-dataset/1)")
    p.add_argument("--out", required=True)
    p.add_argument("--scenes", type=int, required=True)
    p.add_argument("--views", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--plain", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of scenes rendered plain: one uniform albedo, no painted lips, brows, "
                        "irises, lashes or pores, like an untextured scan (default 0)")
    p.add_argument("--closed-eyes", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of the plain scenes with both eyes closed (default 0)")
    p.add_argument("--ict", default=None, help="ICT-FaceKit npz (default: GLVD_ICT_PATH or ../shared)")
    p.set_defaults(func=_make_data)
    p = sub.add_parser("train", help="train a GLVD model (stages: sdf, kp, vertex; resumable)")
    p.add_argument("--config", default="lite", help="paper | lite | tiny")
    p.add_argument("--data", required=True, nargs="+", help="dataset directories (glvd-dataset/1)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--set", nargs="*", metavar="FIELD=VALUE", help="override config fields (e.g. encoding=none)")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="start a new run from these weights (a model.pt or checkpoint of the same architecture)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                   help="bf16 autocast: auto = on CUDA only; bf16 = also on CPU; off")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--time-limit", type=float, default=0, metavar="MINUTES",
                   help="save a checkpoint and stop after this many minutes (continue with --resume)")
    p.add_argument("--loader-threads", type=int, default=-1,
                   help="threads assembling batches ahead of the device (-1: 6 on CUDA, 0 on CPU)")
    p.add_argument("--max-scenes", type=int, default=0)
    p.add_argument("--stop-after", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_train)
    p = sub.add_parser("train-identity", add_help=False,
                       help="train the identity CNN of the image prior: 'prepare' here, then 'train' (CUDA when present)")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: __import__("glvd_core.train.identity", fromlist=["main"]).main(a.args) or 0)
    p = sub.add_parser("reconstruct", help="reconstruct a face mesh (OBJ) from photos")
    p.add_argument("images", nargs="+")
    p.add_argument("--output", required=True, help="OBJ path (metres)")
    p.add_argument("--masks", nargs="*")
    p.add_argument("--cameras", help="cameras.json (OpenCV convention); output then in its world frame")
    p.add_argument("--fov", type=float, default=None,
                   help="field of view (deg, longer side) of uncalibrated photos; default: EXIF focal length, else 40")
    p.add_argument("--iterations", type=int, default=None, help="descent steps (default: the model's)")
    p.add_argument("--clip", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "numpy"],
                   help="run the networks with torch or with numpy alone (CPU; what Blender runs without torch); "
                        "auto: torch when it is installed. Both give the same mesh")
    p.add_argument("--weights", default=None, help="model file (default: the bundled model)")
    p.add_argument("--trajectory", help="write every step to this .npz")
    p.add_argument("--json", help="write a summary (cameras, timings) to this .json")
    p.add_argument("--no-detect", action="store_true", help="skip face detection (use the whole photo, no heatmaps)")
    p.add_argument("--texture", type=int, default=0, metavar="SIZE",
                   help="bake the photos into a SIZE x SIZE texture: writes OUT.png and OUT.mtl beside the OBJ")
    p.add_argument("--neutral", action="store_true", help="remove the estimated expression from the written mesh")
    add_fit_arguments(p)
    p.add_argument("--keypoints", default=None, metavar="KEYPOINTS_JSON",
                   help='keypoints held where you put them through the descent: {"keypoints": {"INDEX": [x, y, z]}}, '
                        "metres in the output frame (e.g. a previous run's, moved)")
    p.add_argument("--pins", default=None, metavar="PINS_JSON",
                   help="pins: points of the face that belong at given pixels of the photos (schema: "
                        "glvd_core/fitting/pins.py); they turn the fit on")
    p.set_defaults(func=_reconstruct)
    p = sub.add_parser("evaluate", help="Chamfer table on a dataset: GLVD, LVD ablation, mean template, 3DMM fit")
    p.add_argument("--data", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--lvd-weights", default=None, help="a model trained with --set encoding=none")
    p.add_argument("--identity-cnn", default=None, metavar="PATH",
                   help="identity CNN weights for the image prior (default: the bundled ones), e.g. a new training run's")
    p.add_argument("--views", type=int, default=1, choices=[1, 3])
    p.add_argument("--max-scenes", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--heatmap", default=None, help="per-vertex error heatmap PNG")
    p.add_argument("--oracle-landmarks", action="store_true", help="projected GT landmarks instead of the detector")
    p.add_argument("--per-step", action="store_true", help="also report the aligned Chamfer after every step")
    add_fit_arguments(p, default=True)
    p.add_argument("--set", nargs="*", metavar="FIELD=VALUE",
                   help="inference settings of the GLVD model, e.g. iterations=8 keypoint_warmup=3 vertex_prior=keypoints")
    p.add_argument("--json", default=None)
    p.set_defaults(func=_evaluate)
    p = sub.add_parser("compare", help="paired difference of two evaluate --json results, scene by scene")
    p.add_argument("new", help="evaluate --json of the candidate")
    p.add_argument("old", help="evaluate --json of what it would replace (same data)")
    p.set_defaults(func=_compare)
    p = sub.add_parser("evaluate-likeness",
                       help="likeness on real photos (DIR/PERSON/*.jpg): identity spread, verification, cross-view fit")
    p.add_argument("--photos", required=True, help="a folder with one folder of photos per person")
    p.add_argument("--weights", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", default=None)
    p.set_defaults(func=_evaluate_likeness)
    p = sub.add_parser("preprocess", help="detect face, landmarks, head mask, crop and camera of a photo")
    p.add_argument("image")
    p.add_argument("--fov", type=float, default=None)
    p.add_argument("--overlay", help="write landmarks + mask outline + crop over the photo (PNG)")
    p.add_argument("--json", help="write the detection (landmarks, camera, crop, pose) as JSON")
    p.set_defaults(func=_preprocess)
    p = sub.add_parser("detect-landmarks", help="run the landmark detector on a dataset's renders and cache it")
    p.add_argument("--data", required=True)
    p.set_defaults(func=_detect_landmarks)
    p = sub.add_parser("bench", help="time preprocessing, encoders, descent steps and whole reconstructions")
    p.add_argument("--config", nargs="+", default=["default", "lite", "paper"],
                   help="default (the bundled trained model), or untrained presets: lite, paper, tiny")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--blender", action="store_true",
                   help="also time the artist's side with the bpy module: click to result in Blender "
                        "(scripts/bench_blender.py) and a batch of 12 photos to .blend + .glb (scripts/batch.py)")
    add_fit_arguments(p, default=True)
    p.set_defaults(func=lambda a: __import__("glvd_core.bench", fromlist=["main_bench"]).main_bench(a))
    p = sub.add_parser("demo", help="run the main job end to end on the bundled default")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--seed", type=int, default=123)
    p.set_defaults(func=_demo)
    p = sub.add_parser("contact-sheet", help="tile the first view of the first scenes of a dataset")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=16)
    p.set_defaults(func=_contact_sheet)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

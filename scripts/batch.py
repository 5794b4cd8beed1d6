"""Batch reconstruction into .blend files and exports.

    blender -b --python-exit-code 1 --python scripts/batch.py -- --input PATH [PATH ...] --output DIR
            [--formats blend,obj,glb] [--views-per-subject N] [--skip-existing] [--model PATH] [--device auto]
    python scripts/batch.py --input ... --output ...          (with the bpy module)

A PATH is a photo, or a folder: of photos (one reconstruction each) or, with
--views-per-subject N > 1, of one subject's N photos (one multi-view reconstruction). Per
input: NAME.blend with everything the panel's operator makes, and the requested exports.
``report.json`` (per input: status, message, seconds, outputs) is rewritten after every input.
Every file is written under a temporary name and renamed. A bad input is reported and
skipped; the exit code is 1 if any input failed, after all good ones are written.

Guides, as on the CLI (``--pins``, ``--keypoints``; schemas in glvd_core/fitting/pins.py and
glvd_core/reconstruct.py): ``NAME_pins.json`` / ``NAME_keypoints.json`` beside a photo NAME.ext,
or ``pins.json`` / ``keypoints.json`` in a subject's folder. Pins turn the fit on for that input.

The next input is read and prepared (decoding, face detection, masks) on a worker thread while
the current one descends and is written, so the device is not left waiting; at most two inputs
are in memory at once and the scene is reset between inputs, so memory stays flat over any
number of inputs (each report entry records the process's resident memory).
"""
import argparse
import gc
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import script_args, use_checkout  # noqa: E402

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}  # what load_photo reads


GUIDES = ("pins.json", "keypoints.json")  # an input's guides, beside it (docstring)


def guides_for(source):
    """(pins.json, keypoints.json) paths for one input, None where there is none: ``NAME_pins.json``
    and ``NAME_keypoints.json`` beside a photo, or ``pins.json`` and ``keypoints.json`` in a
    subject's folder (--views-per-subject)."""
    src = Path(source)
    if src.is_dir():
        found = [src / g for g in GUIDES]
    else:
        found = [src.with_name(f"{src.stem}_{g}") for g in GUIDES]
    return tuple(p if p.is_file() else None for p in found)


def collect(inputs, views_per_subject):
    """(name, photos, source) per reconstruction, and the files in the input folders that are not
    photos. Names are unique: inputs that share a stem (face.png, face.jpg; a/face.png, b/face.png)
    are told apart by their extension, then their folder, so no result overwrites another."""
    jobs, ignored = [], []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file())
            photos = [f for f in files if f.suffix.lower() in IMAGE_EXT and "_mask" not in f.stem]
            ignored += [f for f in files if f.suffix.lower() not in IMAGE_EXT and not f.name.endswith(GUIDES)]
            if views_per_subject > 1:
                jobs.append((p.name, photos[:views_per_subject], p))
            else:
                jobs += [(f.stem, [f], f) for f in photos]
        else:
            jobs.append((p.stem, [p], p))
    for rename in (lambda n, src: f"{n}_{src.suffix.lstrip('.').lower()}" if src.suffix else n,
                   lambda n, src: f"{src.resolve().parent.name}_{n}"):
        count = Counter(name for name, _, _ in jobs)
        jobs = [(rename(n, src) if count[n] > 1 else n, ph, src) for n, ph, src in jobs]
    count = Counter(name for name, _, _ in jobs)
    seen = Counter()
    for i, (n, ph, src) in enumerate(jobs):  # still equal (the same file twice): numbered
        if count[n] > 1:
            seen[n] += 1
            jobs[i] = (f"{n}_{seen[n]}", ph, src)
    return jobs, ignored


def memory_mb():
    """(current, peak) resident memory of this process in MB (None where the OS does not say).
    The peak is /proc's VmHWM where there is one: getrusage's ru_maxrss survives exec on Linux, so
    it would report the parent's peak for a batch started from a large process."""
    cur = peak = None
    try:
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        cur, peak = (int(status[k].split()[0]) / 1e3 for k in ("VmRSS", "VmHWM"))
    except (OSError, KeyError, ValueError):
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1e3 if sys.platform != "darwin" else 1e6)
        except ImportError:
            pass
    return cur, peak


def fail(message):
    """One line on stderr and exit status 2: a bad global option, before any input is touched."""
    print(f"batch.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    ap = argparse.ArgumentParser(prog="batch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", nargs="+", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--formats", default="blend,obj,glb", help="comma-separated: blend, glb, gltf, fbx, obj")
    ap.add_argument("--views-per-subject", type=int, default=1)
    ap.add_argument("--skip-existing", action="store_true")
    ap.add_argument("--model", default="")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: CUDA when PyTorch has it; cpu: the numpy runtime (same mesh, no PyTorch import)")
    ap.add_argument("--iterations", type=int, default=0, help="descent steps (0: the model's default)")
    ap.add_argument("--texture", type=int, default=2048, help="photo texture size (0: none)")
    ap.add_argument("--no-arkit", action="store_true", help="skip the 52 ARKit shape keys")
    ap.add_argument("--neutral", action="store_true", help="remove the estimated expression from the rest shape")
    ap.add_argument("--fit", action=argparse.BooleanOptionalAction, default=False,
                    help="fit each face to its photos' evidence after the descent (default: off; docs/RESULTS.md)")
    ap.add_argument("--fit-iterations", type=int, default=10, help="iterations of that fit (default 10)")
    ap.add_argument("--fit-expression", action="store_true",
                    help="the fit also reads each photo's expression into the mesh (--neutral removes it)")
    a = ap.parse_args(argv)
    formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    if not 0 <= a.iterations <= 100:
        ap.error(f"--iterations {a.iterations}: choose 0..100 (0: the model's default)")
    if a.texture not in (0, 1024, 2048, 4096):
        ap.error(f"--texture {a.texture}: choose 1024, 2048 or 4096 (or 0: none)")
    if not 1 <= a.fit_iterations <= 100:
        ap.error(f"--fit-iterations {a.fit_iterations}: choose 1..100")
    if a.views_per_subject < 1:
        ap.error(f"--views-per-subject {a.views_per_subject}: choose 1 or more")
    missing = [s for s in a.input if not Path(s).exists()]
    if missing:
        ap.error(f"--input {missing[0]}: no such file or folder")
    jobs, ignored = collect(a.input, a.views_per_subject)
    if not jobs:
        ap.error(f"no photos in {' '.join(a.input)} (looked for {', '.join(sorted(IMAGE_EXT))})")
    out = Path(a.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".glvd-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        fail(f"--output {out}: cannot write there ({e.strerror or e})")
    use_checkout()
    import bpy

    import glvd_blender
    from glvd_blender import core, exporters, ops

    pipeline, gio = core.import_core("pipeline"), core.import_core("io")

    ext = exporters.FORMATS
    bad = [f for f in formats if f not in ext]
    if bad:
        ap.error(f"unknown format(s): {', '.join(bad)} (choose from {', '.join(ext)})")
    if ignored:
        print(f"ignored {len(ignored)} file(s) that are not photos, e.g. {ignored[0].name}", flush=True)

    report = dict(command=sys.argv, formats=formats, results=[])
    glvd_blender.register()
    failed, report_failed = 0, False
    outputs_of = [{f: out / f"{name}{ext[f]}" for f in formats} for name, _, _ in jobs]
    skip = [a.skip_existing and all(exporters.is_complete(f, p) for f, p in o.items()) for o in outputs_of]
    fov = bpy.context.scene.glvd.fov
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glvd-read-ahead")
    futures = {}

    def read_ahead(j):
        """Load input j's photos and prepare them for the network (no bpy: runs on the worker)."""
        paths = [str(Path(p).resolve()) for p in jobs[j][1]]
        if not paths:
            raise ValueError(f"{jobs[j][2]}: no photos")
        inputs = pipeline.load_inputs(paths, default_fov_deg=fov)
        rec = ops.get_reconstructor(a.model, a.device)
        return inputs, rec.prepare(inputs.images, inputs.masks, None, intrinsics=inputs.intrinsics, names=paths)

    def submit_next(i):
        nxt = next((j for j in range(i, len(jobs)) if not skip[j] and j not in futures), None)
        if nxt is not None:
            futures[nxt] = ahead.submit(read_ahead, nxt)

    try:
        if not all(skip):
            try:
                ops.get_reconstructor(a.model, a.device)  # load the model once, on this thread
            except Exception as e:  # noqa: BLE001 - a bad --model or --device: one line, not a traceback
                fail(f"{'--model ' + a.model if a.model else 'the bundled model'} on --device {a.device}: {e}")
        for i, (name, photos, src) in enumerate(jobs):
            t0 = time.time()
            outputs = outputs_of[i]
            entry = dict(input=str(src), name=name, outputs={k: str(v) for k, v in outputs.items()})
            if skip[i]:
                entry.update(status="skipped", message="outputs exist", seconds=0.0)
            else:
                written = []
                try:
                    submit_next(i)       # this input (if not already read ahead) ...
                    submit_next(i + 1)   # ... and the next one, while this one runs
                    loaded, prepared = futures.pop(i).result()
                    bpy.ops.wm.read_factory_settings(use_empty=True)
                    s = bpy.context.scene.glvd
                    s.model_path, s.device, s.iterations = a.model, a.device, a.iterations
                    s.bake_texture = a.texture > 0
                    if a.texture:
                        s.texture_size = str(a.texture)
                    s.arkit_shapes, s.neutral, s.fit_to_photos = not a.no_arkit, a.neutral, a.fit
                    s.fit_iterations, s.fit_expression = a.fit_iterations, a.fit_expression
                    for p in photos:
                        s.photos.add().filepath = str(Path(p).resolve())
                    job = ops.gather(bpy.context, loaded=loaded)
                    job.prepared = prepared
                    pins, held = guides_for(src)
                    if pins:
                        pipeline.attach_pins(job.inputs, pins)
                    if held:
                        keypoints = core.import_core("reconstruct").load_held_keypoints(
                            held, ops.get_reconstructor(a.model, a.device).cfg.arch.num_keypoints)
                        job.options = replace(job.options, reconstruct=replace(job.options.reconstruct,
                                                                               keypoints=keypoints))
                    entry["guides"] = [p.name for p in (pins, held) if p]
                    job.run()
                    if job.error:
                        raise RuntimeError(job.error)
                    face = ops.write(bpy.context, job)["face"]
                    for f, p in outputs.items():
                        exporters.export(f, p, [face])
                        written.append(p)
                    entry.update(status="ok", message="; ".join(job.result.notes),
                                 seconds=round(time.time() - t0, 3))
                except Exception as e:  # noqa: BLE001 - reported per input, the batch goes on
                    for p in written:  # an input has all its outputs or none (and frees the space)
                        p.unlink(missing_ok=True)
                    failed += 1
                    entry.update(status="error", message=str(e) or type(e).__name__, seconds=round(time.time() - t0, 3))
            entry["rss_mb"], peak = (round(x, 1) if x else x for x in memory_mb())
            report["peak_rss_mb"] = peak
            report["results"].append(entry)
            gc.collect()  # the glTF exporter leaves reference cycles holding its buffers: ~25 MB an input otherwise
            try:
                gio.atomic_write_bytes(out / "report.json", json.dumps(report, indent=1).encode())
            except OSError as e:  # e.g. a full disk: said once per input, the batch goes on
                report_failed = True
                print(f"could not write {out / 'report.json'}: {e.strerror or e}", file=sys.stderr, flush=True)
            w = 30
            f_ = int(w * (i + 1) / len(jobs))
            print(f"[{'#' * f_}{'.' * (w - f_)}] {i + 1}/{len(jobs)} {name}: {entry['status']}"
                  + (f" ({entry['message']})" if entry["status"] == "error" else ""), flush=True)
    finally:
        ahead.shutdown(cancel_futures=True)
        glvd_blender.unregister()
    print(f"{len(jobs) - failed} of {len(jobs)} inputs done; "
          + (f"report: {out / 'report.json'}" if not report_failed else "the report could not be written"))
    return 1 if failed or report_failed else 0


if __name__ == "__main__":
    rc = main(script_args())
    if rc:
        sys.exit(rc)

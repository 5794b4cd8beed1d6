"""Batch reconstruction into .blend files and exports.

    blender -b --python-exit-code 1 --python scripts/batch.py -- --input PATH [PATH ...] --output DIR
            [--formats blend,obj,glb] [--views-per-subject N] [--skip-existing] [--model PATH] [--device auto]
            [--chunk K/N] [--bad-inputs-ok]
    python scripts/batch.py --input ... --output ...          (with the bpy module)

A PATH is a photo, or a folder: of photos (one reconstruction each) or, with
--views-per-subject N > 1, of one subject's N photos (one multi-view reconstruction), or a list
(a .txt file: one such path a line, relative to the list's folder; blank lines and lines
starting with # are skipped), for more inputs than a command line holds. Per
input: NAME.blend with everything the panel's operator makes, and the requested exports.
``report.json`` (per input: status, message, seconds, outputs) is rewritten after every input.
Every file is written under a temporary name and renamed. A bad input is reported and
skipped; the exit code is 1 if any input failed, after all good ones are written.

Beyond one machine: ``--chunk K/N`` runs one farm task's share (docs/FARMS.md: the Flamenco job
type flamenco/glvd_batch.js, and batch_merge.py for the chunks' reports); batch_ray.py runs the
same per-input work on a Ray cluster. In a Blender with the GLVD extension installed (a farm
worker), batch.py runs that extension; elsewhere this checkout's.

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
import importlib
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import script_args, use_checkout  # noqa: E402

# glvd_core.preprocess.photo.PHOTO_EXTENSIONS, written out: the inputs are collected before the
# worker chooses which glvd_core to import (the installed extension's or this checkout's)
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


LIST_EXT = ".txt"  # an --input that lists inputs (module docstring)


def read_list(path):
    """[(line number, path)] of a list of inputs: one photo or folder a line, relative to the
    list's folder; blank lines and lines starting with # are skipped."""
    entries = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append((no, path.parent / Path(line).expanduser()))
    return entries


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


def build_parser(prog="batch.py", description=__doc__):
    """The options batch.py takes (batch_ray.py adds its own to these)."""
    ap = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    ap.add_argument("--chunk", default="", metavar="K/N",
                    help="only the K-th of N contiguous, equal parts of the inputs (K from 1; the names are "
                         "those of the whole run); its report is report.chunk-K-of-N.json (a farm task's share, "
                         "merged by batch_merge.py)")
    ap.add_argument("--bad-inputs-ok", action="store_true",
                    help="exit 0 when the only failures are inputs reported as errors in the report (for a farm "
                         "manager, which would otherwise run the whole task again)")
    return ap


def parse_chunk(text):
    """``"K/N"`` -> (K, N) with 1 <= K <= N; ValueError otherwise."""
    k, n = (int(x) for x in text.split("/"))
    if not 1 <= k <= n:
        raise ValueError(text)
    return k, n


def chunk_of(jobs, k, n):
    """The K-th (from 1) of N contiguous parts of ``jobs``, their sizes differing by at most one."""
    q, r = divmod(len(jobs), n)
    start = (k - 1) * q + min(k - 1, r)
    return jobs[start:start + q + (k <= r)]


def report_name(chunk):
    """The report's file name: report.json, or report.chunk-K-of-N.json for --chunk K/N."""
    if not chunk:
        return "report.json"
    k, n = parse_chunk(chunk)
    return f"report.chunk-{k}-of-{n}.json"


# what each --formats name writes (glvd_blender.exporters.FORMATS, checked against it by Worker;
# here so that options are checked without importing bpy)
EXPORT_EXT = {"blend": ".blend", "glb": ".glb", "gltf": ".gltf", "fbx": ".fbx", "obj": ".obj"}


def check_args(ap, a):
    """Validate the parsed options (``ap.error`` on the first bad one, before any input is
    touched) and collect the inputs: ``(jobs, formats, out)`` as :func:`collect` names them."""
    formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    if not 0 <= a.iterations <= 100:
        ap.error(f"--iterations {a.iterations}: choose 0..100 (0: the model's default)")
    if a.texture not in (0, 1024, 2048, 4096):
        ap.error(f"--texture {a.texture}: choose 1024, 2048 or 4096 (or 0: none)")
    if not 1 <= a.fit_iterations <= 100:
        ap.error(f"--fit-iterations {a.fit_iterations}: choose 1..100")
    if a.views_per_subject < 1:
        ap.error(f"--views-per-subject {a.views_per_subject}: choose 1 or more")
    inputs = []
    for s in a.input:
        if not Path(s).exists():
            ap.error(f"--input {s}: no such file or folder")
        if Path(s).suffix.lower() != LIST_EXT or not Path(s).is_file():
            inputs.append(s)
            continue
        try:
            listed = read_list(Path(s))
        except (OSError, UnicodeDecodeError) as e:
            ap.error(f"--input {s}: cannot read the list ({getattr(e, 'strerror', None) or e})")
        for line_no, path in listed:
            if not path.exists():
                ap.error(f"--input {s}, line {line_no}: {path}: no such file or folder")
            inputs.append(str(path))
    jobs, ignored = collect(inputs, a.views_per_subject)
    if not jobs:
        ap.error(f"no photos in {' '.join(a.input)} (looked for {', '.join(sorted(IMAGE_EXT))})")
    if a.chunk:
        try:
            jobs = chunk_of(jobs, *parse_chunk(a.chunk))
        except ValueError:
            ap.error(f"--chunk {a.chunk}: write K/N with 1 <= K <= N, e.g. 3/8")
    bad = [f for f in formats if f not in EXPORT_EXT]
    if bad:
        ap.error(f"unknown format(s): {', '.join(bad)} (choose from {', '.join(EXPORT_EXT)})")
    out = Path(a.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".glvd-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        fail(f"--output {out}: cannot write there ({e.strerror or e})")
    if ignored:
        print(f"ignored {len(ignored)} file(s) that are not photos, e.g. {ignored[0].name}", flush=True)
    return jobs, formats, out


def outputs_for(name, formats, out):
    """{format: path} of one input's outputs."""
    return {f: Path(out) / f"{name}{EXPORT_EXT[f]}" for f in formats}


def installed_extension():
    """The GLVD extension enabled in this Blender (its ``bl_ext.<repository>.glvd`` package), or
    None. A farm worker's Blender has the artist zip installed: batch.py then runs that, with the
    OpenCV and Pillow wheels it brings, and registers nothing twice."""
    import bpy

    for name in bpy.context.preferences.addons.keys():
        if name.startswith("bl_ext.") and name.rsplit(".", 1)[-1] == "glvd":
            return importlib.import_module(name)
    return None


class Worker:
    """One process's batch worker: the extension registered and the model loaded once; each
    :meth:`reconstruct` call turns one input into its outputs, all of them or none. Used by
    batch.py, and by batch_ray.py in each Ray actor."""

    def __init__(self, a):
        import bpy  # Blender, or the bpy module

        ext = installed_extension()
        if ext is None:  # the bpy module, or a Blender without the extension: this checkout's add-on
            use_checkout()
            ext = importlib.import_module("glvd_blender")
            ext.register()
        self.package, self._registered = ext, ext.__name__ == "glvd_blender"
        core, exporters, ops = (importlib.import_module(f"{ext.__name__}.{m}") for m in ("core", "exporters", "ops"))
        if exporters.FORMATS != EXPORT_EXT:
            raise RuntimeError(f"batch.py's EXPORT_EXT {EXPORT_EXT} differs from the extension's {exporters.FORMATS}")
        self.a, self.ops, self.core, self.exporters = a, ops, core, exporters
        self.pipeline = core.import_core("pipeline")
        self.fov = bpy.context.scene.glvd.fov

    def load_model(self):
        """Load the model once, on this thread; a bad --model or --device raises."""
        return self.ops.get_reconstructor(self.a.model, self.a.device)

    def is_complete(self, outputs):
        return all(self.exporters.is_complete(f, p) for f, p in outputs.items())

    def read(self, photos, source):
        """Load an input's photos and prepare them for the network (no bpy: may run on a thread)."""
        paths = [str(Path(p).resolve()) for p in photos]
        if not paths:
            raise ValueError(f"{source}: no photos")
        inputs = self.pipeline.load_inputs(paths, default_fov_deg=self.fov)
        rec = self.load_model()
        return inputs, rec.prepare(inputs.images, inputs.masks, None, intrinsics=inputs.intrinsics, names=paths)

    def reconstruct(self, name, photos, src, outputs, read=None, keep=()):
        """Reconstruct one input into ``outputs`` ({format: path}) and return its report entry
        (status "ok" or "error", message, seconds, guides, rss_mb). ``read`` is a callable
        returning :meth:`read`'s result (a read-ahead future's ``result``); ``keep`` names formats
        whose file this run has written already and is not written again. On an error none of
        the input's outputs is left."""
        import bpy

        a, ops = self.a, self.ops
        t0 = time.time()
        entry = dict(input=str(src), name=name, outputs={k: str(v) for k, v in outputs.items()})
        written = []
        try:
            loaded, prepared = read() if read is not None else self.read(photos, src)
            # a fresh, empty scene; not read_factory_settings, which also resets the preferences
            # and so would disable an installed extension in the middle of the batch
            bpy.ops.wm.read_homefile(use_factory_startup=True, use_empty=True)
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
                self.pipeline.attach_pins(job.inputs, pins)
            if held:
                keypoints = self.core.import_core("reconstruct").load_held_keypoints(
                    held, self.load_model().cfg.arch.num_keypoints)
                job.options = replace(job.options, reconstruct=replace(job.options.reconstruct, keypoints=keypoints))
            entry["guides"] = [p.name for p in (pins, held) if p]
            job.run()
            if job.error:
                raise RuntimeError(job.error)
            face = ops.write(bpy.context, job)["face"]
            for f, p in outputs.items():
                if f not in keep:
                    self.exporters.export(f, p, [face])
                written.append(p)
            entry.update(status="ok", message="; ".join(job.result.notes), seconds=round(time.time() - t0, 3))
        except Exception as e:  # noqa: BLE001 - reported per input, the batch goes on
            for p in list(written) + [outputs[f] for f in keep]:  # all of an input's outputs or none
                Path(p).unlink(missing_ok=True)
            entry.update(status="error", message=str(e) or type(e).__name__, seconds=round(time.time() - t0, 3))
        finally:
            gc.collect()  # the glTF exporter leaves reference cycles holding its buffers: ~25 MB an input otherwise
        cur = memory_mb()[0]
        entry["rss_mb"] = cur and round(cur, 1)
        return entry

    def close(self):
        if self._registered:
            self.package.unregister()
            self._registered = False


def write_report(out, report, atomic_write_bytes, name="report.json"):
    """``name`` in ``out`` all or nothing (with glvd_core.io's ``atomic_write_bytes``); False
    (said on stderr) where it cannot be written."""
    try:
        atomic_write_bytes(Path(out) / name, json.dumps(report, indent=1).encode())
        return True
    except OSError as e:  # e.g. a full disk: said once per input, the batch goes on
        print(f"could not write {Path(out) / name}: {e.strerror or e}", file=sys.stderr, flush=True)
        return False


def progress_line(i, n, name, entry):
    w = 30
    f_ = int(w * i / n)
    return (f"[{'#' * f_}{'.' * (w - f_)}] {i}/{n} {name}: {entry['status']}"
            + (f" ({entry['message']})" if entry["status"] == "error" else ""))


def main(argv):
    ap = build_parser()
    a = ap.parse_args(argv)
    jobs, formats, out = check_args(ap, a)
    worker = Worker(a)
    report = dict(command=sys.argv, formats=formats, chunk=a.chunk or None, results=[])
    failed, report_failed = 0, False
    outputs_of = [outputs_for(name, formats, out) for name, _, _ in jobs]
    skip = [a.skip_existing and worker.is_complete(o) for o in outputs_of]
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glvd-read-ahead")
    futures = {}
    atomic_write_bytes = worker.core.import_core("io").atomic_write_bytes

    def submit_next(i):
        nxt = next((j for j in range(i, len(jobs)) if not skip[j] and j not in futures), None)
        if nxt is not None:
            futures[nxt] = ahead.submit(worker.read, jobs[nxt][1], jobs[nxt][2])

    try:
        if not all(skip):
            try:
                worker.load_model()
            except Exception as e:  # noqa: BLE001 - a bad --model or --device: one line, not a traceback
                fail(f"{'--model ' + a.model if a.model else 'the bundled model'} on --device {a.device}: {e}")
        for i, (name, photos, src) in enumerate(jobs):
            if skip[i]:
                cur = memory_mb()[0]
                entry = dict(input=str(src), name=name, outputs={k: str(v) for k, v in outputs_of[i].items()},
                             status="skipped", message="outputs exist", seconds=0.0, rss_mb=cur and round(cur, 1))
            else:
                submit_next(i)       # this input (if not already read ahead) ...
                submit_next(i + 1)   # ... and the next one, while this one runs
                entry = worker.reconstruct(name, photos, src, outputs_of[i], read=futures.pop(i).result)
                failed += entry["status"] == "error"
            peak = memory_mb()[1]
            report["peak_rss_mb"] = peak and round(peak, 1)
            report["results"].append(entry)
            report_failed |= not write_report(out, report, atomic_write_bytes, report_name(a.chunk))
            print(progress_line(i + 1, len(jobs), name, entry), flush=True)
    finally:
        ahead.shutdown(cancel_futures=True)
        worker.close()
    print(f"{len(jobs) - failed} of {len(jobs)} inputs done; "
          + (f"report: {out / report_name(a.chunk)}" if not report_failed else "the report could not be written"))
    return 1 if report_failed or (failed and not a.bad_inputs_ok) else 0


if __name__ == "__main__":
    rc = main(script_args())
    if rc:
        sys.exit(rc)

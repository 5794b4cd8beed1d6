"""Batch reconstruction on a Ray cluster: batch.py's per-input outputs and report.json, made by a
pool of Ray actors that each hold one loaded model (--workers-per-gpu actors per GPU where the
cluster has GPUs and --device is not cpu, else one per --cpus-per-worker CPUs).

    python scripts/batch_ray.py --input PATH [PATH ...] --output DIR [batch.py's options]
        [--address auto|HOST:PORT] [--workers N] [--cpus-per-worker 1] [--workers-per-gpu 1]
        [--retries 2] [--start-timeout 600]

Without --address a Ray instance is started on this machine for the run. Every node of a cluster
needs this checkout with its .venv (bpy and ray: ``pip install -r requirements-farm.txt``) at
the same path, and the inputs and DIR on storage they all reach at the same paths.

What a lost worker (a killed process, a node gone) costs: its inputs are given to another
worker, up to --retries times each, then reported as errors. An output is written under a
temporary name and renamed, so none is ever half-written; an input's retry does not write again
an output that its lost attempt finished in this run, and keeps an input's outputs all or none.
--skip-existing resumes a run: inputs whose outputs are all complete are reported "skipped".
report.json (rewritten as each input ends, in input order) has batch.py's entries plus the
worker ("node-ip:pid") and the attempt that made each, and each worker's peak memory. The exit
code is 1 if any input failed, 2 for a bad option or workers that do not start (a bad model).
"""
import glob
import os
import sys
import time
from collections import Counter, deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import ROOT, use_checkout  # noqa: E402
from batch import build_parser, check_args, fail, outputs_for, progress_line, write_report  # noqa: E402

SCRIPTS = str(Path(__file__).resolve().parent)
RUN_MARKER = ".glvd-ray-run"  # its mtime: the start of the run, on the output storage's own clock
IN_FLIGHT_PER_WORKER = 2      # one running and one waiting, so no worker waits for the driver


class BatchActor:
    """One Ray worker: batch.py's Worker (the extension registered, the model loaded)."""

    def __init__(self, a):
        sys.path.insert(0, SCRIPTS)
        import ray

        from batch import Worker

        self.worker = Worker(a)
        self.worker.load_model()
        self.where = f"{ray.util.get_node_ip_address()}:{os.getpid()}"

    def ready(self):
        return self.where

    def peak_rss_mb(self):
        from batch import memory_mb

        peak = memory_mb()[1]
        return peak and round(peak, 1)

    def run(self, i, name, photos, src, outputs, attempt, run_started_ns, skip_existing):
        """(i, report entry) for input ``i``."""
        w = self.worker
        outputs = {f: Path(p) for f, p in outputs.items()}
        base = dict(input=str(src), name=name, outputs={k: str(v) for k, v in outputs.items()},
                    worker=self.where, attempt=attempt)
        if skip_existing and w.is_complete(outputs):
            return i, dict(base, status="skipped", message="outputs exist", seconds=0.0)
        keep = set()
        if attempt > 1:  # what a lost attempt of this run finished stays as it is
            keep = {f for f, p in outputs.items()
                    if w.is_complete({f: p}) and p.stat().st_mtime_ns >= run_started_ns}
        if keep == set(outputs):
            return i, dict(base, status="ok", message="outputs written by a lost attempt", seconds=0.0)
        entry = w.reconstruct(name, photos, src, outputs, keep=keep)
        return i, dict(base, **entry)


def cluster_workers(ray, a):
    """(number of workers, Ray options of each) from the cluster's resources and the options."""
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0)) if a.device != "cpu" else 0
    options = dict(num_cpus=a.cpus_per_worker, num_gpus=1 / a.workers_per_gpu if gpus else 0)
    n = a.workers or (gpus * a.workers_per_gpu if gpus else int(res.get("CPU", 1) // a.cpus_per_worker))
    return max(1, n), options


def main(argv):
    ap = build_parser(prog="batch_ray.py", description=__doc__)
    ap.add_argument("--address", default=None,
                    help="the Ray cluster (auto: the one this machine belongs to; HOST:PORT); none: a local one")
    ap.add_argument("--workers", type=int, default=0, help="actors to start (0: as many as the cluster holds)")
    ap.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs Ray reserves for each actor")
    ap.add_argument("--workers-per-gpu", type=int, default=1,
                    help="actors sharing one GPU (the texture and the exports run on the CPU, so the GPU is "
                         "idle most of a photo's time: docs/PERFORMANCE.md)")
    ap.add_argument("--retries", type=int, default=2,
                    help="times an input is given to another worker when its worker is lost (default 2)")
    ap.add_argument("--start-timeout", type=float, default=600.0,
                    help="seconds a worker may take to start (load the model) before the run gives up on it")
    a = ap.parse_args(argv)
    if a.chunk:
        ap.error("--chunk is for farm tasks (batch.py); Ray spreads the inputs itself")
    if a.workers < 0 or a.cpus_per_worker <= 0 or a.retries < 0 or a.workers_per_gpu < 1:
        ap.error("--workers, --retries: 0 or more; --cpus-per-worker: more than 0; --workers-per-gpu: 1 or more")
    try:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
    except ImportError:
        fail("Ray is not installed: pip install -r requirements-farm.txt (it is an optional extra)")
    jobs, formats, out = check_args(ap, a)
    out = out.resolve()
    if a.model:
        a.model = str(Path(a.model).resolve())
    todo = [(name, [str(Path(p).resolve()) for p in photos], Path(src).resolve(), src) for name, photos, src in jobs]
    use_checkout()
    from glvd_core.io import atomic_write_bytes

    marker = out / RUN_MARKER
    marker.write_bytes(b"")
    run_started_ns = marker.stat().st_mtime_ns
    started_here = not ray.is_initialized()
    if started_here:
        # the workers import this checkout (batch.py, glvd_blender, glvd_core) from its path
        ray.init(address=a.address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([SCRIPTS, str(ROOT)])}})
    n_workers, actor_opts = cluster_workers(ray, a)
    n_workers = min(n_workers, len(todo))
    Actor = ray.remote(BatchActor)
    replacements = n_workers * (a.retries + 1)  # how many lost workers are replaced, in all

    def start_actor():
        return Actor.options(**actor_opts, max_restarts=0, max_task_retries=0).remote(a)

    actors = [start_actor() for _ in range(n_workers)]
    try:
        ray.get([x.ready.remote() for x in actors], timeout=a.start_timeout)
    except (RayActorError, RayTaskError, GetTimeoutError) as e:
        if started_here:
            ray.shutdown()
        marker.unlink(missing_ok=True)
        fail(f"the workers did not start ({'--model ' + a.model if a.model else 'the bundled model'} on --device "
             f"{a.device}): {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}")

    report = dict(command=sys.argv, formats=formats, engine=f"ray {ray.__version__}", workers={}, results=[])
    entries = [None] * len(todo)
    attempts = Counter()
    queue = deque(range(len(todo)))
    in_flight = {}          # ObjectRef of a run -> (actor, input index)
    starting = {}           # ObjectRef of a replacement's ready() -> actor, given no input until it is up
    load = Counter()        # actor -> runs in flight
    done = failed = 0
    t0 = time.time()

    def finish(i, entry):
        nonlocal done, failed
        entry["input"] = str(todo[i][3])
        entries[i] = entry
        done += 1
        failed += entry["status"] == "error"
        if entry.get("worker") and entry.get("rss_mb"):
            w = report["workers"]
            w[entry["worker"]] = max(w.get(entry["worker"], 0), entry["rss_mb"])
        report["results"] = [e for e in entries if e is not None]
        report["peak_rss_mb"] = max(report["workers"].values(), default=None)
        report["seconds"] = round(time.time() - t0, 3)
        write_report(out, report, atomic_write_bytes)
        print(progress_line(done, len(todo), todo[i][0], entry), flush=True)

    def lost(i, why):
        finish(i, dict(name=todo[i][0], outputs={}, status="error", seconds=0.0, message=why))

    try:
        while queue or in_flight:
            for x in actors:
                while queue and load[x] < IN_FLIGHT_PER_WORKER:
                    i = queue.popleft()
                    attempts[i] += 1
                    name, photos, src, _ = todo[i]
                    outputs = {f: str(p) for f, p in outputs_for(name, formats, out).items()}
                    ref = x.run.remote(i, name, photos, str(src), outputs, attempts[i], run_started_ns, a.skip_existing)
                    in_flight[ref] = (x, i)
                    load[x] += 1
            if not in_flight and not starting:  # every worker lost and none left to start
                for i in list(queue):
                    lost(i, f"no worker left to run it (after {attempts[i]} attempt(s))")
                queue.clear()
                break
            ready, _ = ray.wait(list(in_flight) + list(starting), num_returns=1,
                                timeout=None if in_flight else a.start_timeout)
            if not ready:  # only replacements starting, and none came up in time
                for i in list(queue):
                    lost(i, f"no worker came up within {a.start_timeout:g} s to run it again")
                queue.clear()
                break
            ref = ready[0]
            if ref in starting:
                x = starting.pop(ref)
                try:
                    ray.get(ref)
                    actors.append(x)
                except (RayActorError, RayTaskError):
                    pass
                continue
            x, i = in_flight.pop(ref)
            load[x] -= 1
            try:
                finish(*ray.get(ref))
            except RayActorError as e:  # the worker is gone: its inputs go to another one
                if x in actors:
                    actors.remove(x)
                    print(f"worker lost ({type(e).__name__}); {len(actors)} left", file=sys.stderr, flush=True)
                    if replacements > 0:
                        replacements -= 1
                        y = start_actor()
                        starting[y.ready.remote()] = y
                if attempts[i] <= a.retries:
                    queue.appendleft(i)
                else:
                    lost(i, f"its worker was lost {attempts[i]} times")
            except RayTaskError as e:  # an error outside the per-input handling: reported, not retried
                lost(i, str(e).strip().splitlines()[-1])
        for x in actors:
            try:
                where = ray.get(x.ready.remote(), timeout=60)
                report["workers"][where] = ray.get(x.peak_rss_mb.remote(), timeout=60)
            except (RayActorError, GetTimeoutError):
                pass
        report["peak_rss_mb"] = max(report["workers"].values(), default=None)
        ok = write_report(out, report, atomic_write_bytes)
    finally:
        for name, _, _, _ in todo:  # temporary files of lost attempts (their outputs were never renamed)
            for tmp in out.glob(f".{glob.escape(name)}.tmp*"):
                tmp.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        if started_here:
            ray.shutdown()
    print(f"{done - failed} of {len(todo)} inputs done on {len(report['workers'])} worker(s) in "
          f"{time.time() - t0:.1f} s; report: {out / 'report.json'}")
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    rc = main(sys.argv[1:])
    if rc:
        sys.exit(rc)

"""Throughput of batch reconstruction against the engine and the number of workers on this
machine: scripts/batch.py (one process, the bpy module) and scripts/batch_ray.py with 1 and 2
workers, over the same N photos (the two bundled examples, alternating), default formats.

    .venv/bin/python -m research.farm_throughput.run [--photos 24] [--json research/farm_throughput/throughput.json]

Per run: the wall time from the command's start to its exit, the time to the first finished
photo (start-up: Python, bpy, the model, Ray's workers), the steady rate after it (photos a
minute between the first and the last progress line), the mean seconds a photo took in its
worker (report.json's "seconds"), and the peak resident memory of a worker (report.json).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
EXAMPLES = [ROOT / "docs" / "examples" / "grace_hopper.jpg", ROOT / "docs" / "examples" / "astronaut.png"]


def make_inputs(folder, n):
    folder.mkdir(parents=True)
    for i in range(n):
        src = EXAMPLES[i % len(EXAMPLES)]
        shutil.copy(src, folder / f"photo_{i:03d}{src.suffix}")


def timed_run(cmd, out):
    """Run ``cmd``, timestamping each progress line it prints; the row of the table."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    stamps = []
    log = []
    for line in p.stdout:
        log.append(line)
        if line.startswith("[") and "/" in line.split("]", 1)[-1][:12]:
            stamps.append(time.perf_counter() - t0)
    rc = p.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} exited {rc}:\n{''.join(log[-30:])}")
    report = json.loads((out / "report.json").read_text())
    entries = report["results"]
    assert len(stamps) == len(entries) and all(e["status"] == "ok" for e in entries), "".join(log[-30:])
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60 if len(stamps) > 1 else None
    return dict(wall_s=round(wall, 1), first_photo_s=round(stamps[0], 1),
                steady_photos_per_min=steady and round(steady, 1),
                worker_s_per_photo=round(sum(e["seconds"] for e in entries) / len(entries), 2),
                peak_rss_mb_per_worker=report.get("peak_rss_mb"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    runs = {
        "batch.py, 1 process": [PY, "scripts/batch.py"],
        "batch_ray.py, 1 worker": [PY, "scripts/batch_ray.py", "--workers", "1"],
        "batch_ray.py, 2 workers": [PY, "scripts/batch_ray.py", "--workers", "2"],
    }
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        make_inputs(inputs, a.photos)
        for i, (name, cmd) in enumerate(runs.items()):
            out = Path(tmp) / f"out{i}"
            rows[name] = timed_run(cmd + ["--input", str(inputs), "--output", str(out)], out)
            print(name, rows[name], flush=True)
    print(f"\n{a.photos} photos, {os.cpu_count()} CPUs\n")
    print("| engine | wall | first photo | steady rate | worker s/photo | peak memory per worker |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['wall_s']} s | {r['first_photo_s']} s | {r['steady_photos_per_min']} photos/min "
              f"| {r['worker_s_per_photo']} s | {r['peak_rss_mb_per_worker']} MB |")
    if a.json:
        a.json.write_text(json.dumps(dict(photos=a.photos, cpus=os.cpu_count(), rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()

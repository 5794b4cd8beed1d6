"""Two-scale bake (glvd_core.texture) against the single-scale bake it replaced
(reference_bake.py): time and mean absolute difference, astronaut photo, 1 and 3 views.

    .venv/bin/python -m research.fast_bake.compare --sizes 1024 2048 4096 --json research/fast_bake/compare.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from glvd_core.cameras import Camera, look_at_rotation
from glvd_core.reconstruct import Reconstructor
from glvd_core.texture import bake_texture
from research.fast_bake import reference_bake


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())
    rec = Reconstructor.from_pretrained()
    cams = [Camera.from_fov(512, 512, 40, R=look_at_rotation(y, 0, 0), t=[0, 0, 0.6]) for y in (-30, 0, 30)]
    cases = {"1 view": (rec.reconstruct([photo]), 1), "3 views": (rec.reconstruct([photo] * 3, cameras=cams), 3)}
    rows = []
    for name, (r, n) in cases.items():
        args = (r.final_vertices, [photo] * n, r.cameras, rec.template)
        for size in a.sizes:
            bake_texture(*args, size=size)  # warm: the UV layout is cached per process
            ts = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                new = bake_texture(*args, size=size)
                ts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            old = reference_bake.bake_texture(*args, size=size)
            t_old = time.perf_counter() - t0
            d = np.abs(new.image.astype(int) - old.image.astype(int))
            row = dict(case=name, size=size, new_median_s=float(np.median(ts)), reference_s=t_old,
                       mean_abs_diff=float(d.mean()), p99_abs_diff=float(np.percentile(d, 99)),
                       source_agreement=float((new.source == old.source).mean()))
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(command="python -m research.fast_bake.compare " + " ".join(
                f"--sizes {' '.join(map(str, a.sizes))}".split()), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()

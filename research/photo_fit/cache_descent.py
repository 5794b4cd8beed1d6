"""Cache the descent's results on a dataset (1 and 3 views) with the detections, so fit settings
can be compared in seconds: python -m research.photo_fit.cache_descent --data data/val --out runs/fitdev_val.pkl"""
from __future__ import annotations

import argparse
import pickle

import numpy as np

from glvd_core.cameras import Camera
from glvd_core.data import GLVDDataset
from glvd_core.io import InputError
from glvd_core.preprocess import MediaPipeFaces
from glvd_core.reconstruct import Reconstructor


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/val")
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=0)
    a = ap.parse_args(argv)
    ds = GLVDDataset(a.data)
    rec = Reconstructor.from_pretrained(device="cpu")
    out = []
    n = min(len(ds), a.scenes) if a.scenes else len(ds)
    for i in range(n):
        s = ds[i]
        try:
            dets = [MediaPipeFaces.detect(im, segment=False) for im in s.images[:3]]
        except InputError:
            continue
        p478 = [d.landmarks478 for d in dets]
        c0 = s.cameras[0]
        r1 = rec.reconstruct(s.images[:1], s.masks[:1], landmarks=p478[:1],
                             intrinsics=[Camera(np.eye(3), np.zeros(3), c0.K, c0.width, c0.height)])
        r3 = rec.reconstruct(s.images[:3], s.masks[:3], cameras=s.cameras[:3], landmarks=p478)
        extras = {k: v for k, v in s.extras.items()}
        out.append(dict(name=s.path.name, gt_world=s.vertices_m, cameras=s.cameras[:3], masks=s.masks[:3],
                        images=s.images[:3], p478=p478, extras=extras,
                        r1=(r1.final_vertices, r1.cameras, r1.landmarks478, r1.cameras_estimated),
                        r3=(r3.final_vertices, r3.cameras, r3.landmarks478, r3.cameras_estimated)))
        print(f"\r{i + 1}/{n}", end="", flush=True)
    with open(a.out, "wb") as f:
        pickle.dump(out, f)
    print(f"\nwrote {len(out)} scenes to {a.out}")


if __name__ == "__main__":
    main()

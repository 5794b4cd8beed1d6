"""Command line: ``python -m glvd_core <command> ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import sys


def _make_data(a) -> int:
    from .data import make_dataset

    make_dataset(a.out, a.scenes, a.views, a.seed, a.size, workers=a.workers, ict_path=a.ict)
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
    """The main job on the bundled default: render a synthetic photo and reconstruct it."""
    from pathlib import Path

    from . import load_template
    from .data import make_dataset

    out = Path(a.out)
    t = load_template()
    print(f"template: {t.num_vertices} vertices, {t.num_faces} triangles, min angle "
          f"{t.meta['min_angle_deg']:.1f} deg, sha256 {t.sha256[:12]}")
    make_dataset(out / "data", scenes=4, views=3, seed=a.seed, size=256, progress=False)
    print(f"rendered 4 synthetic scenes x 3 views into {out / 'data'}")
    try:
        from .reconstruct import demo_reconstruct
    except ImportError:
        print("no reconstruction model in this build yet: the demo stops after the data engine")
        return 0
    return demo_reconstruct(out)


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
    p.add_argument("--ict", default=None, help="ICT-FaceKit npz (default: GLVD_ICT_PATH or ../shared)")
    p.set_defaults(func=_make_data)
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


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except (FileNotFoundError, ValueError, IOError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

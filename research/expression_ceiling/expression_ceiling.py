"""How much of the error is expression? The held-out synthetic heads are ICT identity *and*
expression shapes (41 of the 60 show 1-4 expression modes: the generator leaves 35 % neutral); the
image prior reads identity only.
This scores, with the aligned Chamfer of ``evaluate`` (GT narrow face -> shape, mm):

- held-out synthetic (every scene): the mean face; the true identity without its expression;
  the mean face with the true expression;
- held-out synthetic, view 0 of the detected scenes: the bundled identity CNN's shape (the
  probe's "cnn" row), and the same shape with the scene's true expression added — the most a
  perfect expression reader could add to the image prior;
- the scan (view 0 of the detected sets): the mean face and the CNN's shape, each with and
  without both eyes closed (``eyeBlink_L/R`` = 1: the scan subject's eyes are closed).

    python -m research.expression_ceiling.expression_ceiling [--json research/expression_ceiling/expression_ceiling.json]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from research.lib import load_crops, scan_truth  # noqa: E402

from glvd_core import load_template  # noqa: E402
from glvd_core.evaluate import chamfer_mm, chamfer_scan_mm  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402
from glvd_core.model.identity_cnn import load_identity_cnn  # noqa: E402
from research.lib import read_identity  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data"), help="folder holding eval/ and eval_scan/")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    data = Path(a.data)
    tpl = load_template()
    B, E = identity_modes(tpl).astype(np.float64), tpl.expression_modes_m.astype(np.float64)
    mean = tpl.vertices_m.astype(np.float64)

    def shape(w=None, e=None):
        v = mean.copy()
        if w is not None:
            v += np.tensordot(w, B, axes=1)
        if e is not None:
            v += np.tensordot(e, E, axes=1)
        return v

    out, truth = {}, {}  # truth: scene index -> (GT vertices, identity, expression), read once
    for gf in sorted((data / "eval").glob("scene_*/gt.npz")):
        with np.load(gf) as g:
            truth[int(gf.parent.name[6:])] = g["vertices_m"], g["identity"], g["expression"]
    rows = {"mean face": [], "true identity, no expression": [], "mean face + true expression": []}
    for gt, w, e in truth.values():
        for k, v in zip(rows, (shape(), shape(w), shape(None, e))):
            rows[k].append(chamfer_mm(gt, v, tpl, align=True)[0])
    out["synthetic, every scene"] = {k: float(np.mean(v)) for k, v in rows.items()} | {"scenes": len(rows["mean face"])}

    net = load_identity_cnn()
    X, _, idx = load_crops(data / "eval", views=(0,))
    wr = read_identity(net, X).double().numpy()
    rows = {"identity CNN": [], "identity CNN + true expression": []}
    for (s, _, _), w in zip(idx, wr):
        gt, _, e = truth[s]
        rows["identity CNN"].append(chamfer_mm(gt, shape(w), tpl, align=True)[0])
        rows["identity CNN + true expression"].append(chamfer_mm(gt, shape(w, e), tpl, align=True)[0])
    out["synthetic, view 0 detected"] = {k: float(np.mean(v)) for k, v in rows.items()} | {"scenes": len(idx)}

    names = list(tpl.expression_names)
    blink = np.zeros(len(names))
    blink[[names.index("eyeBlink_L"), names.index("eyeBlink_R")]] = 1.0
    X, _, idx = load_crops(data / "eval_scan", views=(0,))
    wr = read_identity(net, X).double().numpy()
    rows = {"mean face": [], "mean face, eyes closed": [], "identity CNN": [], "identity CNN, eyes closed": []}
    scan_gt = scan_truth(data / "eval_scan", idx)
    for (s, _, _), w in zip(idx, wr):
        P, L = scan_gt[s]
        for k, v in zip(rows, (shape(), shape(None, blink), shape(w), shape(w, blink))):
            rows[k].append(chamfer_scan_mm(P, L, v, tpl))
    out["scan, view 0 detected"] = {k: float(np.mean(v)) for k, v in rows.items()} | {"scenes": len(idx)}

    for part, r in out.items():
        print(f"\n{part} ({r['scenes']} scenes), aligned mm")
        for k, v in r.items():
            if k != "scenes":
                print(f"  {k:<34} {v:.3f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

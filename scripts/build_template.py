"""Build the committed template asset from the ICT-FaceKit model.

    python scripts/build_template.py [--ict PATH] [--out glvd_core/assets/template.npz]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from glvd_core.ict import load_ict  # noqa: E402
from glvd_core.template.build import build_template  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ict", default=None, help="ICT-FaceKit npz (default: see glvd_core.ict)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "glvd_core/assets/template.npz"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.time()
    asset = build_template(load_ict(a.ict), seed=a.seed)
    tmp = a.out + ".tmp.npz"
    np.savez_compressed(tmp, **asset)
    Path(tmp).replace(a.out)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size/1e6:.2f} MB) in {time.time()-t0:.1f} s")


if __name__ == "__main__":
    main()

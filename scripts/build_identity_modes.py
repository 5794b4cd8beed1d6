"""Build the committed identity-mode asset (the 100 ICT identity modes on the template).

    python scripts/build_identity_modes.py [--ict PATH] [--out glvd_core/assets/identity_modes.npz]

Used at run time by ``glvd_core.expression`` (separating identity from expression for the
neutral option) without the ICT data. Derived from ICT-FaceKit (MIT; see assets/README.md).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glvd_core.expression.shape_space import build_identity_asset  # noqa: E402
from glvd_core.ict import load_ict  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ict", default=None, help="ICT-FaceKit npz (default: see glvd_core.ict)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "glvd_core/assets/identity_modes.npz"))
    a = ap.parse_args(argv)
    t0 = time.time()
    out = build_identity_asset(load_ict(a.ict), a.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()

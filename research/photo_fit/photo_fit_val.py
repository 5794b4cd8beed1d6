"""Choose the fitting stage's settings on data/val (never data/eval or the scan).

    python -m research.photo_fit.photo_fit_val --data data/val --views 1 --scenes 30 --json research/photo_fit/val_1view.json \
        --variant default --variant "l2:robust=l2" --variant "noexpr:expression=False"

Each --variant is NAME[:FIELD=VALUE,...] of glvd_core.fitting.FitOptions; the table pairs every
row against the descent alone (the first row).
"""
from __future__ import annotations

import argparse
import json
import typing

from glvd_core.evaluate import evaluate, format_table
from glvd_core.fitting import FitOptions
from glvd_core.reconstruct import Reconstructor


def parse_variant(text: str) -> tuple[str, FitOptions]:
    name, _, rest = text.partition(":")
    kw = {}
    hints = typing.get_type_hints(FitOptions)
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        kind = hints[k]
        kw[k] = (v.lower() in ("1", "true", "yes")) if kind is bool else (v if kind not in (int, float) else kind(v))
    return f"fit {name}", FitOptions(**kw)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/val")
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--scenes", type=int, default=0)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    fits = dict(parse_variant(v) for v in (a.variant or ["default"]))
    rec = Reconstructor.from_pretrained(device="cpu")
    res = evaluate(a.data, {"GLVD descent": rec}, views=a.views, max_scenes=a.scenes, fits=fits,
                   log=lambda *x, **k: None)
    print(format_table(res), flush=True)
    if a.json:
        res["variants"] = {k: vars(v) if hasattr(v, "__dict__") else str(v) for k, v in fits.items()}
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    return res


if __name__ == "__main__":
    main()

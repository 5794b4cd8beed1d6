"""Package a trained run as the bundled default model (glvd_core/assets/glvd_default.pt).

    python scripts/ship_model.py --run runs/lite_glvd2 [--checkpoint last.pt] [--fp16] [--set keypoint_warmup=5 iterations=12]
                                 [--lineage "started from …"] [--out PATH]
    python scripts/ship_model.py --model glvd_core/assets/glvd_default.pt --set iterations=12
        (re-package a shipped model with other inference settings: same weights, recipe kept,
        the change recorded in it)
    python scripts/ship_model.py --model glvd_core/assets/glvd_default.pt --identity-cnn runs/identity/identity_cnn.pt
        (re-package with another identity CNN, e.g. one `python -m glvd_core train-identity` made)

Writes one file carrying both networks: config (with the inference defaults given by --set),
template hash, weights (fp16 when --fp16), the training recipe (from the run's config.json /
metrics.jsonl) and, under ``identity_cnn``, the image prior's CNN package (--identity-cnn; a
re-packaged model keeps its own unless one is given)."""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a training run directory")
    src.add_argument("--model", help="a packaged model to re-package with --set")
    ap.add_argument("--out", default=str(ROOT / "glvd_core/assets/glvd_default.pt"))
    ap.add_argument("--checkpoint", default="model.pt",
                    help="file of --run to package: model.pt (a finished run) or last.pt (one stopped early)")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--data-recipe", default="make-data --scenes 2000 --views 3 --seed 1000 --size 256; detect-landmarks")
    ap.add_argument("--identity-cnn", default=None, metavar="PATH",
                    help="identity CNN package (train-identity's identity_cnn.pt) to carry under 'identity_cnn'")
    ap.add_argument("--lineage", default="", help="how the run's starting weights were made (free text, kept in the recipe)")
    a = ap.parse_args(argv)
    from glvd_core.cli import parse_overrides
    from glvd_core.model.config import GLVDConfig
    from glvd_core.checkpoint import MODEL_FORMAT, atomic_save, load_checkpoint

    def identity_package(fallback):
        """The identity CNN package to carry: --identity-cnn's (checked by loading it), else ``fallback``."""
        if a.identity_cnn is None:
            return fallback
        import torch
        from glvd_core.model.identity_cnn import load_identity_cnn

        load_identity_cnn(a.identity_cnn)
        pkg = torch.load(a.identity_cnn, map_location="cpu", weights_only=True)
        return pkg.get("identity_cnn", pkg) if "format" in pkg else pkg

    if a.model:
        ck = load_checkpoint(a.model)
        old = GLVDConfig.from_dict(ck["config"])
        try:
            new = GLVDConfig.from_dict(dict(old.to_dict(), **parse_overrides(a.set))).to_dict()
        except ValueError as e:
            raise SystemExit(str(e))
        changed = {k: [old.to_dict()[k], v] for k, v in new.items() if old.to_dict()[k] != v}
        recipe = dict(ck.get("recipe", {}))
        command = f"ship_model.py --model {a.model}" + (f" --set {' '.join(a.set)}" if a.set else "") + (
            f" --identity-cnn {a.identity_cnn}" if a.identity_cnn else "")
        recipe["repackaged"] = recipe.get("repackaged", []) + [dict(changed=changed, command=command)]
        out = dict(format=MODEL_FORMAT, config=new, template_sha256=ck["template_sha256"], model=ck["model"], recipe=recipe)
        ident = identity_package(ck.get("identity_cnn"))
        if ident is not None:
            out["identity_cnn"] = ident
        atomic_save(out, Path(a.out))
        print(f"wrote {a.out}: changed {changed}")
        return
    run = Path(a.run)
    ck = load_checkpoint(run / a.checkpoint)
    cfg = GLVDConfig.from_dict(ck["config"]).to_dict()  # fields added since training take their defaults
    try:
        cfg = GLVDConfig.from_dict(dict(cfg, **parse_overrides(a.set))).to_dict()
    except ValueError as e:
        raise SystemExit(str(e))
    model = {k: (v.half() if a.fp16 and v.is_floating_point() else v) for k, v in ck["model"].items()}
    steps = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        j = json.loads(line)
        steps[j["stage"]] = max(steps.get(j["stage"], 0), j["step"])
    recipe = dict(ck.get("recipe", {}), data=a.data_recipe, steps_done=steps, run=str(run), dtype="fp16" if a.fp16 else "fp32")
    if a.lineage:
        recipe["lineage"] = a.lineage
    out = dict(format=MODEL_FORMAT, config=cfg, template_sha256=ck["template_sha256"], model=model, recipe=recipe)
    ident = identity_package(None)
    if ident is not None:
        out["identity_cnn"] = ident
    atomic_save(out, Path(a.out))
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.1f} MB); recipe {recipe}")


if __name__ == "__main__":
    main()

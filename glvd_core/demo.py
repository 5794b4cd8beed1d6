"""``python -m glvd_core demo``: the main job end to end on the bundled default model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def demo_reconstruct(out: Path, seed: int = 123) -> int:
    """The bundled model on the bundled public-domain photos (OBJ + JSON per photo, the descent
    trajectory), then — when the ICT data is available — a rendered synthetic head with its
    Chamfer error against the ground truth."""
    from . import load_template
    from .cameras import Camera
    from .pipeline import Inputs, run
    from .preprocess import load_photo
    from .reconstruct import Reconstructor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tpl = load_template()
    print(f"template: {tpl.num_vertices} vertices, {tpl.num_faces} triangles, sha256 {tpl.sha256[:12]}")
    rec = Reconstructor.from_pretrained()
    print(f"model: {rec.source} ({rec.cfg.name}, {rec.cfg.inference.iterations} steps) on {rec.device}")
    photos = sorted(p for p in EXAMPLES.glob("*") if p.suffix in (".png", ".jpg") and not p.name.startswith("overlay"))
    if not photos:
        raise FileNotFoundError(f"no example photos in {EXAMPLES}")
    for p in photos:
        ph = load_photo(p)
        r = run(rec, Inputs([str(p)], [ph.image], [ph.camera], None, [ph.scale])).reconstruction
        r.save_obj(out / f"{p.stem}.obj")
        r.save_trajectory(out / f"{p.stem}_trajectory.npz")
        (out / f"{p.stem}.json").write_text(json.dumps(r.summary(), indent=1))
        print(f"{p.name}: {out / (p.stem + '.obj')} ({r.iterations} steps, {r.timings['total']:.2f} s; camera: "
              f"{ph.camera_source})")
    try:
        from .data import GLVDDataset, make_dataset
        from .evaluate import chamfer_mm
        from .ict import find_ict_path

        find_ict_path()
    except FileNotFoundError as e:
        print(f"synthetic check skipped: {e}")
        return 0
    make_dataset(out / "data", scenes=1, views=1, seed=seed, size=256, progress=False)
    s = GLVDDataset(out / "data")[0]
    cam = s.cameras[0]
    r = rec.reconstruct(s.images, s.masks, intrinsics=[Camera(np.eye(3), np.zeros(3), cam.K, cam.width, cam.height)])
    err, _ = chamfer_mm(cam.world_to_camera(s.vertices_m), r.final_vertices, tpl, align=True)
    r.save_obj(out / "synthetic.obj")
    print(f"synthetic head (seed {seed}): aligned Chamfer {err:.2f} mm against its ground truth -> {out / 'synthetic.obj'}")
    return 0

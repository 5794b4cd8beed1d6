"""The linear ICT shape space on the template: identity modes (committed asset) and the
expression modes the template carries."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..template import Template, load_template

if TYPE_CHECKING:
    from ..ict import ICTModel


_ASSET = Path(__file__).resolve().parent.parent / "assets" / "identity_modes.npz"


def build_identity_asset(ict: ICTModel, out: str | Path) -> Path:
    """Write (100, 7225, 3) float16 identity modes (metres per unit weight) of ``ict`` mapped onto
    the bundled template, with the template's sha256, atomically."""
    tpl = load_template()
    modes = tpl.from_ict(ict.identity_modes_m)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, identity_modes_m=modes.astype(np.float16), template_sha256=tpl.sha256)
    tmp.replace(out)
    return out


@lru_cache(maxsize=2)
def identity_modes(template: Template | None = None) -> np.ndarray:
    """(100, 7225, 3) float32 identity modes on the template (weights ~ N(0, 1)), metres."""
    tpl = template or load_template()
    if not _ASSET.is_file():
        raise FileNotFoundError(f"{_ASSET} is missing (build it with scripts/build_identity_modes.py)")
    with np.load(_ASSET) as d:
        if str(d["template_sha256"]) != tpl.sha256:
            raise ValueError(f"{_ASSET} was built for another template; rebuild it with scripts/build_identity_modes.py")
        return d["identity_modes_m"].astype(np.float32)

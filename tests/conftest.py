import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def ict():
    from glvd_core.ict import load_ict

    try:
        return load_ict()
    except FileNotFoundError as e:  # the data directory is documented; CI has ../shared beside the repo
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def template():
    from glvd_core import load_template

    return load_template()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    from glvd_core.data import make_dataset

    out = tmp_path_factory.mktemp("data")
    make_dataset(out, scenes=3, views=2, seed=7, size=128, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def load_script():
    """``load_script("DIR/NAME")`` imports ``DIR/NAME.py`` (from the repository root, e.g.
    ``research/view_combination/view_combination``) as a module; the repository root goes on the
    path so its imports of ``research.lib`` work."""
    import importlib.util

    def load(name: str):
        sys.path.insert(0, str(ROOT))
        spec = importlib.util.spec_from_file_location(Path(name).name, ROOT / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture
def network_inputs():
    """``network_inputs(rec, views)``: see :func:`_network_inputs`."""
    return _network_inputs


def _network_inputs(rec, views):
    """The descent's tensors for one prepared view: (frame, images, masks, heatmaps, A, b, K), as
    ``Reconstructor.reconstruct`` builds them (for tests that run the model by hand)."""
    import torch

    from glvd_core.model.frame import make_frame
    from glvd_core.model.glvd import landmark_heatmaps

    cfg = rec.cfg
    fr = make_frame([v.camera for v in views], cfg.arch.frame_scale_m, cfg.arch.head_extent_m, cfg.arch.nominal_fill)
    img = torch.as_tensor(views[0].image).permute(2, 0, 1)[None, None].float() / 255
    msk = torch.as_tensor(views[0].mask)[None, None, None].float() / 255
    hm = landmark_heatmaps(torch.as_tensor(views[0].landmarks, dtype=torch.float32)[None, None],
                           torch.ones(1, 1, 68, dtype=torch.bool), cfg.arch.image_size, cfg.arch.feature_size,
                           cfg.arch.heatmap_sigma_px)
    A, b, K = (torch.as_tensor(x, dtype=torch.float32)[None] for x in (fr.A, fr.b, fr.K))
    return fr, img, msk, hm, A, b, K

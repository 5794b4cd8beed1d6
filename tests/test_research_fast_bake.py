"""The two-scale texture bake gives the texture of the single-scale bake it replaced
(research/fast_bake/reference_bake.py) within 1/255 on average, at the analysis side and above."""
import numpy as np
import pytest

from glvd_core.texture import bake_texture
from glvd_core.texture.bake import ANALYSIS_SIDE
from research.fast_bake import reference_bake


@pytest.fixture(scope="module")
def scene(tiny_dataset):
    from glvd_core.data import GLVDDataset

    return GLVDDataset(tiny_dataset)[0]


@pytest.mark.parametrize("size,views", [(ANALYSIS_SIDE, 1), (2 * ANALYSIS_SIDE, 2)])
def test_two_scale_bake_matches_the_single_scale_bake(scene, template, size, views):
    args = (scene.vertices_m, scene.images[:views], scene.cameras[:views], template)
    kw = dict(masks=scene.masks[:views], size=size)
    new, old = bake_texture(*args, **kw), reference_bake.bake_texture(*args, **kw)
    d = np.abs(new.image.astype(int) - old.image.astype(int))
    assert new.image.shape == old.image.shape == (size, size, 3)
    assert d.mean() <= 1.0, d.mean()
    assert np.percentile(d, 99) <= 16
    assert (new.source == old.source).mean() > 0.98
    assert np.allclose(new.view_gains, old.view_gains, rtol=0.02)
    if size == ANALYSIS_SIDE:  # the same arithmetic on the chart; only the gutter padding differs
        inside = old.source > 0
        assert d[inside].max() <= 1

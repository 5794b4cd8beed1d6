"""Tests against real Blender (the ``bpy`` module from PyPI). User resources go to a temp dir
*before* bpy is imported, so tests never touch a user's Blender configuration."""
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="glvd-bl-user-"))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_photo(tmp_path_factory):
    """One rendered synthetic scene (2 views, 256 px) — a photo with known ground truth."""
    from glvd_core.data import GLVDDataset, make_dataset

    out = tmp_path_factory.mktemp("photo")
    make_dataset(out, scenes=1, views=2, seed=21, size=256, workers=1, progress=False)
    return GLVDDataset(out)[0]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, synthetic_photo):
    """A tiny trained model file (seconds on a CPU): the add-on loads it like any model."""
    from glvd_core.data import make_dataset
    from glvd_core.model.config import get_config
    from glvd_core.train.trainer import Trainer, TrainOptions

    data = tmp_path_factory.mktemp("tinydata")
    make_dataset(data, scenes=2, views=1, seed=3, size=64, workers=1, progress=False)
    out = tmp_path_factory.mktemp("tinyrun")
    cfg = get_config("tiny", sdf_steps=2, kp_steps=2, vertex_steps=4)
    return Trainer(cfg, data, out, TrainOptions(progress=False)).run()


@pytest.fixture
def addon(tiny_model):
    """The add-on registered on an empty factory scene, pointed at the tiny model."""
    import glvd_blender

    bpy.ops.wm.read_factory_settings(use_empty=True)
    glvd_blender.register()
    bpy.context.scene.glvd.model_path = str(tiny_model)
    yield glvd_blender
    glvd_blender.unregister()

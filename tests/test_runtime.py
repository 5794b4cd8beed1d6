"""The numpy runtime (glvd_core/runtime): the model file read without torch, and the same mesh
as the torch runtime, so that a Blender without torch reconstructs what the CLI does."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from glvd_core.reconstruct import DEFAULT_MODEL, ReconstructOptions, Reconstructor, keypoint_start, resolve_runtime
from glvd_core.runtime import torchfile

ROOT = Path(__file__).resolve().parents[1]
SAME_M = 1e-6  # both runtimes compute in float32; measured 1.2e-7 m apart


@pytest.fixture(scope="module")
def runtimes():
    return (Reconstructor.from_pretrained(device="cpu", runtime="torch"),
            Reconstructor.from_pretrained(runtime="numpy"))


@pytest.fixture(scope="module")
def astronaut(runtimes):
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    return img, runtimes[0].prepare([img])  # detection once: both runtimes descend from the same views


def test_the_model_file_reads_the_same_without_torch():
    ours = torchfile.load(DEFAULT_MODEL)
    ref = torch.load(DEFAULT_MODEL, map_location="cpu", weights_only=True)
    assert ours["config"] == ref["config"] and ours["recipe"] == ref["recipe"]
    for part in ("model", "identity_cnn"):
        a, b = (ours["model"], ref["model"]) if part == "model" else (ours[part]["model"], ref[part]["model"])
        assert a.keys() == b.keys()
        for k in b:
            assert a[k].dtype == b[k].numpy().dtype and np.array_equal(a[k], b[k].numpy()), k


def test_the_keypoint_start_is_torchs_without_torch():
    for seed in (0, 7, 2 ** 31 + 3):
        g = torch.Generator().manual_seed(seed)
        ref = ((torch.rand(1, 18, 3, generator=g) * 2 - 1) * 0.5)[0].numpy()
        np.testing.assert_array_equal(keypoint_start(seed, 18, 0.5), ref)


@pytest.mark.parametrize("options", [ReconstructOptions(),
                                     ReconstructOptions(seed=5, iterations=7, keypoints={3: (0.01, 0.02, 0.5)})],
                         ids=["defaults", "seed_steps_held_keypoint"])
def test_numpy_gives_the_torch_mesh_on_a_photo(runtimes, astronaut, options):
    """Every step of the descent, the identity CNN's prior included, within a micrometre."""
    img, prepared = astronaut
    a, b = (r.reconstruct([img], options=options, prepared=prepared) for r in runtimes)
    assert b.info["runtime"] == "numpy" and a.info["runtime"] == "torch"
    assert a.vertices.shape == b.vertices.shape
    assert np.abs(a.vertices - b.vertices).max() < SAME_M
    assert np.abs(a.keypoints - b.keypoints).max() < SAME_M
    if options.keypoints:
        np.testing.assert_allclose(b.keypoints[-1][3], options.keypoints[3], atol=1e-6)


def test_numpy_gives_the_torch_mesh_with_two_calibrated_views(runtimes, tiny_dataset, template):
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[0]
    lms = [cam.project(s.vertices_m[template.landmarks68]) for cam in s.cameras]
    a, b = (r.reconstruct(s.images, s.masks, cameras=s.cameras, landmarks=lms) for r in runtimes)
    assert a.frame == b.frame == "world" and a.info["views"] == 2
    assert np.abs(a.vertices - b.vertices).max() < SAME_M


def test_runtime_choice_and_its_errors():
    assert resolve_runtime("auto") == "torch"  # torch is installed here
    assert resolve_runtime("numpy", "cpu") == "numpy"
    with pytest.raises(ValueError, match="numpy runtime runs on the CPU"):
        resolve_runtime("numpy", "cuda")
    with pytest.raises(ValueError, match="unknown runtime 'onnx'"):
        resolve_runtime("onnx")
    with pytest.raises(ValueError, match="needs the torch runtime"):
        Reconstructor.from_pretrained(runtime="numpy", identity_cnn=DEFAULT_MODEL)


@pytest.mark.parametrize("runtime", ["torch", "numpy"])
@pytest.mark.parametrize("kind", ["empty", "garbage", "truncated", "nan", "other_template", "unsafe", "not_a_model"])
def test_bad_model_files_are_clear_errors_in_both_runtimes(tmp_path, kind, runtime):
    """Both runtimes refuse a bad model file with a ValueError naming it; a pickle that would run
    code (here a global function) is refused, not run."""
    src = DEFAULT_MODEL.read_bytes()
    bad = tmp_path / f"{kind}.pt"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "garbage":
        bad.write_bytes(b"not a model")
    elif kind == "truncated":
        bad.write_bytes(src[: len(src) // 2])
    elif kind == "unsafe":
        torch.save({"format": "glvd-model/1", "config": {}, "model": {}, "template_sha256": "", "x": os.system}, bad)
    elif kind == "not_a_model":
        torch.save({"weights": torch.zeros(3)}, bad)
    else:
        ck = torch.load(DEFAULT_MODEL, weights_only=True)
        if kind == "nan":
            ck["model"]["g_v.l1.bias"] = ck["model"]["g_v.l1.bias"] * float("nan")
        else:
            ck["template_sha256"] = "0" * 64
        torch.save(ck, bad)
    with pytest.raises(ValueError) as e:
        Reconstructor.from_pretrained(bad, device="cpu", runtime=runtime)
    assert str(bad) in str(e.value)
    if kind == "unsafe" and runtime == "numpy":
        assert "unsupported global" in str(e.value)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        Reconstructor.from_pretrained(tmp_path / "missing.pt", device="cpu", runtime=runtime)


def test_the_whole_pipeline_runs_where_torch_mediapipe_and_scipy_do_not_import(tmp_path, runtimes):
    """A Python where "import torch", "import mediapipe" and "import scipy" fail (Blender with
    what the extension carries): detection, the bundled model, the fit, the neutral expression,
    the texture and the ARKit keys all run, on the numpy runtime, and the mesh is the torch
    runtime's."""
    import cv2

    photo = ROOT / "docs" / "examples" / "astronaut.png"
    ref = runtimes[0].reconstruct([cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)]).final_vertices
    script = f"""
import sys
sys.modules["torch"] = sys.modules["mediapipe"] = sys.modules["scipy"] = None
import cv2
import numpy as np
from glvd_core import Reconstructor
from glvd_core.fitting import FitOptions
from glvd_core.pipeline import Inputs, PipelineOptions, run
from glvd_core.cameras import Camera
img = cv2.cvtColor(cv2.imread({str(photo)!r}), cv2.COLOR_BGR2RGB)
inputs = Inputs(["astronaut"], [img], [Camera.from_fov(img.shape[1], img.shape[0], 40.0)], None, [1.0])
rec = Reconstructor.from_pretrained()
res = run(rec, inputs, PipelineOptions(texture_size=256, neutral=True, arkit=True, fit=FitOptions()))
assert rec.runtime == "numpy" and res.texture is not None and len(res.arkit) == 52 and len(res.fit.steps)
np.save({str(tmp_path / 'v.npy')!r}, res.reconstruction.final_vertices)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert np.abs(np.load(tmp_path / "v.npy") - ref).max() < SAME_M

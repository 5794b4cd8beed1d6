import bpy

from . import core, ops
from .props import settings


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
        col.prop(s, "iterations")
        col.prop(s, "clip")
        col.prop(s, "seed")
        col.prop(s, "fov")
        layout.prop(s, "device")
        ok, msg = core.runtime_report()
        if ok and ops.runtime_for(s.device) == "numpy":
            msg = "Runtime: numpy, CPU"
        layout.label(text=msg, icon="CHECKMARK" if ok else "ERROR")
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
        row = layout.row()
        row.scale_y = 1.5
        row.enabled = ok
        row.operator("glvd.reconstruct", icon="USER")
        if s.status:
            layout.label(text=s.status)
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
                r.label(text=f"photo {p['view'] + 1}, vertex {p['vertex']} → ({p['pixel'][0]:.0f}, {p['pixel'][1]:.0f})"
                             + (f": {err:.1f} px off" if err is not None else ""))
                r.operator("glvd.remove_pin", text="", icon="X").index = k
            row = box.row()
            row.enabled = ok
            row.operator("glvd.refit", icon="FILE_REFRESH")
        if face is not None and "glvd" in face:
            box = layout.box()
            box.label(text=f"Export {face.name}", icon="EXPORT")
            row = box.row(align=True)
            row.prop(s, "export_format", text="")
            row.operator("glvd.export_face", text="Export…")

"""GLVD for Blender: reconstruct a 3D face mesh from reference photos (Guided Learned Vertex Descent).

A thin adapter: glvd_core does the work and returns a ``Reconstruction``; this package turns it
into scene data (scene_writer/) and provides the panel and operators."""

import bpy

from . import core, ops, panel, prefs, props

classes = (
    prefs.GLVD_AP_preferences,
    props.GLVD_PG_photo,
    props.GLVD_PG_settings,
    ops.GLVD_OT_reconstruct,
    ops.GLVD_OT_refit,
    ops.GLVD_OT_add_pin,
    ops.GLVD_OT_drag_pin,
    ops.GLVD_OT_remove_pin,
    ops.GLVD_OT_add_photo,
    ops.GLVD_OT_remove_photo,
    ops.GLVD_OT_export_face,
    panel.GLVD_UL_photos,
    panel.GLVD_PT_main,
)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)
    props.register_pointer()
    p = prefs.preferences()
    core.use_environment((p.python_environment if p else "") or core.default_environment())


def unregister() -> None:
    ops.wait_for_preload()
    props.unregister_pointer()
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
    ops._MODELS.clear()
    ops._PREPARED.clear()
    core.forget_environments()

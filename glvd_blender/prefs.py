import bpy
from bpy.props import StringProperty

from . import core


def _env_changed(self, context):
    err = core.use_environment(self.python_environment)
    if err:
        print(f"GLVD: {err}")
    for scene in bpy.data.scenes:  # a failure said before the environment was fixed is stale now
        s = getattr(scene, "glvd", None)
        if s is not None and s.status.startswith("Failed"):
            s.status = ""


class GLVD_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_environment: StringProperty(
        name="Python environment",
        description="Optional: a Python environment (its folder, or its site-packages) for this Blender's "
                    "Python with PyTorch, for CUDA (for example the .venv made by scripts/setup.sh). The platform "
                    "zip carries everything the CPU needs",
        subtype="DIR_PATH", default="", update=_env_changed)

    def draw(self, context: bpy.types.Context) -> None:
        col = self.layout.column()
        col.prop(self, "python_environment")
        ok, msg = core.runtime_report()
        col.label(text=msg, icon="CHECKMARK" if ok else "ERROR")
        col.label(text="Not needed on the CPU: the platform zip carries everything. For CUDA, point it at an")
        col.label(text="environment with PyTorch for this Blender's Python (e.g. the .venv of scripts/setup.sh).")
        col.label(text="A zip without wheels (--platform none) needs opencv-python-headless and pillow there too.")


def preferences(context: bpy.types.Context = None) -> bpy.types.AddonPreferences:
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(__package__)
    return addon.preferences if addon else None

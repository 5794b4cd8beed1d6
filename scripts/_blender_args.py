"""Arguments of a script run as ``blender -b --python X.py -- ARGS`` or ``python X.py ARGS``."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def script_args() -> list:
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:]
    try:
        import bpy

        if bpy.app.binary_path:  # a real Blender without "--": no script arguments
            return []
    except ImportError:
        pass
    return sys.argv[1:]


def use_checkout():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def reconstruct_photo_in_scene(photo, **settings):
    """Factory-empty scene, add-on registered, ``photo`` reconstructed with the panel's
    ``settings`` (scene.glvd fields); returns the face object. The caller unregisters
    (``glvd_blender.unregister()``)."""
    use_checkout()
    import bpy

    import glvd_blender
    from glvd_blender import ops

    bpy.ops.wm.read_factory_settings(use_empty=True)
    glvd_blender.register()
    try:
        s = bpy.context.scene.glvd
        s.photos.add().filepath = str(Path(photo).resolve())
        for k, v in settings.items():
            setattr(s, k, v)
        job = ops.gather(bpy.context)
        job.run()
        if job.error:
            raise SystemExit(job.error)
        return ops.write(bpy.context, job)["face"]
    except BaseException:
        glvd_blender.unregister()
        raise


def cycles_with_sun(scene, samples: int):
    """Cycles on the CPU, transparent film, one sun from the upper front."""
    import bpy

    scene.render.engine = "CYCLES"
    scene.cycles.samples = samples
    scene.cycles.device = "CPU"
    scene.render.film_transparent = True
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.rotation_euler = (0.9, 0.2, 0.3)
    scene.collection.objects.link(sun)
    return sun

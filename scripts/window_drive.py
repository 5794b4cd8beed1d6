"""Drive the GLVD panel in a real, windowed Blender as an artist would (run by
scripts/blender_window.sh inside its chroot, under Xvfb):

    blender --python window_drive.py -- --photo PHOTO --out DIR

Steps, each recorded in DIR/window.json with what it saw: the GLVD sidebar tab draws with the
photo added; Reconstruct Face (pressed as the button does, INVOKE) runs off the UI thread with a
progress bar, refuses a second press, and creates the face; the photo behind the photo camera
lines up with the face at the scene's own render size; Esc (a real key press, xdotool) during a
second reconstruction leaves the scene as it was; Drag Pin (real mouse press, drag, release on
the nose) stores the pin and its Refit pulls that point toward its pixel. Screenshots come from
the X display (``import -window root``): Blender's own screenshot operator draws black under
Xvfb. Blender quits when done; window.json's "ok" says whether every step passed.
"""
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import bpy
import numpy as np

ARGS = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
PHOTO = ARGS[ARGS.index("--photo") + 1]
OUT = Path(ARGS[ARGS.index("--out") + 1])
REPORT = dict(blender=bpy.app.version_string, steps={}, ok=False)


class StepFailed(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise StepFailed(message)


def sh(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60).stdout.strip()


def blender_window_xy():
    """Top-left corner of Blender's X window on the display."""
    wid = sh("xdotool", "search", "--onlyvisible", "--class", "blender").split()[0]
    geo = dict(line.strip().split(": ", 1) for line in sh("xdotool", "getwindowgeometry", wid).splitlines()[1:])
    x, y = (int(v) for v in geo["Position"].split()[0].split(","))
    return wid, x, y


def screen_of(window, area, region, rx, ry):
    """Display pixel (top-left origin) of a point of ``region`` (Blender: bottom-left origin)."""
    _, wx, wy = blender_window_xy()
    return int(wx + region.x + rx), int(wy + window.height - (region.y + ry))


def screenshot(name, window=None, area=None):
    """The display as a PNG, cropped to ``area`` when given (an area or region of ``window``:
    the sidebar, the 3D view)."""
    full = OUT / f"_{name}_full.png"
    sh("import", "-window", "root", str(full))
    target = OUT / f"{name}.png"
    if area is None:
        full.rename(target)
    else:
        _, wx, wy = blender_window_xy()
        x, y = wx + area.x, wy + window.height - (area.y + area.height)
        sh("convert", str(full), "-crop", f"{area.width}x{area.height}+{x}+{y}", "+repage", str(target))
        full.unlink()
    return target.name


def read_png(path):
    """(H, W, 3) float array, top row first."""
    img = bpy.data.images.load(str(path))
    w, h = img.size
    px = np.array(img.pixels[:], np.float32).reshape(h, w, 4)[::-1, :, :3]
    bpy.data.images.remove(img)
    return px


def view3d():
    win = bpy.context.window_manager.windows[0]
    area = max((a for a in win.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    region = next(r for r in area.regions if r.type == "WINDOW")
    sidebar = next(r for r in area.regions if r.type == "UI")
    return win, area, region, sidebar


def override():
    win, area, region, _ = view3d()
    return bpy.context.temp_override(window=win, area=area, region=region)


def objects():
    return sorted(o.name for o in bpy.data.objects)


def redraw():
    for w in bpy.context.window_manager.windows:
        for a in w.screen.areas:
            a.tag_redraw()


def wait_job(started, timeout=120):
    """Yield until no job runs; record the UI thread's pauses (each yield is a UI tick)."""
    from bl_ext.user_default.glvd import ops

    ticks, last, longest = 0, time.time(), 0.0
    while ops.active_job() is not None:
        check(time.time() - started < timeout, "the job did not end")
        yield 0.05
        now = time.time()
        longest, last, ticks = max(longest, now - last), now, ticks + 1
    return ticks, longest


def face_vertices_world(face):
    """(V, 3) world positions of the face as shown now (the extension's own evaluation)."""
    from bl_ext.user_default.glvd.scene_writer import evaluated_coordinates

    mw = np.array(face.matrix_world, np.float64)
    return evaluated_coordinates(face).astype(np.float64) @ mw[:3, :3].T + mw[:3, 3]


def region_xy(region, rv3d, V):
    """(N, 2) region pixels of world points, and which are in front of the view (Drag Pin's own
    projection)."""
    from bl_ext.user_default.glvd.pin_drag import region_coords

    return region_coords(V, np.array(rv3d.perspective_matrix), (region.width, region.height))


def step_panel():
    win, area, region, sidebar = view3d()
    for o in list(bpy.data.objects):  # the startup cube would hide the face
        bpy.data.objects.remove(o)
    space = area.spaces.active
    space.show_region_ui = True
    yield 0.3
    sidebar = view3d()[3]
    with bpy.context.temp_override(window=win, area=area, region=sidebar):
        sidebar.active_panel_category = "GLVD"
    with override():
        check(bpy.ops.glvd.add_photo(filepath=PHOTO) == {"FINISHED"}, "add_photo failed")
    redraw()
    yield 2.0  # the panel's first draw starts loading the model
    sidebar = view3d()[3]
    check(sidebar.active_panel_category == "GLVD", "the GLVD tab did not open")
    rec = dict(category=sidebar.active_panel_category, photos=[p.filepath for p in bpy.context.scene.glvd.photos],
               sidebar_px=[sidebar.width, sidebar.height])
    rec["screenshot"] = screenshot("panel_before", win, sidebar)
    return rec


def step_reconstruct():
    from bl_ext.user_default.glvd import ops

    win, area, _, sidebar = view3d()
    before = objects()
    t0 = time.time()
    with override():
        res = bpy.ops.glvd.reconstruct("INVOKE_DEFAULT")
    check(res == {"RUNNING_MODAL"}, f"Reconstruct did not run in the background: {res}")
    rec = dict(invoke=sorted(res))
    yield 0.3
    check(ops.active_job() is not None, "no job running right after the press")
    rec["status_while_running"] = bpy.context.scene.glvd.status
    with override():
        rec["second_press_refused"] = not bpy.ops.glvd.reconstruct.poll()
    check(rec["second_press_refused"], "a second press was accepted while the job ran")
    rec["screenshots"] = [screenshot("progress", win, sidebar)]
    ticks, longest = yield from wait_job(t0)
    rec["status"] = bpy.context.scene.glvd.status
    check(rec["status"].startswith("Done"), f"status: {rec['status']}")
    rec.update(wall_s=round(time.time() - t0, 2), ui_ticks=ticks, ui_longest_wait_s=round(longest, 2))
    rec["created"] = sorted(set(objects()) - set(before))
    check("GLVD Face" in rec["created"] and "GLVD Camera 0" in rec["created"], f"created: {rec['created']}")
    redraw()
    yield 0.5
    rec["screenshots"].append(screenshot("panel_after", win, sidebar))
    return rec


def look_through(cam):
    win, area, region, _ = view3d()
    bpy.context.scene.camera = cam
    rv3d = area.spaces.active.region_3d
    rv3d.view_perspective = "CAMERA"
    with override():
        bpy.ops.view3d.view_center_camera()
    return rv3d


def step_camera_view():
    """The photo behind the camera where the face is: the screen at the face's vertices (face
    hidden) against the photo at their pixels, for the frame method set and for Blender's
    default (STRETCH)."""
    from bl_ext.user_default.glvd import scene_writer

    win, area, region, _ = view3d()
    scene, face, cam = bpy.context.scene, bpy.data.objects["GLVD Face"], bpy.data.objects["GLVD Camera 0"]
    rv3d = look_through(cam)
    bg = cam.data.background_images[0]
    w, h = bg.image.size
    photo = read_png(PHOTO)
    V = face_vertices_world(face)
    uv = scene_writer.blender_camera_to_cv(cam, w, h).project(V)
    hidden = [o for o in bpy.data.objects if o.type in ("MESH", "EMPTY")]
    for o in hidden:
        o.hide_viewport = True
    alpha, bg.alpha = bg.alpha, 1.0
    overlay = area.spaces.active.overlay  # grid, axes, cursor, camera frame: not the photo (the
    switches = ("show_floor", "show_axis_x", "show_axis_y", "show_cursor", "show_extras", "show_text")  # photo is an overlay)
    saved = {k: getattr(overlay, k) for k in switches}
    for k in switches:
        setattr(overlay, k, False)
    rec = dict(render_px=[scene.render.resolution_x, scene.render.resolution_y], frame_method=bg.frame_method)
    corr = {}
    for method in ("STRETCH", rec["frame_method"]):
        bg.frame_method = method
        redraw()
        yield 0.8
        shot = read_png(OUT / screenshot(f"_align_{method}", win, area))
        xy, front = region_xy(region, rv3d, V)
        sx = (region.x - area.x + xy[:, 0]).astype(int)
        sy = (area.height - (region.y - area.y + xy[:, 1])).astype(int)
        ok = front & (sx >= 0) & (sy >= 0) & (sx < shot.shape[1]) & (sy < shot.shape[0]) \
            & (uv[:, 0] >= 0) & (uv[:, 1] >= 0) & (uv[:, 0] < w - 1) & (uv[:, 1] < h - 1)
        wx, wy = region.x + xy[:, 0], region.y + xy[:, 1]  # window pixels: not under a header or the sidebar
        for r in area.regions:
            if r.type in ("HEADER", "TOOL_HEADER", "UI", "TOOLS") and r.width > 1 and r.height > 1:
                ok &= ~((wx >= r.x) & (wx < r.x + r.width) & (wy >= r.y) & (wy < r.y + r.height))
        a = shot[sy[ok], sx[ok]].mean(1)
        b = photo[uv[ok, 1].astype(int), uv[ok, 0].astype(int)].mean(1)
        corr[method] = round(float(np.corrcoef(a, b)[0, 1]), 3)
        rec.setdefault("vertices_sampled", {})[method] = int(ok.sum())
        (OUT / f"_align_{method}.png").unlink()
    for o in hidden:
        o.hide_viewport = False
    bg.alpha = alpha
    for k, v in saved.items():
        setattr(overlay, k, v)
    rec["photo_alignment_corr"] = corr
    check(corr[rec["frame_method"]] > 0.8, f"the photo does not line up with the face: {corr}")
    check(corr[rec["frame_method"]] > corr["STRETCH"] + 0.2 or rec["frame_method"] == "STRETCH",
          f"no better than a stretched photo: {corr}")
    return rec


def step_escape():
    from bl_ext.user_default.glvd import ops

    win, area, region, _ = view3d()
    before = objects()
    wid, _, _ = blender_window_xy()
    sh("xdotool", "mousemove", *map(str, screen_of(win, area, region, region.width // 2, region.height // 2)))
    sh("xdotool", "windowfocus", wid)
    t0 = time.time()
    with override():
        check(bpy.ops.glvd.reconstruct("INVOKE_DEFAULT") == {"RUNNING_MODAL"}, "second Reconstruct did not start")
    yield 0.2
    sh("xdotool", "key", "Escape")
    yield from wait_job(t0)
    status = bpy.context.scene.glvd.status
    check(status.startswith("Cancelled"), f"Esc did not cancel: {status}")
    check(objects() == before, "Esc left the scene changed")
    return dict(status=status, objects_unchanged=True)


def step_drag_pin():
    """Press on the nose tip (the face's point nearest the camera), drag 18 px, release."""
    from bl_ext.user_default.glvd import ops, scene_writer

    win, area, region, _ = view3d()
    face, cam = bpy.data.objects["GLVD Face"], bpy.data.objects["GLVD Camera 0"]
    for o in bpy.context.view_layer.objects:
        o.select_set(False)
    face.select_set(True)
    bpy.context.view_layer.objects.active = face
    rv3d = look_through(cam)
    redraw()
    yield 0.5
    V = face_vertices_world(face)
    depth = (V - np.array(cam.matrix_world.translation)) @ -np.array(cam.matrix_world.to_3x3().col[2])
    nose = int(np.argmin(depth))
    xy, _ = region_xy(region, rv3d, V)
    start = screen_of(win, area, region, *xy[nose])
    wid, _, _ = blender_window_xy()
    sh("xdotool", "mousemove", *map(str, start))
    sh("xdotool", "windowfocus", wid)
    yield 0.3
    with override():
        res = bpy.ops.glvd.drag_pin("INVOKE_DEFAULT")
    check(res == {"RUNNING_MODAL"}, f"Drag Pin did not start: {res}")
    yield 0.2
    sh("xdotool", "mousedown", "1")
    yield 0.3
    for k in range(1, 7):
        sh("xdotool", "mousemove", str(start[0] + 3 * k), str(start[1] - k))
        yield 0.05
    redraw()
    yield 0.5
    rec = dict(invoke=sorted(res), screenshot=screenshot("drag_pin", win, area))
    t0 = time.time()
    sh("xdotool", "mouseup", "1")
    yield 0.3
    yield from wait_job(t0)
    face, cam = bpy.data.objects["GLVD Face"], bpy.data.objects["GLVD Camera 0"]  # the refit made them anew
    pins = ops.face_pins(face)
    check(len(pins) == 1, f"pins stored: {pins}")
    pin = pins[0]
    rec.update(vertex=pin["vertex"], pin=pin, status=bpy.context.scene.glvd.status)
    w, h = cam.data.background_images[0].image.size
    proj = scene_writer.blender_camera_to_cv(cam, w, h)
    target = np.array(pin["pixel"])
    rec["photo_px_from_target_before"] = round(float(np.linalg.norm(proj.project(V[pin["vertex"]][None])[0] - target)), 2)
    after = face_vertices_world(face)[pin["vertex"]]
    rec["photo_px_from_target_after"] = round(float(np.linalg.norm(proj.project(after[None])[0] - target)), 2)
    rec["pin_errors"] = [None if e is None else round(e, 2) for e in ops.face_pin_errors(face)]
    check(rec["status"].startswith("Refit"), f"status: {rec['status']}")
    check(rec["photo_px_from_target_after"] < rec["photo_px_from_target_before"],
          "the refit did not move the point toward the pin")
    return rec


def step_photo_sized_view():
    """The README's view through the camera: the render frame the photo's size, so the frame is
    the photo."""
    win, area, _, _ = view3d()
    scene, cam = bpy.context.scene, bpy.data.objects["GLVD Camera 0"]
    w, h = cam.data.background_images[0].image.size
    scene.render.resolution_x, scene.render.resolution_y = w, h
    look_through(cam)
    redraw()
    yield 1.0
    return dict(screenshot=screenshot("viewport_camera", win, area))


STEPS = [("panel", step_panel), ("reconstruct", step_reconstruct), ("camera_view", step_camera_view),
         ("escape", step_escape), ("drag_pin", step_drag_pin), ("photo_sized_view", step_photo_sized_view)]


def driver():
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        yield 1.0
        for name, fn in STEPS:
            t0 = time.time()
            rec = yield from fn()
            rec["seconds"] = round(time.time() - t0, 2)
            REPORT["steps"][name] = rec
            (OUT / "window.json").write_text(json.dumps(REPORT, indent=1))
        REPORT["ok"] = True
    except Exception as e:  # noqa: BLE001 - recorded, and Blender still quits
        REPORT["error"] = f"{type(e).__name__}: {e}"
        REPORT["traceback"] = traceback.format_exc()
    (OUT / "window.json").write_text(json.dumps(REPORT, indent=1))
    bpy.ops.wm.quit_blender()


_GEN = driver()


def tick():
    try:
        return next(_GEN)
    except StopIteration:
        return None


bpy.app.timers.register(tick, first_interval=1.0)

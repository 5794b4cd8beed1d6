"""Photo cameras: glvd_core (OpenCV) cameras <-> Blender camera objects, with the photo behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
import numpy as np

from .frames import CV_CAM_TO_BLENDER_CAM

if TYPE_CHECKING:  # glvd_core is imported lazily (core.glvd_core)
    from glvd_core.cameras import Camera


def camera_matrix_world(cam: Camera, M: np.ndarray) -> np.ndarray:
    """Blender matrix_world (4x4) of a glvd_core (OpenCV) camera after the frame map M."""
    C = np.eye(4)
    C[:3, :3] = (CV_CAM_TO_BLENDER_CAM @ cam.R).T  # Blender camera axes in the output frame
    C[:3, 3] = cam.center_world
    return M @ C


def blender_camera_to_cv(obj: bpy.types.Object, width: int, height: int) -> Camera:
    """glvd_core Camera (OpenCV, Blender world) from a Blender camera object and image size
    (pixels). Only perspective cameras; sensor fit AUTO, HORIZONTAL and VERTICAL."""
    from ..core import glvd_core

    Camera = glvd_core().cameras.Camera
    mw = np.array(obj.matrix_world, np.float64)
    Rbw = mw[:3, :3] / np.linalg.norm(mw[:3, :3], axis=0)  # camera->world rotation (no scale)
    R = CV_CAM_TO_BLENDER_CAM @ Rbw.T
    t = -R @ mw[:3, 3]
    d = obj.data
    if d.type != "PERSP":
        raise ValueError(f"camera {obj.name}: only perspective cameras are supported")
    if d.sensor_fit == "VERTICAL":
        side, sensor = height, d.sensor_height
    elif d.sensor_fit == "HORIZONTAL":
        side, sensor = width, d.sensor_width
    else:  # AUTO: the sensor width spans the longer image side
        side, sensor = max(width, height), d.sensor_width
    f = d.lens / sensor * side
    cx = (width - 1) / 2 - d.shift_x * side
    cy = (height - 1) / 2 + d.shift_y * side
    return Camera(R, t, [[f, 0, cx], [0, f, cy], [0, 0, 1]], width, height)


def setup_camera_data(cd: bpy.types.Camera, cam: Camera) -> None:
    """Set a Blender camera's lens, sensor and shift to a glvd_core camera's intrinsics. The
    sensor is fitted to the photo's longer side explicitly (AUTO would fit it to the render's
    longer side, and the view through the camera would change with the scene's render size)."""
    side = max(cam.width, cam.height)
    cd.sensor_fit = "HORIZONTAL" if cam.width >= cam.height else "VERTICAL"
    cd.sensor_width = cd.sensor_height = 36.0
    cd.lens = float(cam.K[0, 0] / side * 36.0)
    cd.shift_x = float(-(cam.K[0, 2] - (cam.width - 1) / 2) / side)
    cd.shift_y = float((cam.K[1, 2] - (cam.height - 1) / 2) / side)
    cd.clip_start = 0.01
    cd.clip_end = 100.0


def fit_background(cd: bpy.types.Camera, photo_size: tuple, render_size: tuple) -> None:
    """Draw the photo behind the camera where the camera projects it, for a render of
    ``render_size`` (w, h) pixels: the photo's longer side spans the frame's side of the same
    axis (the sensor fit of :func:`setup_camera_data`), so it fits inside the frame when it is
    relatively longer along that axis than the frame, and fills (crops) it otherwise. A
    stretched photo (Blender's default) would sit elsewhere than the face whenever the render's
    aspect differs from the photo's."""
    (w, h), (rw, rh) = photo_size, render_size
    along_x = w >= h
    photo_longer = (w / h >= rw / rh) if along_x else (h / w >= rh / rw)
    for bg in cd.background_images:
        bg.frame_method = "FIT" if photo_longer else "CROP"


def render_size(scene: bpy.types.Scene) -> tuple:
    """The scene's render frame (w, h) in square pixels: the aspect the camera view is drawn in."""
    r = scene.render
    return r.resolution_x * r.pixel_aspect_x, r.resolution_y * r.pixel_aspect_y


def add_cameras(scene: bpy.types.Scene, col: bpy.types.Collection, cameras: list, photos: list, M: np.ndarray,
                created: dict, set_scene: bool = False) -> None:
    """One camera object per result camera ("GLVD Camera i"), its photo as a background image,
    packed into the .blend (a relative path breaks when the .blend moves). ``set_scene``: the
    first becomes the scene camera and sets the render size to its photo's; otherwise the
    scene's camera and render settings are left as they are."""
    from mathutils import Matrix

    for i, cam in enumerate(cameras):
        cd = bpy.data.cameras.new(f"GLVD Camera {i}")
        created["cameras"].append(cd)
        setup_camera_data(cd, cam)
        co = bpy.data.objects.new(f"GLVD Camera {i}", cd)
        co["glvd_view"] = i  # which photo: pins placed through this camera belong to it
        created["objects"].append(co)
        col.objects.link(co)
        co.matrix_world = Matrix(camera_matrix_world(cam, M).tolist())
        if i < len(photos) and photos[i]:
            img = bpy.data.images.load(str(photos[i]), check_existing=True)
            created["images"].append(img)
            if img.packed_file is None:
                img.pack()
            bg = cd.background_images.new()
            bg.image = img
            bg.alpha = 0.6
            cd.show_background_images = True
        if i == 0 and set_scene:
            scene.render.resolution_x, scene.render.resolution_y = int(cam.width), int(cam.height)
            scene.render.resolution_percentage = 100
            scene.camera = co
        fit_background(cd, (cam.width, cam.height), render_size(scene))

"""Shape keys on the face: the ARKit expression keys and the descent's steps, keyed on the
timeline (``step_00`` … ``step_T``, then the fit's ``fit_01`` …, one every ``frames_per_step``
frames)."""

from __future__ import annotations

import bpy
import numpy as np


def linear_keys(id_data: bpy.types.ID) -> None:
    """Make every keyframe of ``id_data``'s action linear (Blender < 5.0 and 5.0's slotted actions)."""
    ad = id_data.animation_data
    if ad is None or ad.action is None:
        return
    act = ad.action
    if hasattr(act, "fcurves"):  # Blender < 5.0 (classic / layered with legacy accessor)
        curves = list(act.fcurves)
    else:  # Blender 5.0: slotted actions
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

        curves = list(action_ensure_channelbag_for_slot(act, ad.action_slot).fcurves)
    for fc in curves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"


def add_basis(face: bpy.types.Object) -> None:
    """The "Basis" key (the rest shape) that relative keys are measured from."""
    face.shape_key_add(name="Basis", from_mix=False)
    face.data.shape_keys.use_relative = True


def add_arkit_keys(face: bpy.types.Object, rest_local: np.ndarray, arkit: dict, R: np.ndarray) -> None:
    """One key per ARKit name: the rest shape plus its (V, 3) offsets (result frame, rotated into
    Blender by ``R`` (3, 3)), on a 0..1 slider at 0, ready to be driven (Live Link, Faceit, ...)."""
    for n, d in arkit.items():
        kb = face.shape_key_add(name=n, from_mix=False)
        kb.data.foreach_set("co", (rest_local + (np.asarray(d, np.float64) @ R.T)).astype(np.float32).ravel())
        kb.slider_min, kb.slider_max = 0.0, 1.0
        kb.value = 0.0  # keys added from Python start at 1


def add_step_keys(scene: bpy.types.Scene, face: bpy.types.Object, shapes: list[tuple[str, np.ndarray]], start: int,
                  frames_per_step: int, rest_follows: bool, created: dict, set_scene: bool = False) -> int:
    """One key per (name, (V, 3) object-local shape) in ``shapes`` (``step_00`` … then
    ``fit_01`` …), each relative to the rest shape and keyed 1 on its own frame, 0 on its
    neighbours': frame ``start + k * frames_per_step`` shows shape k exactly, linear blends in
    between. ``rest_follows``: the rest shape (e.g. the neutralised face) differs from the last
    shape and shows one step after it. Extends the scene's end frame to cover them; returns the
    last frame."""
    T = len(shapes) - 1
    key = face.data.shape_keys
    for name, co in shapes:
        kb = face.shape_key_add(name=name, from_mix=False)
        kb.data.foreach_set("co", co.ravel())
    for s, (name, _) in enumerate(shapes):
        kb = key.key_blocks[name]
        fv = [(start + s * frames_per_step, 1.0)]
        if s > 0:
            fv.append((start + (s - 1) * frames_per_step, 0.0))
        if s < T or rest_follows:
            fv.append((start + (s + 1) * frames_per_step, 0.0))
        for f, v in fv:
            kb.value = v
            kb.keyframe_insert("value", frame=f)
    created["actions"].append(key.animation_data.action)
    linear_keys(key)
    end = start + (T + rest_follows) * frames_per_step
    if set_scene:  # the frame range over the keyed steps, only when asked
        scene.frame_end = max(scene.frame_end, end)
    return end

"""The 52 ARKit blendshapes on a reconstruction, from the ICT expression modes of the template.

ICT-FaceKit's expression modes are ARKit's, named with ``_L``/``_R`` for the subject's own
left/right (x > 0 in the template: the viewer's right, as ARKit's face frame). Mapping to
Apple's spelling: ``eyeBlink_L`` -> ``eyeBlinkLeft`` etc.; ARKit's single ``browInnerUp`` and
``cheekPuff`` are the sums of ICT's left and right halves; ``tongueOut`` has no counterpart
(the template has no tongue): its key exists, so rigs bind all 52, and moves nothing. ICT's
extra modes (``PupilDilate_*``, ``cheekRaiser_*``) are not ARKit and are not transferred.
"""

from __future__ import annotations

import numpy as np

from ..template import Template

# Apple's ARFaceAnchor.BlendShapeLocation names, in Apple's documented order
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)


def _ict_sources(arkit: str) -> tuple:
    """ICT mode names whose sum is the ARKit blendshape ``arkit`` (empty: none)."""
    if arkit in ("browInnerUp", "cheekPuff"):
        return (arkit + "_L", arkit + "_R")
    if arkit == "tongueOut":
        return ()
    for side, suffix in (("Left", "_L"), ("Right", "_R")):
        if arkit.endswith(side) and arkit not in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
            return (arkit[: -len(side)] + suffix,)
    return (arkit,)


ICT_TO_ARKIT = {name: _ict_sources(name) for name in ARKIT_NAMES}


def similarity_to(template: Template, vertices: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) with ``vertices ≈ s R template + t`` fitted on the narrow face region (Umeyama)."""
    from ..geometry import umeyama

    sel = np.asarray(template.narrow_face_mask, bool)
    return umeyama(template.vertices_m[sel].astype(np.float64), np.asarray(vertices, np.float64)[sel])


def arkit_offsets(template: Template, vertices: np.ndarray) -> dict:
    """ARKit name -> (V, 3) float32 offsets (metres, in the frame of ``vertices``) such that
    ``vertices + sum_j w_j offsets[j]`` is the reconstruction with ARKit weights ``w`` (0..1).

    The template's modes are carried into the reconstruction's frame and size by the similarity
    from the template to ``vertices`` (rotation and uniform scale), so they follow the head pose
    of a camera-frame reconstruction and scale with the face."""
    s, R, _ = similarity_to(template, vertices)
    names = template.expression_names
    out = {}
    for arkit, sources in ICT_TO_ARKIT.items():
        d = np.zeros((template.num_vertices, 3), np.float64)
        for src in sources:
            d += template.expression_modes_m[names.index(src)]
        out[arkit] = (s * d @ R.T).astype(np.float32)
    return out

"""Inference: ``Reconstructor`` runs the guided learned vertex descent on one or more photos.

Output frames (metres):
- no cameras given (one photo): the photo's camera frame, OpenCV axes (x right, y down,
  z forward), camera at the origin, default field of view ``DEFAULT_FOV_DEG`` across the longer
  image side unless ``fov_deg`` is given. A single photo fixes shape and pose, not absolute
  scale: the head is placed at the depth at which an average head fills the crop.
- cameras given: the world frame of those cameras.
- several photos without cameras: cameras are estimated from the detected landmarks (PnP
  against the template, refined jointly); the world frame is then the head frame (template
  ICT axes: x to the viewer's right, y up, z out of the face; origin at the template centroid).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from .cameras import DEFAULT_FOV_DEG, Camera, CameraError
from .io import InputError, atomic_write_bytes, first_line, is_number_list, npz_bytes, obj_text, read_json
from .model.config import GLVDConfig, InferenceConfig, get_config
from .model.frame import Frame, make_frame
from .template import Template, load_template

if TYPE_CHECKING:
    import torch

    from .model.glvd import GLVD
    from .model.identity_cnn import IdentityCNN
    from .runtime.descent import NumpyGLVD

DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "glvd_default.pt"
# Config fields a trained model's user may change (they do not touch the weights).
INFERENCE_FIELDS = tuple(f.name for f in fields(InferenceConfig))
Runtime = Literal["auto", "torch", "numpy"]
RUNTIMES = ("auto", "torch", "numpy")
RUNAWAY_LIMIT = 8.0  # normalised units (~1.3 m): a vertex beyond this means the descent diverged


class Cancelled(Exception):
    """The progress callback asked to stop (returned False)."""


class DescentError(RuntimeError):
    """The descent produced non-finite or runaway positions; nothing was returned."""


MAX_ITERATIONS = 100  # descent steps a call may ask for: every step is kept (about 1 MB each)


@dataclass(frozen=True)
class ReconstructOptions:
    """Per-call settings of :meth:`Reconstructor.reconstruct`; None takes the model's own.

    Attributes:
        iterations: descent steps T (the result keeps T + 1 shapes); the bundled model's is 12.
        clip: displacement clip per step (normalised units; the model's, 0.1).
        seed: seeds the keypoints' uniform start; the result is deterministic for a seed.
        keypoint_warmup: the first W of the steps move only the keypoints.
        fov_deg: field of view (degrees, longer side) of photos without cameras or intrinsics
            (default ``DEFAULT_FOV_DEG``).
        detect: detect faces when no landmarks are given (False: the whole photo, no heatmaps).
        keypoints: keypoint index -> (3,) position in the output frame (metres) where the artist
            put it: held there through the descent (guided editing); None: all move freely.
    """

    iterations: int | None = None
    clip: float | None = None
    seed: int = 0
    keypoint_warmup: int | None = None
    fov_deg: float | None = None
    detect: bool = True
    keypoints: dict | None = None

    def __post_init__(self):
        if self.iterations is not None and not 0 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be within 0..{MAX_ITERATIONS} (the panel's range), got {self.iterations}")
        for j, x in (self.keypoints or {}).items():
            if not isinstance(j, int) or isinstance(j, bool) or j < 0:
                raise ValueError(f"keypoint index {j!r} is not a non-negative integer")
            if np.shape(x) != (3,) or not np.isfinite(np.asarray(x, np.float64)).all():
                raise ValueError(f"keypoint {j}: expected 3 finite coordinates (metres), got {x!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError("clip must be > 0")


def load_held_keypoints(path: str | Path, num_keypoints: int | None = None) -> dict[int, tuple[float, float, float]]:
    """``keypoints.json`` (``--keypoints``): ``{"keypoints": {"INDEX": [x, y, z], ...}}``, keypoint
    index -> where the artist put it, in the output frame (metres; the frame the result is
    written in); ``num_keypoints``: the model's count, when known, to check the indices against.
    Raises :class:`InputError` naming the file and the first bad entry."""
    p = Path(path)
    data = read_json(p)
    if not isinstance(data, dict) or not isinstance(data.get("keypoints"), dict):
        raise InputError(f'{p}: expected {{"keypoints": {{"INDEX": [x, y, z], ...}}}}')
    out = {}
    for key, x in data["keypoints"].items():
        if not str(key).isdigit():
            raise InputError(f"{p}: keypoint {key!r}: the index must be a non-negative integer")
        if not is_number_list(x, 3):
            raise InputError(f"{p}: keypoint {key}: expected [x, y, z] finite metres, got {x!r}")
        out[int(key)] = tuple(float(c) for c in x)
    if num_keypoints is not None:
        check_keypoint_indices(out, num_keypoints, where=str(p))
    return out


def check_keypoint_indices(held: dict, num_keypoints: int, where: str) -> None:
    """Raise :class:`InputError` naming ``where`` for a held keypoint the model does not have."""
    bad = sorted(j for j in held if j >= num_keypoints)
    if bad:
        raise InputError(f"{where}: keypoint {bad[0]} does not exist: the model has {num_keypoints} "
                         f"(0..{num_keypoints - 1})")


@dataclass
class Reconstruction:
    """Result of a reconstruction; every descent step is kept.

    Attributes:
        vertices: (T+1, 7225, 3) float32 metres, step 0 = the starting template.
        keypoints: (T+1, K, 3) float32 metres.
        faces: (14342, 3) int32; uvs: (7225, 2).
        keypoint_indices: (K,) template vertex ids of the keypoints.
        cameras: the input photos' cameras in the output frame (original image pixels).
        landmarks478: per view, MediaPipe's (478, 3) points in the photo's pixels, or None
            (landmarks given as 68 points, or no detection): the fitting stage's evidence.
        cameras_estimated: True when the cameras were estimated from landmarks.
        frame: "camera" (view 0's camera frame, OpenCV axes) or "world" (the given cameras', or
            the head frame of estimated cameras).
        timings: seconds: "prepare", "encode", "descent", "total", "steps" (list).
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    keypoint_indices: np.ndarray
    cameras: list
    frame: str
    timings: dict
    info: dict = field(default_factory=dict)
    landmarks478: list = field(default_factory=list)  # per view: (478, 3) MediaPipe points, photo pixels, or None
    cameras_estimated: bool = False  # the cameras came from landmarks (several photos, no cameras given)

    @property
    def final_vertices(self) -> np.ndarray:
        return self.vertices[-1]

    @property
    def iterations(self) -> int:
        return len(self.vertices) - 1

    def obj_bytes(self, step: int = -1, vertices: np.ndarray | None = None) -> bytes:
        """Step ``step`` (or ``vertices``, e.g. neutralised, on this topology) as OBJ text, metres."""
        what = f"step {step % len(self.vertices)} of {self.iterations}" if vertices is None else "edited final step"
        return obj_text(self.vertices[step] if vertices is None else vertices, self.faces, self.uvs,
                        header=f"GLVD reconstruction, {what}, metres, frame: {self.frame} (OpenCV axes)").encode()

    def save_obj(self, path: str | Path, step: int = -1, vertices: np.ndarray | None = None) -> None:
        """Write :meth:`obj_bytes` to ``path`` all or nothing."""
        atomic_write_bytes(path, self.obj_bytes(step, vertices))

    def trajectory_bytes(self, fit_vertices: np.ndarray | None = None) -> bytes:
        """Every descent step (``vertices`` (T+1, V, 3), ``keypoints``) and, when given and not
        empty, the fitting stage's steps (``fit_vertices`` (F, V, 3)), metres, as .npz bytes."""
        extra = {} if fit_vertices is None or len(fit_vertices) == 0 else dict(fit_vertices=np.asarray(fit_vertices))
        return npz_bytes(vertices=self.vertices, keypoints=self.keypoints, faces=self.faces,
                         keypoint_indices=self.keypoint_indices, **extra)

    def save_trajectory(self, path: str | Path, fit_vertices: np.ndarray | None = None) -> None:
        """Write :meth:`trajectory_bytes` to ``path`` all or nothing."""
        atomic_write_bytes(path, self.trajectory_bytes(fit_vertices))

    def summary(self) -> dict:
        return dict(frame=self.frame, iterations=self.iterations, vertices=int(self.vertices.shape[1]),
                    faces=int(len(self.faces)), cameras=[c.to_dict() for c in self.cameras],
                    timings=self.timings, **self.info)


@dataclass
class PreparedView:
    image: np.ndarray   # (S, S, 3) uint8 network input
    mask: np.ndarray    # (S, S) uint8
    camera: Camera      # camera of the network input
    landmarks: np.ndarray | None  # (68, 2) network-input pixels or None
    pose: object = None  # HeadPose from PnP (head frame -> this camera), when landmarks exist
    face_crop: np.ndarray | None = None  # (3, 112, 112) uint8 crop of the "image" prior (model/identity_cnn.py),
                                         # when that prior is on and MediaPipe's 478 points are known
    points478: np.ndarray | None = None  # (478, 3) MediaPipe points in the original photo's pixels, when known


def _as_rgb(img, where) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, 2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
        raise InputError(f"{where}: expected an (H, W, 3) image, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint16:
        a = (a // 257).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a * (255 if a.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    return a


def prepare_view(image: np.ndarray, mask: np.ndarray | None, camera: Camera, landmarks: np.ndarray | None,
                 size: int, where: str = "image", crop: tuple | None = None) -> PreparedView:
    """Square network input. ``crop`` = (x0, y0, side) in image pixels (pixel-centre coordinates of
    the crop's first pixel, side length); None pads the whole photo to a square about its centre.
    The camera follows exactly: a crop and resize is an intrinsics change."""
    H, W = image.shape[:2]
    if (camera.width, camera.height) != (W, H):
        raise CameraError(f"{where}: camera is {camera.width}x{camera.height} but the image is {W}x{H}")
    if crop is None:
        side = max(H, W)
        x0, y0 = (W - 1) / 2 - (side - 1) / 2, (H - 1) / 2 - (side - 1) / 2
    else:
        x0, y0, side = crop
    scale = size / side
    M = np.array([[scale, 0, -scale * x0 + 0.5 * (scale - 1)], [0, scale, -scale * y0 + 0.5 * (scale - 1)]])
    img = cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    m = np.zeros((H, W), np.uint8) + 255 if mask is None else mask
    m = cv2.warpAffine(m, M, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    lm = None if landmarks is None else np.asarray(landmarks, np.float64) @ M[:, :2].T + M[:, 2]
    return PreparedView(img, m, camera.crop_resize(x0, y0, scale, size, size), lm)


def resolve_runtime(runtime: str = "auto", device: str = "auto") -> str:
    """``"torch"`` or ``"numpy"``: ``auto`` takes torch where it imports (CUDA, training, the CLI's
    ``.venv``) and numpy where it does not (a Blender with only what the extension zip carries)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use {', '.join(RUNTIMES)}")
    if runtime == "auto":
        try:
            import torch  # noqa: F401
        except ImportError:
            runtime = "numpy"
        else:
            runtime = "torch"
    if runtime == "numpy" and device not in ("auto", "cpu"):
        raise ValueError(f"the numpy runtime runs on the CPU; device {device!r} needs the torch runtime "
                         "(pip install torch; README: CUDA)")
    return runtime


def keypoint_start(seed: int, num_keypoints: int, extent: float) -> np.ndarray:
    """(K, 3) float32 keypoint start, uniform in [-extent, extent]^3: exactly what
    ``torch.rand(1, K, 3, generator=torch.Generator().manual_seed(seed))`` draws (the same MT19937
    stream, 24 bits a number), so both runtimes start from the same keypoints without torch."""
    raw = np.random.RandomState(int(seed) % 2 ** 32)._bit_generator.random_raw(num_keypoints * 3)
    u = ((raw & 0xFFFFFF).astype(np.float64) * 2.0 ** -24).astype(np.float32).reshape(num_keypoints, 3)
    return (u * np.float32(2) - np.float32(1)) * np.float32(extent)


class Reconstructor:
    """Holds a GLVD model in one runtime (torch on a device, or numpy on the CPU); ``reconstruct``
    turns photos into a template mesh. Both runtimes read the same model file and give the same
    result (within 1e-6 m, tested)."""

    def __init__(self, model: "GLVD | NumpyGLVD", template: Template, device: "torch.device | str" = "cpu",
                 source: str = "", identity_net: "IdentityCNN | None" = None):
        from .runtime.descent import NumpyGLVD

        self.runtime = "numpy" if isinstance(model, NumpyGLVD) else "torch"
        self.model = model if self.runtime == "numpy" else model.eval().to(device)
        self.template = template
        self.device = device
        self.source = source
        self.cfg: GLVDConfig = model.cfg
        self.identity_net = identity_net  # torch: the "image" prior's CNN (CPU); numpy: model.identity

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "auto",
                        overrides: dict | None = None, identity_cnn: str | Path | None = None,
                        runtime: Runtime = "auto") -> "Reconstructor":
        """Load a trained model (default: the bundled one) onto ``device`` (auto, cpu, cuda).
        One file carries both networks: the descent's and, under ``identity_cnn``, the CNN of
        the ``"image"`` vertex prior.
        ``overrides``: inference settings replacing the model's own, any of
        :data:`INFERENCE_FIELDS` (e.g. ``{"iterations": 8}``).
        ``identity_cnn``: another file's identity CNN instead of the model's own (a candidate to
        evaluate; torch runtime); loaded here, so a missing or mismatched file fails now.
        ``runtime``: ``"torch"``, ``"numpy"`` (no torch needed: what the Blender extension runs
        where torch is not installed) or ``"auto"`` (:func:`resolve_runtime`)."""
        runtime = resolve_runtime(runtime, device)
        p = Path(path) if path is not None else DEFAULT_MODEL
        if path is None and not p.is_file():
            raise FileNotFoundError(f"no bundled model at {p}; train one (python -m glvd_core train) and pass --weights")
        overrides = overrides or {}
        bad = sorted(set(overrides) - set(INFERENCE_FIELDS))
        if bad:
            raise ValueError(f"cannot override {', '.join(bad)} of a trained model; inference settings are "
                             f"{', '.join(INFERENCE_FIELDS)}")
        if runtime == "numpy":
            return cls._numpy_from_file(p, overrides, identity_cnn)
        import torch

        from .checkpoint import load_checkpoint, resolve_device
        from .model.glvd import GLVD
        from .model.identity_cnn import identity_cnn_from_package, load_identity_cnn

        dev = resolve_device(device)
        ck = load_checkpoint(p)
        tpl = load_template()
        _check_template(ck, tpl, p)
        cfg = GLVDConfig.from_dict(ck["config"]).replace(**overrides)
        if identity_cnn is not None:
            ident = load_identity_cnn(str(identity_cnn))
        else:
            ident = identity_cnn_from_package(ck["identity_cnn"], p) if "identity_cnn" in ck else None
        _check_identity(cfg, ident is not None, p)
        model = GLVD(cfg, tpl)
        state = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in ck["model"].items()}
        try:
            model.net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{p}: weights do not match its config ({first_line(e)})") from None
        return cls(model, tpl, dev, source=str(p), identity_net=ident)

    @classmethod
    def _numpy_from_file(cls, p: Path, overrides: dict, identity_cnn) -> "Reconstructor":
        from .runtime import torchfile
        from .runtime.descent import NumpyGLVD

        if identity_cnn is not None:
            raise ValueError("another identity CNN (identity_cnn=, --identity-cnn) needs the torch runtime")
        ck = torchfile.load_model(p)
        tpl = load_template()
        _check_template(ck, tpl, p)
        cfg = GLVDConfig.from_dict(ck["config"]).replace(**overrides)
        ident = ck.get("identity_cnn")
        _check_identity(cfg, ident is not None, p)
        try:
            model = NumpyGLVD(cfg, tpl, ck["model"], None if ident is None else ident["model"])
        except KeyError as e:
            raise ValueError(f"{p}: weights do not match its config (missing {e})") from None
        return cls(model, tpl, "cpu", source=str(p))

    @classmethod
    def untrained(cls, config: str | GLVDConfig = "lite", device: str = "auto", seed: int = 0) -> "Reconstructor":
        """A randomly initialised model (for tests and the pipeline demo; results are meaningless)."""
        import torch

        from .checkpoint import resolve_device
        from .model.glvd import GLVD

        cfg = get_config(config) if isinstance(config, str) else config
        torch.manual_seed(seed)
        tpl = load_template()
        return cls(GLVD(cfg, tpl), tpl, resolve_device(device), source=f"untrained:{cfg.name}")

    # -- inference -----------------------------------------------------------------------
    def prepare(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None,
                cameras: Sequence[Camera] | None = None, landmarks: Sequence[np.ndarray | None] | None = None,
                fov_deg: float | None = None, intrinsics: Sequence[np.ndarray | None] | None = None,
                detect: bool = True, names: Sequence[str] | None = None) -> tuple[list[PreparedView], list[Camera],
                list[str]]:
        """Validate inputs and make the network views. Returns (views, cameras used, notes)."""
        from .preprocess import MediaPipeFaces, estimate_cameras, head_crop, head_mask, solve_pnp
        from .preprocess.face_crop import face_crop
        from .preprocess.detect import mp_to_68

        if images is None or len(images) == 0:
            raise InputError("no images given")
        V = len(images)
        names = names or [f"image {i}" for i in range(V)]
        for what, x in (("masks", masks), ("landmark sets", landmarks), ("intrinsics", intrinsics)):
            if x is not None and len(x) != V:
                raise InputError(f"{len(x)} {what} for {V} images")
        if cameras is not None and len(cameras) != V:
            raise CameraError(f"{len(cameras)} cameras for {V} images")
        imgs, ms, lms, notes, dets, p478s = [], [], [], [], [], []
        for i in range(V):
            img = _as_rgb(images[i], names[i])
            H, W = img.shape[:2]
            m = None
            if masks is not None and masks[i] is not None:
                m = np.asarray(masks[i])
                if m.ndim == 3:
                    m = m[..., 0]
                if m.shape != (H, W):
                    raise InputError(f"{names[i]}: mask is {m.shape[1]}x{m.shape[0]} but the photo is {W}x{H}")
                m = (m > (127 if m.max() > 1 else 0)).astype(np.uint8) * 255
            lm, det, p478 = (None if landmarks is None else landmarks[i]), None, None
            if lm is not None:
                lm = np.asarray(lm, np.float64)
                if lm.shape == (478, 3):
                    p478, lm = lm, mp_to_68(lm)
                elif lm.shape != (68, 2):
                    raise InputError(f"{names[i]}: landmarks must be (68, 2) pixels or MediaPipe's (478, 3) points, "
                                     f"got shape {lm.shape}")
                if not np.isfinite(lm).all():
                    raise InputError(f"{names[i]}: landmarks hold NaN or infinite values")
            if lm is None and detect:
                det = MediaPipeFaces.detect(img, where=names[i], segment=m is None)
                lm, p478 = det.landmarks68, det.landmarks478
                notes += det.notes
            imgs.append(img)
            ms.append(m)
            lms.append(None if lm is None else np.asarray(lm, np.float64))
            dets.append(det)
            p478s.append(p478)
        if cameras is None:
            intr = [intrinsics[i] if intrinsics is not None else
                    Camera.from_fov(im.shape[1], im.shape[0], fov_deg or DEFAULT_FOV_DEG) for i, im in enumerate(imgs)]
            if V > 1:
                if any(lm is None for lm in lms):
                    raise CameraError("several photos without cameras need landmarks (detection) to place them")
                cams, rms = estimate_cameras(lms, intr, self.template)
                notes.append("estimated cameras from landmarks, reprojection RMS "
                             + ", ".join(f"{r:.2f}" for r in rms) + " px")
            else:
                cams = [Camera(np.eye(3), np.zeros(3), intr[0].K, intr[0].width, intr[0].height)]
        else:
            cams = list(cameras)
        views = []
        for i in range(V):
            crop, pose = None, None
            if lms[i] is not None:
                try:
                    pose = solve_pnp(lms[i], cams[i], self.template)
                    crop = head_crop(cams[i], pose, self.cfg.arch.head_extent_m, self.cfg.arch.nominal_fill)
                    if ms[i] is None and dets[i] is not None:
                        ms[i] = head_mask(imgs[i].shape[:2], cams[i], pose, dets[i].person_mask)
                except ValueError as e:
                    notes.append(f"{names[i]}: {e}; using the whole photo")
            views.append(prepare_view(imgs[i], ms[i], cams[i], lms[i], self.cfg.arch.image_size, names[i], crop))
            views[-1].pose = pose
            views[-1].points478 = p478s[i]
            if self.cfg.inference.vertex_prior == "image" and p478s[i] is not None:
                views[-1].face_crop = face_crop(imgs[i], p478s[i])
        return views, cams, notes

    def reconstruct(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None,
                    cameras: Sequence[Camera] | None = None, options: ReconstructOptions | None = None, *,
                    landmarks: Sequence[np.ndarray | None] | None = None,
                    intrinsics: Sequence[np.ndarray | None] | None = None, names: Sequence[str] | None = None,
                    callback: Callable[[int, np.ndarray, np.ndarray], bool | None] | None = None,
                    prepared: tuple | None = None) -> Reconstruction:
        """Reconstruct a face from ``images`` ((H, W, 3) uint8 RGB arrays).

        Args:
            masks: optional head masks (H, W) per image (255 = head).
            cameras: optional list of :class:`Camera` (original image pixels, metres) — needed for
                several images; the result is then in their world frame.
            options: :class:`ReconstructOptions` (steps, clip, seed, field of view, detection).
            landmarks: optional 2D landmarks per image (original pixels): (68, 2) in the Multi-PIE
                layout, or MediaPipe's (478, 3) points as detected (``FaceDetection.landmarks478``:
                mapped to the 68; the ``"image"`` prior crops the face with them); by default they
                are detected (MediaPipe). They make the keypoint heatmaps, the
                crop (PnP head pose) and, for several photos without cameras, the cameras.
            intrinsics: optional per-image :class:`Camera` giving K only (e.g. from EXIF).
            names: per-image names for messages (file names).
            callback: ``callback(step, vertices_m, keypoints_m)`` after each step; returning False
                raises :class:`Cancelled`, an exception it raises propagates. Nothing is kept.
            prepared: what :meth:`prepare` returned for these same arguments, computed ahead (a
                batch prepares the next input — face detection, masks — while this one descends).
        """
        o = options or ReconstructOptions()
        cfg = self.cfg.inference
        iterations = cfg.iterations if o.iterations is None else int(o.iterations)
        clip = cfg.clip if o.clip is None else float(o.clip)
        warm = cfg.keypoint_warmup if o.keypoint_warmup is None else int(o.keypoint_warmup)
        t0 = time.perf_counter()
        if prepared is None:
            prepared = self.prepare(images, masks, cameras, landmarks, o.fov_deg, intrinsics, o.detect, names)
        views, cams_used, notes = prepared
        notes = list(notes)
        arch = self.cfg.arch
        frame = make_frame([v.camera for v in views], arch.frame_scale_m, arch.head_extent_m, arch.nominal_fill)
        world = cameras is not None or len(views) > 1
        out = self._output_map(frame, world)
        k = keypoint_start(o.seed, arch.num_keypoints, cfg.kp_init_extent)
        held = None
        if o.keypoints:
            check_keypoint_indices(o.keypoints, arch.num_keypoints, where="held keypoints")
            idx = sorted(o.keypoints)
            X = np.array([o.keypoints[j] for j in idx], np.float64)
            x_n = frame.from_world_m(X) if world else (X - frame.c_cam0) / frame.scale_m
            pos = np.zeros((arch.num_keypoints, 3), np.float32)
            mask = np.zeros(arch.num_keypoints, bool)
            pos[idx], mask[idx] = x_n, True
            held = (pos, mask)
            k = np.where(mask[:, None], pos, k)
        run = self._numpy_run if self.runtime == "numpy" else self._torch_run
        times: dict = {}
        traj_v, traj_k, steps = [], [], []
        for t, (vn, kn) in enumerate(run(views, frame, k, held, clip, iterations, warm, notes, times, t0)):
            if t == 0:  # the start
                traj_v.append(vn)
                traj_k.append(kn)
                ts = time.perf_counter()
                continue
            steps.append(time.perf_counter() - ts)
            if not (np.isfinite(vn).all() and np.isfinite(kn).all()):
                raise DescentError(f"descent step {t} produced non-finite positions (model {self.source})")
            if np.abs(vn).max() > RUNAWAY_LIMIT or np.abs(kn).max() > RUNAWAY_LIMIT:
                raise DescentError(f"descent step {t} ran away (|x| > {RUNAWAY_LIMIT} units; model {self.source})")
            traj_v.append(vn)
            traj_k.append(kn)
            if callback is not None and callback(t, out(vn), out(kn)) is False:
                raise Cancelled(f"cancelled after step {t} of {iterations}")
            ts = time.perf_counter()
        t3 = time.perf_counter()
        V_m = np.stack([out(x) for x in traj_v]).astype(np.float32)
        K_m = np.stack([out(x) for x in traj_k]).astype(np.float32)
        timings = dict(prepare=times["prepare"], encode=times["encode"], descent=t3 - times["start"],
                       total=time.perf_counter() - t0, steps=steps)
        return Reconstruction(V_m, K_m, self.template.faces, self.template.uvs,
                              self.template.keypoint_indices(arch.num_keypoints), cams_used,
                              "world" if world else "camera", timings,
                              info=dict(model=self.source, config=self.cfg.name, device=str(self.device),
                                        runtime=self.runtime, seed=int(o.seed), clip=clip, views=len(views),
                                        notes=notes),
                              landmarks478=[v.points478 for v in views],
                              cameras_estimated=cameras is None and len(views) > 1)

    def _network_inputs(self, views: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The views as arrays: images (V, 3, S, S) and masks (V, 1, S, S) in [0, 1], landmarks
        (V, L, 2) network-input pixels and their validity (V, L) (none valid unless every view has them)."""
        img = np.stack([v.image for v in views]).transpose(0, 3, 1, 2).astype(np.float32) / 255
        msk = np.stack([v.mask for v in views])[:, None].astype(np.float32) / 255
        L = self.cfg.arch.heatmap_channels
        if all(v.landmarks is not None for v in views):
            lm = np.stack([v.landmarks for v in views]).astype(np.float32)
            ok = np.ones(lm.shape[:2], bool)
        else:
            lm, ok = np.zeros((len(views), L, 2), np.float32), np.zeros((len(views), L), bool)
        return img, msk, lm, ok

    def _numpy_run(self, views, frame, k, held, clip, iterations, warm, notes, times, t0):
        """The numpy runtime's descent: yields the start, then (vertices, keypoints) after each step
        (normalised frame, numpy); records the stages' times in ``times``."""
        from .runtime.descent import landmark_heatmaps

        arch, m = self.cfg.arch, self.model
        img, msk, lm, ok = self._network_inputs(views)
        times["prepare"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        feats = m.encode(img, msk, landmark_heatmaps(lm, ok, arch.image_size, arch.feature_size, arch.heatmap_sigma_px))
        if self.cfg.inference.vertex_prior == "image":
            feats.shape_w = self._image_shape(views, notes)
        times["start"] = time.perf_counter()
        times["encode"] = times["start"] - t1
        yield m.vertex_init, k
        yield from m.descent(feats, m.vertex_init, k, frame.A, frame.b, frame.K, clip, iterations, warm, held)

    def _torch_run(self, views, frame, k, held, clip, iterations, warm, notes, times, t0):
        """The torch runtime's descent, on ``self.device``; as :meth:`_numpy_run`."""
        import torch

        from .model.glvd import landmark_heatmaps

        arch, dev, f32 = self.cfg.arch, self.device, torch.float32
        with torch.inference_mode():
            img, msk, lm, ok = (torch.as_tensor(x, device=dev)[None] for x in self._network_inputs(views))
            A, b, K = (torch.as_tensor(x, dtype=f32, device=dev)[None] for x in (frame.A, frame.b, frame.K))
            self._sync()
            times["prepare"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            hm = landmark_heatmaps(lm, ok, arch.image_size, arch.feature_size, arch.heatmap_sigma_px)
            feats = self.model.encode(img, msk, hm)
            if self.cfg.inference.vertex_prior == "image":
                w = self._image_shape(views, notes)
                feats.shape_w = None if w is None else torch.as_tensor(w, device=dev)[None]
            self._sync()
            times["start"] = time.perf_counter()
            times["encode"] = times["start"] - t1
            v = self.model.vertex_init[None].clone()
            kt = torch.as_tensor(k, device=dev)[None]
            heldt = None if held is None else (torch.as_tensor(held[0], device=dev)[None],
                                               torch.as_tensor(held[1], device=dev)[None])
            yield v[0].cpu().numpy(), k
            with self.model.last_layers_frozen():
                for v, kt in self.model.descent(feats, v, kt, A, b, K, clip, iterations, warm, heldt):
                    yield v[0].cpu().numpy(), kt[0].cpu().numpy()

    def _face_crops(self, views: list, notes: list) -> np.ndarray | None:
        """(C, 3, 112, 112) uint8 face crops of the views that have one (and a note for those that
        do not); None when none has."""
        crops = [v.face_crop for v in views if v.face_crop is not None]
        if len(crops) < len(views):
            notes.append(f"image shape prior: {len(views) - len(crops)} of {len(views)} views have no MediaPipe "
                         "landmarks to crop the face" + ("; it keeps the template's mean shape" if not crops else ""))
        return np.stack(crops) if crops else None

    def _image_shape(self, views: list, notes: list) -> np.ndarray | None:
        """(M,) identity weights of the ``"image"`` prior: the identity CNN's prediction from the
        face crops, averaged over the views that have one (None, and a note, when none has: the
        prior keeps the mean shape)."""
        crops = self._face_crops(views, notes)
        if crops is None:
            return None
        if self.runtime == "numpy":
            if self.model.identity is None:
                raise ValueError("the 'image' vertex prior needs an identity CNN; this model has none")
            return self.model.identity(crops).mean(0)
        if self.identity_net is None:
            raise ValueError("the 'image' vertex prior needs an identity CNN; this Reconstructor has none")
        import torch

        return self.identity_net.predict(torch.as_tensor(crops)).mean(0).numpy()

    @staticmethod
    def _output_map(frame: Frame, world: bool):
        if world:
            return lambda x: frame.to_world_m(x.astype(np.float64))
        return lambda x: frame.to_camera0_m(x.astype(np.float64))

    def _sync(self):
        if self.runtime == "torch" and self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()


def _check_template(ck: dict, tpl: Template, p: Path) -> None:
    if ck.get("template_sha256") != tpl.sha256:
        raise ValueError(f"{p}: made for another template (sha256 {str(ck.get('template_sha256'))[:12]}…, "
                         f"this one is {tpl.sha256[:12]}…)")


def _check_identity(cfg: GLVDConfig, has_identity: bool, p: Path) -> None:
    if cfg.inference.vertex_prior == "image" and not has_identity:
        raise ValueError(f"{p}: the 'image' vertex prior needs an identity CNN and this file carries none; "
                         "pass one (identity_cnn=, --identity-cnn) or use another vertex_prior")

"""Real photos in: loading, offline face detection and landmarks (MediaPipe), head mask,
PnP head pose, the network crop (an intrinsics change) and camera estimation."""
from .detect import FaceDetection, MediaPipeFaces, mp_to_68
from .framing import HeadPose, estimate_cameras, head_crop, head_mask, solve_pnp
from .photo import DEFAULT_FOV_DEG, Photo, camera_for, load_photo

__all__ = ["FaceDetection", "MediaPipeFaces", "mp_to_68", "HeadPose", "estimate_cameras", "head_crop", "head_mask",
           "solve_pnp", "DEFAULT_FOV_DEG", "Photo", "camera_for", "load_photo"]

"""Loading photos: EXIF orientation, bit depths and colour modes, bounded memory, EXIF focal length."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cameras import DEFAULT_FOV_DEG, Camera
from ..io import InputError

MAX_PIXELS = 178_956_970  # Pillow's decompression-bomb limit (2 x Image.MAX_IMAGE_PIXELS): larger photos are refused
MAX_SIDE = 2048          # photos are downscaled to at most this many pixels on the longer side
PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"})  # what load_photo reads
FULL_FRAME_DIAGONAL_MM = 43.2666


@dataclass
class Photo:
    """A photo ready for detection: RGB pixels (possibly downscaled) and its camera."""

    path: str
    image: np.ndarray        # (H, W, 3) uint8 RGB
    camera: Camera           # intrinsics for ``image`` pixels; R = I, t = 0
    camera_source: str       # "exif 35mm-equivalent focal length", "default field of view", "given"
    scale: float             # image pixels per original pixel (<= 1)
    original_size: tuple = (0, 0)  # (W, H) of the file's pixels, EXIF rotation applied


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError as e:  # the extension's zip and .venv carry it; a hand-made environment may not
        raise RuntimeError(f"Pillow is required to read photos ({e}; pip install pillow)") from e
    return Image, ImageOps


def load_photo(path: str | Path, fov_deg: float | None = None, max_side: int = MAX_SIDE,
               default_fov_deg: float = DEFAULT_FOV_DEG) -> Photo:
    """Read any common photo as RGB uint8, EXIF-rotated, at most ``max_side`` pixels, with a camera
    from ``fov_deg`` when given, else the EXIF 35 mm-equivalent focal length, else ``default_fov_deg``."""
    Image, _ = _pil()
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a photo")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        with warnings.catch_warnings():  # Pillow warns from 89 MP on; the reduce below bounds the memory
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        W0, H0 = im.size
        if W0 < 1 or H0 < 1:
            raise InputError(f"{p}: image has no pixels")
        exif = im.getexif()
        if max(W0, H0) > max_side and im.format == "JPEG":
            im.draft("RGB", (max(1, W0 * max_side // max(W0, H0)), max(1, H0 * max_side // max(W0, H0))))
        im.load()
        if max(im.size) > 2 * max_side:  # a box reduce before any copy of the full-size pixels: RSS under 1 GB
            f = max(im.size) // max_side
            im = (im.reduce(f) if im.mode in ("L", "RGB", "RGBA", "LA", "I", "F") else im.convert("RGB").reduce(f))
        T = Image.Transpose  # EXIF orientation (as ImageOps.exif_transpose; the reduced image has no EXIF left)
        method = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
                  7: T.TRANSVERSE, 8: T.ROTATE_90}.get(exif.get(0x0112, 1))
        if method is not None:
            im = im.transpose(method)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{p}: more than {MAX_PIXELS // 10**6} megapixels; reduce the photo first "
                         f"(larger files are refused as possible decompression bombs)") from None
    except Exception as e:  # truncated / corrupt / unsupported
        raise InputError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.float64)
        a = (a / (257.0 if a.max() > 255 else 1.0)).clip(0, 255).astype(np.uint8)
        arr = np.repeat(a[..., None], 3, 2)
    else:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im.convert("RGBA"))
        arr = np.asarray(im.convert("RGB"))
    H, W = arr.shape[:2]
    orig = (W0, H0) if (W >= H) == (W0 >= H0) else (H0, W0)  # EXIF rotation may swap the sides
    if max(H, W) > max_side:
        import cv2

        s = max_side / max(H, W)
        arr = cv2.resize(arr, (max(1, round(W * s)), max(1, round(H * s))), interpolation=cv2.INTER_AREA)
    H, W = arr.shape[:2]
    scale = max(H, W) / max(H0, W0)  # EXIF rotation swaps sides, not the longer one
    cam, src = camera_for(W, H, exif, fov_deg, default_fov_deg)
    return Photo(str(p), np.ascontiguousarray(arr), cam, src, scale, orig)


def load_mask_for(path: str | Path, photo: Photo) -> np.ndarray:
    """A head mask for ``photo``: it must have the photo file's size; it is resized with the photo
    when that was downscaled. (H, W) uint8 at ``photo.image``'s size."""
    from ..io import load_mask

    m = load_mask(path)
    H, W = photo.image.shape[:2]
    if m.shape == (H, W):
        return m
    W0, H0 = photo.original_size
    if m.shape != (H0, W0):
        raise InputError(f"{path}: mask is {m.shape[1]}x{m.shape[0]} but the photo {photo.path} is {W0}x{H0}")
    import cv2

    return cv2.resize(m, (W, H), interpolation=cv2.INTER_NEAREST)


def camera_for(W: int, H: int, exif: dict | None = None, fov_deg: float | None = None,
               default_fov_deg: float = DEFAULT_FOV_DEG) -> tuple[Camera, str]:
    """Intrinsics for a W x H photo: explicit fov > EXIF 35 mm-equivalent focal length > default."""
    if fov_deg is not None:
        return Camera.from_fov(W, H, fov_deg), f"given field of view {fov_deg:g} deg"
    f35 = None
    if exif:
        try:
            f35 = exif.get_ifd(0x8769).get(0xA405)
        except Exception:
            f35 = None
    if f35:
        f = float(f35) * math.hypot(W, H) / FULL_FRAME_DIAGONAL_MM
        fov = math.degrees(2 * math.atan(0.5 * max(W, H) / f))
        if 1 <= fov <= 170:
            return Camera.from_fov(W, H, fov), f"exif 35mm-equivalent focal length {float(f35):g} mm"
    return Camera.from_fov(W, H, default_fov_deg), f"default field of view {default_fov_deg:g} deg"

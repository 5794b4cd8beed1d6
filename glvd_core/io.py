"""File input/output with clear errors and atomic writes."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np


class InputError(ValueError):
    """Bad user input (a file that cannot be used); the message names the file and the problem."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_json(path: str | Path, error: type[ValueError] = InputError) -> object:
    """A JSON file's content; a missing or unreadable file raises ``error`` naming it."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise error(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{p}: not valid JSON ({e})") from None


def is_number_list(x: object, n: int) -> bool:
    """True when ``x`` is a list or tuple of ``n`` finite numbers (bools are not numbers)."""
    return (isinstance(x, (list, tuple)) and len(x) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in x))


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """``with atomic_writer(path) as f:`` — a binary file that appears under ``path`` only when
    the block ends without an error (written to a hidden temporary name, synced, renamed); on an
    error the temporary file is removed and ``path`` is left as it was. The temporary name is
    fixed (``.NAME.tmp``), so one left by a killed process is replaced by the next write."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all or nothing (:func:`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Like np.savez_compressed, in memory, with fixed zip timestamps (same arrays -> same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())
    return out.getvalue()


def save_npz_deterministic(path: str | Path, **arrays: np.ndarray) -> None:
    """:func:`npz_bytes` written to ``path`` all or nothing."""
    atomic_write_bytes(path, npz_bytes(**arrays))


def check_output_paths(paths: list[str | Path]) -> None:
    """Raise InputError naming the first path a result could not be written to: its folder is
    missing or not writable, it is a folder, or two outputs share a name. Called before the work."""
    seen = set()
    for p in map(Path, paths):
        key = os.path.abspath(p)
        if key in seen:
            raise InputError(f"{p}: named twice among the outputs")
        seen.add(key)
        folder = p.parent if str(p.parent) else Path(".")
        if p.is_dir():
            raise InputError(f"{p}: is a folder; give a file name")
        if not folder.is_dir():
            raise InputError(f"{p}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise InputError(f"{p}: the folder {folder} is not writable")


def write_together(files: dict[Path, bytes]) -> None:
    """Write a result set (mesh, material, texture, trajectory, JSON) all or nothing: every file to
    a hidden temporary name beside it, synced and read back (size), and only then all renamed.
    On any error every temporary file is removed, no final name is touched, and the OSError names
    the user's path, not the temporary one."""
    tmps = {Path(p): Path(p).with_name(f".{Path(p).name}.tmp") for p in files}
    try:
        for p, data in files.items():
            p = Path(p)
            try:
                with open(tmps[p], "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                if tmps[p].stat().st_size != len(data):
                    raise OSError(f"{p}: wrote {tmps[p].stat().st_size} of {len(data)} bytes")
            except OSError as e:
                raise OSError(e.errno, f"{p}: {e.strerror or e}") from None
        for p in files:
            os.replace(tmps[Path(p)], p)
    finally:
        for t in tmps.values():
            t.unlink(missing_ok=True)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB (EXIF orientation applied; gray/RGBA/16-bit converted)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an image")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise InputError(f"{p}: not a readable image (truncated, empty or unsupported format)")
    return np.ascontiguousarray(img[..., ::-1])


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as (H, W) uint8 (0..255); ``shape`` (H, W) must match when given."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: mask file not found")
    try:  # Pillow, not OpenCV: libpng would print its own warnings about a damaged file on stderr
        from PIL import Image

        with Image.open(p) as im:
            m = np.asarray(im.convert("L") if im.mode != "L" else im.copy())
    except Exception:  # noqa: BLE001 - truncated, corrupt or not an image
        raise InputError(f"{p}: not a readable mask image") from None
    if shape is not None and m.shape != tuple(shape):
        raise InputError(f"{p}: mask is {m.shape[1]}x{m.shape[0]} but the photo is {shape[1]}x{shape[0]}")
    return m


def obj_text(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None, header: str = "") -> str:
    """Wavefront OBJ (1-based indices) with optional per-vertex UVs."""
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    lines += [f"v {x:.7f} {y:.7f} {z:.7f}" for x, y, z in np.asarray(vertices, np.float64)]
    f = np.asarray(faces) + 1
    if uvs is not None:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in np.asarray(uvs, np.float64)]
        lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in f]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in f]
    return "\n".join(lines) + "\n"


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
              header: str = "") -> None:
    atomic_write_bytes(path, obj_text(vertices, faces, uvs, header).encode())


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Minimal OBJ reader (vertices, triangle faces) for tests and evaluation."""
    v, f = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("v "):
            v.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            f.append([int(x.split("/")[0]) - 1 for x in line.split()[1:4]])
    return np.array(v), np.array(f)

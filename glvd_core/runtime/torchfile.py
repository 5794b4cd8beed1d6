"""Read a torch zip file (what ``torch.save`` writes) into numpy arrays, without torch.

Only what GLVD's model files hold is accepted: dicts, lists, numbers, strings and tensors of the
storage types below. Any other global in the pickle is refused, so nothing in a file from
elsewhere runs (the same rule as ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

_STORAGE_DTYPES = {
    "HalfStorage": np.float16, "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    a = storage
    itemsize = a.dtype.itemsize
    if not size:
        return a[offset].copy() if a.size else np.zeros((), a.dtype)
    return np.lib.stride_tricks.as_strided(a[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride)).copy()


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, zf: zipfile.ZipFile, prefix: str):
        super().__init__(f)
        self._zf, self._prefix, self._loaded = zf, prefix, {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"unsupported global {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key = pid[0], pid[1], str(pid[2])
        if kind != "storage" or not isinstance(storage_type, _Storage):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid[:2]!r}")
        if key not in self._loaded:
            raw = self._zf.read(f"{self._prefix}data/{key}")
            self._loaded[key] = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"))
        return self._loaded[key]


def load(path: str | Path) -> object:
    """The object a torch zip file holds, tensors as numpy arrays (their own dtype: a float16
    tensor stays float16). Raises ValueError for anything that is not such a file."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if len(pkl) != 1:
                raise ValueError(f"{p}: not a PyTorch file (no single data.pkl)")
            prefix = pkl[0][: -len("data.pkl")]
            order = zf.read(prefix + "byteorder").decode() if prefix + "byteorder" in zf.namelist() else "little"
            if order != "little":
                raise ValueError(f"{p}: a big-endian PyTorch file is not supported")
            with zf.open(pkl[0]) as f:
                return _Unpickler(f, zf, prefix).load()
    except zipfile.BadZipFile:
        raise ValueError(f"{p}: the file is truncated or not a PyTorch file") from None
    except (pickle.UnpicklingError, EOFError, KeyError) as e:
        raise ValueError(f"{p}: not a readable GLVD model ({e})") from None


def load_model(path: str | Path) -> dict:
    """A GLVD model file (what :func:`glvd_core.checkpoint.load_checkpoint` reads with torch), with
    the same checks and clear errors: a missing file, not a model, missing parts, NaN weights."""
    from ..checkpoint import check_model, model_file

    p = model_file(path)
    if p.stat().st_size == 0:
        raise ValueError(f"{p}: not a readable GLVD model (the file is empty)")
    return check_model(load(p), p, lambda t: isinstance(t, np.ndarray) and t.dtype.kind == "f" and not np.isfinite(t).all())

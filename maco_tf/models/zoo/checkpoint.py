"""Read PyTorch checkpoints into numpy arrays without torch, and without running code.

A ``.pth`` file is a pickle, and unpickling an untrusted pickle can execute arbitrary
code. This module reads state dicts through a restricted unpickler that resolves only
the handful of globals a plain state dict refers to (``collections.OrderedDict``, the
``torch._utils._rebuild_*`` tensor constructors and the ``torch.*Storage`` classes), each
mapped to a small local stand-in; every other global is refused with
:class:`UnsafeCheckpointError` before anything is called.

Both serialization layouts of ``torch.save`` are understood:

* the legacy stream (``_use_new_zipfile_serialization=False``): a magic number, a
  protocol version, a sys-info dict, the pickled object, the pickled list of storage
  keys, then each storage's raw data (an int64 element count followed by the bytes);
* the zip archive (default since torch 1.6): ``<prefix>/data.pkl`` plus one
  ``<prefix>/data/<key>`` member of raw bytes per storage.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "load_torch_state_dict",
]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated or not a tensor state dict."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint refers to a global outside the state-dict allow-list.

    Parameters
    ----------
    global_name
        Dotted name (``module.qualname``) of the refused global.
    path
        File being read, for the message.
    """

    def __init__(self, global_name: str, path: str = "<checkpoint>") -> None:
        self.global_name = global_name
        self.path = path
        super().__init__(
            f"refusing to load {path!s}: it references the global {global_name!r}, which is "
            "not among the globals a tensor state dict needs; nothing was executed"
        )


# --------------------------------------------------------------------------- stand-ins


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.<Type>Storage`` class: only carries the element dtype."""

    name: str
    dtype: str  # numpy dtype string without byte order, e.g. "f4"; "bf16" is special

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return 2 if self.dtype == "bf16" else np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class _StorageRef:
    """A storage announced by a persistent id; data is attached after unpickling."""

    key: str
    storage_type: _StorageType
    numel: int
    offset: int = 0  # element offset into the root storage (legacy views only)


@dataclass(frozen=True)
class _TensorRef:
    """Result of the ``_rebuild_tensor*`` stand-ins: a strided view of a storage."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise CheckpointError(f"malformed tensor {what}: {value!r}")
    return tuple(value)


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any
) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2``.

    Extra arguments (``requires_grad``, ``backward_hooks``, ``metadata``) are ignored.
    """
    if not isinstance(storage, _StorageRef):
        raise CheckpointError(f"tensor rebuilt from a non-storage object {type(storage)!r}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise CheckpointError(f"malformed tensor storage offset: {storage_offset!r}")
    shape = _as_int_tuple(size, "size")
    strides = _as_int_tuple(stride, "stride")
    if len(shape) != len(strides) or any(s < 0 for s in shape) or any(s < 0 for s in strides):
        raise CheckpointError(f"malformed tensor geometry: size={shape}, stride={strides}")
    return _TensorRef(storage, storage_offset, shape, strides)


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter``: a parameter is its data."""
    if not isinstance(data, _TensorRef):
        raise CheckpointError(f"parameter rebuilt from a non-tensor object {type(data)!r}")
    return data


_STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "bf16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

_STATE_DICT_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType(
    {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
    }
)


# ---------------------------------------------------------------------- the unpickler


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving globals from an explicit allow-list only.

    Parameters
    ----------
    file
        Binary stream positioned at a pickle.
    path
        File name used in error messages.
    allowed
        ``(module, name) -> object`` map of the only globals that may be resolved.
    persistent_load
        Handler for persistent ids, or ``None`` to refuse them.
    """

    def __init__(
        self,
        file: BinaryIO,
        path: str,
        allowed: Mapping[tuple[str, str], Any],
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._allowed = allowed
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(f"{module}.{name}", self._path) from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        if self._persistent is None:
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _unpickle(
    file: BinaryIO,
    path: str,
    allowed: Mapping[tuple[str, str], Any] | None = None,
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Run the restricted unpickler, turning low-level failures into CheckpointError."""
    unpickler = _RestrictedUnpickler(file, path, allowed or {}, persistent_load)
    try:
        return unpickler.load()
    except CheckpointError:
        raise
    except Exception as exc:  # EOFError, UnpicklingError, struct/Type/Attribute errors ...
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


# ------------------------------------------------------------------ persistent ids


def _storage_ref_from_pid(pid: Any) -> tuple[_StorageRef, tuple[str, int, int] | None]:
    """Parse ``('storage', type, key, location, numel[, view_metadata])``."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
        raise CheckpointError(f"unsupported persistent id {pid!r:.200}")
    storage_type, key, _location, numel = pid[1:5]
    view = pid[5] if len(pid) == 6 else None
    if not isinstance(storage_type, _StorageType):
        raise CheckpointError(f"unsupported storage type {storage_type!r:.200}")
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"malformed storage id {pid!r:.200}")
    if view is not None:
        if (
            not isinstance(view, tuple)
            or len(view) != 3
            or not isinstance(view[0], str)
            or not all(isinstance(v, int) and v >= 0 for v in view[1:])
        ):
            raise CheckpointError(f"malformed storage view {view!r:.200}")
    return _StorageRef(key, storage_type, numel), view


# ------------------------------------------------------------------- materialising


def _decode_storage(raw: bytes | memoryview, storage_type: _StorageType, byteorder: str) -> Any:
    """Raw bytes -> 1-D numpy array of the storage's dtype (bfloat16 widened to float32)."""
    if storage_type.dtype == "bf16":
        halves = np.frombuffer(raw, dtype=np.dtype("u2").newbyteorder(byteorder))
        return (halves.astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder(byteorder))


def _materialise(ref: _TensorRef, storages: Mapping[str, np.ndarray], path: str) -> np.ndarray:
    """Copy a (bounds-checked) strided view out of its storage."""
    data = storages.get(ref.storage.key)
    if data is None:
        raise CheckpointError(f"{path}: tensor refers to missing storage {ref.storage.key!r}")
    start = ref.storage.offset + ref.offset
    count = math.prod(ref.size)
    if count:
        last = start + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
        if last >= data.size:
            raise CheckpointError(
                f"{path}: tensor of size {ref.size} at offset {ref.offset} overruns its "
                f"storage {ref.storage.key!r} of {data.size} elements"
            )
    else:
        start = min(start, data.size)
    view = np.lib.stride_tricks.as_strided(
        data[start:],
        shape=ref.size,
        strides=tuple(s * data.itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view, dtype=view.dtype.newbyteorder("="), order="C", copy=True)


def _to_state_dict(obj: Any, storages: Mapping[str, np.ndarray], path: str) -> dict:
    """Turn the unpickled top-level object into ``{name: ndarray}``."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise CheckpointError(
                f"{path}: entry {name!r:.100} is a {type(value).__name__}, not a tensor"
            )
        out[name] = _materialise(value, storages, path)
    return out


# ------------------------------------------------------------------------- formats


class _Reader:
    """Bounded reads from a binary stream, raising CheckpointError on truncation."""

    def __init__(self, file: BinaryIO, path: str) -> None:
        self.file = file
        self.path = path

    def read(self, nbytes: int, what: str) -> bytes:
        data = self.file.read(nbytes)
        if len(data) != nbytes:
            raise CheckpointError(
                f"{self.path}: truncated checkpoint (wanted {nbytes} bytes of {what}, "
                f"got {len(data)})"
            )
        return data


def _load_legacy(file: BinaryIO, path: str) -> dict[str, np.ndarray]:
    """Read the legacy (non-zip) ``torch.save`` stream."""
    magic = _unpickle(file, path)
    if magic != _LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    protocol = _unpickle(file, path)
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported legacy protocol version {protocol!r}")
    sys_info = _unpickle(file, path)
    if not isinstance(sys_info, dict):
        raise CheckpointError(f"{path}: malformed sys info record")
    byteorder = "<" if sys_info.get("little_endian", True) else ">"

    roots: dict[str, _StorageRef] = {}
    views: dict[str, _StorageRef] = {}

    def persistent_load(pid: Any) -> _StorageRef:
        ref, view = _storage_ref_from_pid(pid)
        root = roots.setdefault(ref.key, ref)
        if root.storage_type != ref.storage_type or root.numel != ref.numel:
            raise CheckpointError(f"{path}: storage {ref.key!r} announced inconsistently")
        if view is None:
            return root
        view_key, view_offset, view_numel = view
        if view_offset + view_numel > root.numel:
            raise CheckpointError(f"{path}: storage view {view_key!r} overruns its storage")
        return views.setdefault(
            view_key, _StorageRef(root.key, root.storage_type, view_numel, view_offset)
        )

    obj = _unpickle(file, path, _STATE_DICT_GLOBALS, persistent_load)
    keys = _unpickle(file, path)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointError(f"{path}: malformed storage key list")

    reader = _Reader(file, path)
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        ref = roots.get(key)
        if ref is None:
            raise CheckpointError(f"{path}: storage {key!r} is listed but never used")
        (numel,) = struct.unpack(f"{byteorder}q", reader.read(8, f"storage {key} header"))
        if numel != ref.numel:
            raise CheckpointError(
                f"{path}: storage {key!r} holds {numel} elements, expected {ref.numel}"
            )
        raw = reader.read(numel * ref.storage_type.itemsize, f"storage {key} data")
        storages[key] = _decode_storage(raw, ref.storage_type, byteorder)
    missing = set(roots) - set(storages)
    if missing:
        raise CheckpointError(f"{path}: storages without data: {sorted(missing)[:5]}")
    return _to_state_dict(obj, storages, path)


def _load_zip(file: BinaryIO, path: str) -> dict[str, np.ndarray]:
    """Read the zip-archive ``torch.save`` layout."""
    try:
        archive = zipfile.ZipFile(file)
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: zip checkpoint without a single */data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "<"
        if f"{prefix}byteorder" in names:
            byteorder = ">" if archive.read(f"{prefix}byteorder").strip() == b"big" else "<"

        refs: dict[str, _StorageRef] = {}

        def persistent_load(pid: Any) -> _StorageRef:
            ref, view = _storage_ref_from_pid(pid)
            if view is not None:
                raise CheckpointError(f"{path}: storage views are not used by zip checkpoints")
            return refs.setdefault(ref.key, ref)

        obj = _unpickle(
            io.BytesIO(archive.read(pickles[0])), path, _STATE_DICT_GLOBALS, persistent_load
        )
        storages: dict[str, np.ndarray] = {}
        for key, ref in refs.items():
            raw = archive.read(f"{prefix}data/{key}")
            array = _decode_storage(raw, ref.storage_type, byteorder)
            if array.size < ref.numel:
                raise CheckpointError(f"{path}: storage {key!r} is shorter than announced")
            storages[key] = array
    except (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: corrupt zip checkpoint ({exc})") from exc
    return _to_state_dict(obj, storages, path)


def load_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load a PyTorch state dict as numpy arrays, safely and without torch.

    Parameters
    ----------
    path
        A file written by ``torch.save(model.state_dict(), path)``, in the legacy or the
        zip serialization format.

    Returns
    -------
    dict[str, numpy.ndarray]
        Tensor name to a C-contiguous native-endian array, in file order. ``bfloat16``
        tensors are widened to ``float32``.

    Raises
    ------
    UnsafeCheckpointError
        The pickle references a global beyond what a state dict needs (e.g. ``os.system``);
        it is refused before anything is called.
    CheckpointError
        The file is truncated, corrupt or does not hold a mapping of tensors.
    OSError
        The file cannot be opened.
    """
    name = os.fspath(path)
    with open(name, "rb") as file:
        if zipfile.is_zipfile(file):
            file.seek(0)
            return _load_zip(file, name)
        file.seek(0)
        return _load_legacy(file, name)

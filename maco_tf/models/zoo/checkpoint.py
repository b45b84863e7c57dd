"""Read PyTorch checkpoints into numpy arrays without torch, and without running code.

A ``.pth`` file is a pickle, and unpickling an untrusted pickle can execute arbitrary
code. This module never hands a checkpoint to :mod:`pickle`: its records are interpreted
by :func:`maco_tf.models.zoo.safe_pickle.load_restricted`, which builds plain data only and
lets a record name just the globals a state dict refers to (``collections.OrderedDict``,
the ``torch._utils._rebuild_*`` tensor constructors and the ``torch.*Storage`` classes).
Each global becomes a fresh immutable token; calls go to local stand-ins that validate
their arguments. Any other global or object-building opcode is refused with
:class:`UnsafeCheckpointError` before anything is called.

Sizes are bounded by :class:`CheckpointLimits`: every tensor's size, stride and offset
must fall inside its storage, every storage inside the file, and the bytes read and
returned inside ``max_tensor_bytes``, all checked before any tensor memory is allocated.

Both serialization layouts of ``torch.save`` are understood:

* the legacy stream (``_use_new_zipfile_serialization=False``): a magic number, a
  protocol version, a sys-info dict, the pickled object, the pickled list of storage
  keys, then each storage's raw data (an int64 element count followed by the bytes);
* the zip archive (default since torch 1.6): ``<prefix>/data.pkl`` plus one stored
  (uncompressed) ``<prefix>/data/<key>`` member of raw bytes per storage.
"""

from __future__ import annotations

import math
import mmap
import os
import pickle
import stat
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO

import numpy as np

from maco_tf.errors import MacoError
from maco_tf.models.zoo.safe_pickle import (
    AllowedGlobals,
    GlobalRef,
    PickleDataError,
    PickleLimitError,
    PickleLimits,
    PickleRefusedError,
    describe,
    load_restricted,
    new_record_dict,
    require_positive_ints,
    short,
)

__all__ = [
    "CheckpointError",
    "CheckpointLimits",
    "UnsafeCheckpointError",
    "load_torch_state_dict",
]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_NDIM = 32
_MAX_KEY = 256
_MAX_BYTEORDER_MEMBER = 16
_LIMIT_FIELDS = MappingProxyType({"max_bytes": "max_pickle_bytes"})


class CheckpointError(MacoError):
    """A checkpoint file is corrupt, truncated, over a limit or not a tensor state dict."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint asks for a global, a call or an opcode a tensor state dict never needs.

    Parameters
    ----------
    global_name
        Dotted name (``module.qualname``) of the refused global, or ``None`` when an
        opcode was refused.
    path
        File being read, for the message.
    reason
        What was refused, when it was not a global (e.g. ``"the pickle opcode NEWOBJ"``).
    """

    def __init__(
        self, global_name: str | None, path: str = "<checkpoint>", reason: str | None = None
    ) -> None:
        self.global_name = global_name
        self.path = path
        what = f"the global {short(global_name)}" if global_name is not None else reason
        super().__init__(
            f"refusing to load {path!s}: it uses {what}, which a tensor state dict never "
            "needs; nothing was executed"
        )


@dataclass(frozen=True)
class CheckpointLimits:
    """Bounds on what reading one checkpoint may cost.

    Parameters
    ----------
    max_pickle_bytes
        Largest pickle record (the zip ``data.pkl`` member, or each legacy record);
        32 MiB by default.
    max_depth
        Deepest nesting of tuples, lists and dicts inside a record; 32 by default.
    max_items
        Most values one record may push (marks and memo entries included); 1 000 000 by
        default.
    max_tensor_bytes
        Most tensor bytes, 1 GiB by default: the storage bytes read from the file and,
        separately, the bytes of the arrays returned (a strided or broadcast view can be
        larger than its storage).

    Raises
    ------
    InvalidSettingError
        A limit is not a positive integer.
    """

    max_pickle_bytes: int = PickleLimits.max_bytes
    max_depth: int = PickleLimits.max_depth
    max_items: int = PickleLimits.max_items
    max_tensor_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        require_positive_ints(
            self, ("max_pickle_bytes", "max_depth", "max_items", "max_tensor_bytes")
        )

    @property
    def pickle(self) -> PickleLimits:
        """The per-record limits handed to the pickle reader."""
        return PickleLimits(self.max_pickle_bytes, self.max_depth, self.max_items)


# --------------------------------------------------------------------------- stand-ins

_STORAGE_DTYPES: Mapping[str, str] = MappingProxyType(
    {
        "DoubleStorage": "f8",
        "FloatStorage": "f4",
        "HalfStorage": "f2",
        "BFloat16Storage": "bf16",  # widened to float32 when decoded
        "LongStorage": "i8",
        "IntStorage": "i4",
        "ShortStorage": "i2",
        "CharStorage": "i1",
        "ByteStorage": "u1",
        "BoolStorage": "?",
    }
)


def _itemsize(kind: str) -> int:
    """Bytes per stored element of a ``torch.<kind>`` storage."""
    dtype = _STORAGE_DTYPES[kind]
    return 2 if dtype == "bf16" else np.dtype(dtype).itemsize


def _out_itemsize(kind: str) -> int:
    """Bytes per element of the returned array."""
    return 4 if _STORAGE_DTYPES[kind] == "bf16" else _itemsize(kind)


@dataclass(frozen=True, slots=True)
class _StorageRef:
    """A storage announced by a persistent id; its data is read after unpickling."""

    key: str
    kind: str  # torch storage class name, e.g. "FloatStorage"
    numel: int
    offset: int = 0  # element offset into the root storage (legacy views only)

    @property
    def nbytes(self) -> int:
        """Bytes of stored data."""
        return self.numel * _itemsize(self.kind)


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """Result of the ``_rebuild_tensor*`` stand-ins: a strided view inside a storage."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def out_nbytes(self) -> int:
        """Bytes of the returned array, counting a zero-length dimension as one."""
        return math.prod(max(n, 1) for n in self.size) * _out_itemsize(self.storage.kind)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _geometry(value: Any, what: str) -> tuple[int, ...]:
    if _is_int(value):
        value = (value,)
    if type(value) not in (tuple, list) or len(value) > _MAX_NDIM:
        raise PickleDataError(f"tensor {what} is {describe(value)}, not up to {_MAX_NDIM} ints")
    if not all(_is_int(v) and v >= 0 for v in value):
        raise PickleDataError(f"tensor {what} holds something other than non-negative ints")
    return tuple(value)


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any
) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2``.

    Checks that the view lies inside its storage. Extra arguments (``requires_grad``,
    ``backward_hooks``, ``metadata``) are ignored.
    """
    if not isinstance(storage, _StorageRef):
        raise PickleDataError(f"tensor rebuilt from {describe(storage)}, not a storage")
    if not _is_int(storage_offset) or not 0 <= storage_offset <= storage.numel:
        raise PickleDataError(f"tensor storage offset {describe(storage_offset)} out of range")
    shape, strides = _geometry(size, "size"), _geometry(stride, "stride")
    if len(shape) != len(strides):
        raise PickleDataError(f"tensor has {len(shape)} sizes but {len(strides)} strides")
    if math.prod(shape):
        last = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
        if last >= storage.numel:
            raise PickleDataError(
                f"tensor of {len(shape)} dimensions at offset {storage_offset} overruns its "
                f"storage {short(storage.key)} of {storage.numel} elements"
            )
    return _TensorRef(storage, storage_offset, shape, strides)


def _rebuild_parameter(data: Any, *_ignored: Any) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_parameter``: a parameter is its data."""
    if not isinstance(data, _TensorRef):
        raise PickleDataError(f"parameter rebuilt from {describe(data)}, not a tensor")
    return data


_STATE_DICT_GLOBALS: AllowedGlobals = MappingProxyType(
    {
        ("collections", "OrderedDict"): new_record_dict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        **{("torch", kind): None for kind in _STORAGE_DTYPES},  # named, never called
    }
)
_NO_GLOBALS: AllowedGlobals = MappingProxyType({})


def _storage_from_pid(pid: Any, limits: CheckpointLimits) -> tuple[_StorageRef, Any]:
    """Parse ``('storage', type, key, location, numel[, view_metadata])``."""
    if type(pid) is not tuple or len(pid) not in (5, 6) or pid[0] != "storage":
        raise PickleDataError(f"persistent id is {describe(pid)}, not a storage record")
    kind, key, _location, numel = pid[1:5]
    if (
        not isinstance(kind, GlobalRef)
        or kind.module != "torch"
        or kind.name not in _STORAGE_DTYPES
    ):
        raise PickleDataError(f"storage type is {describe(kind)}, not a torch storage class")
    if type(key) is not str or len(key) > _MAX_KEY or not _is_int(numel) or numel < 0:
        raise PickleDataError("malformed storage record (key or element count)")
    ref = _StorageRef(key, kind.name, numel)
    if ref.nbytes > limits.max_tensor_bytes:
        raise _over_budget("storage", ref.nbytes, limits)
    return ref, pid[5] if len(pid) == 6 else None


def _over_budget(what: str, nbytes: int, limits: CheckpointLimits) -> PickleLimitError:
    return PickleLimitError(
        f"{what} would take {nbytes} bytes, more than the limit of {limits.max_tensor_bytes}",
        "max_tensor_bytes",
    )


# ------------------------------------------------------------------- materialising


def _check_budget(
    tensors: Mapping[str, _TensorRef], storages: Mapping[str, int], limits: CheckpointLimits
) -> None:
    """Refuse before allocating: total stored bytes and total returned bytes."""
    stored = sum(storages.values())
    if stored > limits.max_tensor_bytes:
        raise _over_budget("the stored tensor data", stored, limits)
    returned = sum(ref.out_nbytes for ref in tensors.values())
    if returned > limits.max_tensor_bytes:
        raise _over_budget("the returned arrays", returned, limits)


def _decode_storage(raw: bytes | memoryview, kind: str, byteorder: str) -> np.ndarray:
    """Raw bytes -> 1-D array of the storage's dtype (bfloat16 widened to float32)."""
    if _STORAGE_DTYPES[kind] == "bf16":
        halves = np.frombuffer(raw, dtype=np.dtype("u2").newbyteorder(byteorder))
        return (halves.astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(_STORAGE_DTYPES[kind]).newbyteorder(byteorder))


def _materialise(ref: _TensorRef, data: np.ndarray) -> np.ndarray:
    """Copy a strided view (already checked to lie inside ``data``) into a new array."""
    dtype = data.dtype.newbyteorder("=")
    if not math.prod(ref.size):
        return np.empty(ref.size, dtype=dtype)
    start = ref.storage.offset + ref.offset
    strides = tuple(
        s * data.itemsize if n > 1 else 0 for n, s in zip(ref.size, ref.stride, strict=True)
    )
    view = np.lib.stride_tricks.as_strided(
        data[start:], shape=ref.size, strides=strides, writeable=False
    )
    return np.array(view, dtype=dtype, order="C", copy=True)


def _state_dict_entries(obj: Any) -> dict[str, _TensorRef]:
    """The unpickled top-level object as ``{name: tensor}`` (a ``state_dict`` key unwrapped)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise PickleDataError(f"expected a state dict, found {describe(obj)}")
    for name, value in obj.items():
        if type(name) is not str:
            raise PickleDataError(f"state dict key {describe(name)} is not a string")
        if not isinstance(value, _TensorRef):
            raise PickleDataError(f"entry {short(name)} is {describe(value)}, not a tensor")
    return obj


def _arrays(
    tensors: Mapping[str, _TensorRef], storages: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    return {name: _materialise(ref, storages[ref.storage.key]) for name, ref in tensors.items()}


# ------------------------------------------------------------------------- formats


def _legacy_records(
    data: Any, limits: CheckpointLimits
) -> tuple[str, dict[str, _TensorRef], dict[str, _StorageRef], list[str], int]:
    """Parse the five legacy records: byte order, tensors, storages, key list, data offset."""
    plain = {"limits": limits.pickle, "allowed": _NO_GLOBALS}
    magic, pos = load_restricted(data, 0, **plain)
    if not _is_int(magic) or magic != _LEGACY_MAGIC:
        raise PickleDataError("not a PyTorch checkpoint (bad magic number)")
    protocol, pos = load_restricted(data, pos, **plain)
    if not _is_int(protocol) or protocol != _LEGACY_PROTOCOL:
        raise PickleDataError(f"unsupported legacy protocol version {describe(protocol)}")
    sys_info, pos = load_restricted(data, pos, **plain)
    if type(sys_info) is not dict or type(sys_info.get("little_endian", True)) is not bool:
        raise PickleDataError("malformed sys info record")
    byteorder = "<" if sys_info.get("little_endian", True) else ">"

    roots: dict[str, _StorageRef] = {}

    def persistent_load(pid: Any) -> _StorageRef:
        ref, view = _storage_from_pid(pid, limits)
        root = roots.setdefault(ref.key, ref)
        if root != ref:
            raise PickleDataError(f"storage {short(ref.key)} announced inconsistently")
        if view is None:
            return root
        if (
            type(view) is not tuple
            or len(view) != 3
            or type(view[0]) is not str
            or not all(_is_int(v) and v >= 0 for v in view[1:])
            or view[1] + view[2] > root.numel
        ):
            raise PickleDataError(f"malformed view of storage {short(ref.key)}")
        return _StorageRef(root.key, root.kind, view[2], view[1])

    obj, pos = load_restricted(
        data,
        pos,
        limits=limits.pickle,
        allowed=_STATE_DICT_GLOBALS,
        persistent_load=persistent_load,
    )
    tensors = _state_dict_entries(obj)
    keys, pos = load_restricted(data, pos, **plain)
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise PickleDataError("malformed storage key list")
    if len(set(keys)) != len(keys) or set(keys) != set(roots):
        raise PickleDataError("storage key list does not match the storages used")
    return byteorder, tensors, roots, keys, pos


def _load_legacy(data: Any, limits: CheckpointLimits) -> dict[str, np.ndarray]:
    """Read the legacy (non-zip) ``torch.save`` stream from a bytes-like ``data``."""
    byteorder, tensors, roots, keys, pos = _legacy_records(data, limits)
    _check_budget(tensors, {key: ref.nbytes for key, ref in roots.items()}, limits)
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        ref = roots[key]
        if pos + 8 > len(data):
            raise PickleDataError(f"truncated checkpoint (storage {short(key)} missing)")
        numel = int.from_bytes(data[pos : pos + 8], "little" if byteorder == "<" else "big")
        if numel != ref.numel:
            raise PickleDataError(f"storage {short(key)} holds {numel} elements, not {ref.numel}")
        if pos + 8 + ref.nbytes > len(data):
            raise PickleDataError(f"truncated checkpoint (data of storage {short(key)} cut short)")
        storages[key] = _decode_storage(data[pos + 8 : pos + 8 + ref.nbytes], ref.kind, byteorder)
        pos += 8 + ref.nbytes
    return _arrays(tensors, storages)


@contextmanager
def _zip_errors() -> Iterator[None]:
    """Turn the failures of :mod:`zipfile` on a damaged archive into PickleDataError."""
    try:
        yield
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        KeyError,
        IndexError,
        OverflowError,
        NotImplementedError,
        RuntimeError,
        ValueError,
    ) as exc:
        if isinstance(exc, PickleDataError):
            raise
        raise PickleDataError(f"corrupt zip checkpoint ({type(exc).__name__})") from None


def _check_members(archive: zipfile.ZipFile, file_size: int) -> None:
    """Accept only plain stored members that lie inside the file."""
    for info in archive.infolist():
        if info.flag_bits & 0x1:
            raise PickleDataError(f"zip member {short(info.filename)} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise PickleDataError(
                f"zip member {short(info.filename)} uses compression method "
                f"{info.compress_type}; torch.save writes stored (uncompressed) members only"
            )
        if info.file_size != info.compress_size or info.header_offset + info.file_size > file_size:
            raise PickleDataError(f"zip member {short(info.filename)} has inconsistent sizes")


def _zip_prefix(archive: zipfile.ZipFile) -> str:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise PickleDataError("zip checkpoint without a single */data.pkl")
    return pickles[0][: -len("data.pkl")]


def _read_member(archive: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    """A small member (``data.pkl``, ``byteorder``), refused if over ``max_bytes``."""
    info = archive.getinfo(name)
    if info.file_size > max_bytes:
        raise PickleLimitError(
            f"{short(name)} is {info.file_size} bytes, over the limit of {max_bytes} bytes",
            "max_bytes",
        )
    return archive.read(info)


def _member_size(archive: zipfile.ZipFile, name: str, ref: _StorageRef) -> int:
    """Declared size of a storage member, refused when shorter than its storage."""
    try:
        size = archive.getinfo(name).file_size
    except KeyError:
        raise PickleDataError(
            f"zip checkpoint lacks the data of storage {short(ref.key)}"
        ) from None
    if size < ref.nbytes:
        raise PickleDataError(f"storage {short(ref.key)} is shorter than announced")
    return size


def _load_zip(file: BinaryIO, file_size: int, limits: CheckpointLimits) -> dict[str, np.ndarray]:
    """Read the zip-archive ``torch.save`` layout."""
    with _zip_errors(), zipfile.ZipFile(file) as archive:
        _check_members(archive, file_size)
        prefix = _zip_prefix(archive)
        byteorder = "<"
        if f"{prefix}byteorder" in archive.namelist():
            order = _read_member(archive, f"{prefix}byteorder", _MAX_BYTEORDER_MEMBER)
            byteorder = ">" if order.strip() == b"big" else "<"
        refs: dict[str, _StorageRef] = {}

        def persistent_load(pid: Any) -> _StorageRef:
            ref, view = _storage_from_pid(pid, limits)
            if view is not None or refs.setdefault(ref.key, ref) != ref:
                raise PickleDataError(f"storage {short(ref.key)} announced inconsistently")
            return ref

        record = _read_member(archive, f"{prefix}data.pkl", limits.max_pickle_bytes)
        obj, _ = load_restricted(
            record,
            limits=limits.pickle,
            allowed=_STATE_DICT_GLOBALS,
            persistent_load=persistent_load,
        )
        tensors = _state_dict_entries(obj)
        members = {
            key: _member_size(archive, f"{prefix}data/{key}", ref) for key, ref in refs.items()
        }
        _check_budget(tensors, members, limits)
        storages = {
            key: _decode_storage(
                memoryview(archive.read(f"{prefix}data/{key}"))[: ref.nbytes], ref.kind, byteorder
            )
            for key, ref in refs.items()
        }
    return _arrays(tensors, storages)


@contextmanager
def _mapped(file: BinaryIO, size: int) -> Iterator[Any]:
    """The whole file as a read-only ``mmap`` (``b""`` when empty)."""
    if size == 0:
        yield b""
        return
    with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


def load_torch_state_dict(
    path: str | os.PathLike[str], *, limits: CheckpointLimits | None = None
) -> dict[str, np.ndarray]:
    """Load a PyTorch state dict as numpy arrays, safely and without torch.

    Parameters
    ----------
    path
        A file written by ``torch.save(model.state_dict(), path)``, in the legacy or the
        zip serialization format (a dict holding it under ``"state_dict"`` also works).
    limits
        Bounds on pickle size, nesting, item counts and tensor bytes; ``None`` uses
        ``CheckpointLimits()``, which admits up to 1 GiB of tensors.

    Returns
    -------
    dict[str, numpy.ndarray]
        Tensor name to a C-contiguous native-endian array, in file order. ``bfloat16``
        tensors are widened to ``float32``.

    Raises
    ------
    UnsafeCheckpointError
        The file asks for a global, a call or a pickle opcode beyond what a state dict needs
        (e.g. ``os.system``, ``NEWOBJ``, ``BUILD`` on anything but a dict); it is refused
        before anything is called.
    CheckpointError
        The file is truncated, corrupt, exceeds a limit or does not hold a mapping of
        tensors. The message names the file and the problem.
    OSError
        The file cannot be opened.
    """
    name = os.fspath(path)
    limits = limits or CheckpointLimits()
    with open(name, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise CheckpointError(f"{name}: not a regular file")
        try:
            if file.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
                return _load_zip(file, status.st_size, limits)
            with _mapped(file, status.st_size) as data:
                return _load_legacy(data, limits)
        except PickleRefusedError as exc:
            raise UnsafeCheckpointError(exc.global_name, name, exc.reason) from None
        except PickleLimitError as exc:
            field = _LIMIT_FIELDS.get(exc.limit, exc.limit)
            raise CheckpointError(
                f"{name}: {exc}; if the file is trusted, raise CheckpointLimits({field}=...)"
            ) from None
        except PickleDataError as exc:
            raise CheckpointError(f"{name}: {exc}") from None

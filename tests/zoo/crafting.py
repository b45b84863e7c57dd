"""Build small torch-style checkpoints, benign and hostile, without torch."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
STORAGE_NAMES = {
    np.dtype("f4"): "FloatStorage",
    np.dtype("f2"): "HalfStorage",
    np.dtype("i8"): "LongStorage",
}


# ------------------------------------------------------- objects the pickler turns into opcodes


class Global:
    """Marker pickled as a bare GLOBAL opcode ``module\\nname``, whatever it names."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self) -> None:  # pickle requires reduce callables to be callable
        raise AssertionError("never called")


class Call:
    """Pickled as ``func(*args)`` (a REDUCE)."""

    def __init__(self, func: Global, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


class ODict:
    """Pickled as torch pickles an OrderedDict: ``OrderedDict()`` then SETITEMS."""

    def __init__(self, items: list[tuple[str, object]]) -> None:
        self.items = items

    def __reduce__(self) -> tuple:
        return Global("collections", "OrderedDict"), (), None, None, iter(self.items)


class Storage:
    """Pickled as a persistent id."""

    def __init__(self, pid: tuple) -> None:
        self.pid = pid


class Raw:
    """Bytes spliced verbatim into the pickle stream."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class CraftingPickler(pickle._Pickler):  # the pure-Python pickler lets us emit any global
    def persistent_id(self, obj: object) -> object:
        return obj.pid if isinstance(obj, Storage) else None

    def save(self, obj: object, save_persistent_id: bool = True) -> None:
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        if isinstance(obj, Raw):
            self.write(obj.data)
            return
        super().save(obj, save_persistent_id)


def dumps(obj: object) -> bytes:
    """Pickle ``obj`` (protocol 2, as torch does) with the crafting pickler."""
    buf = io.BytesIO()
    CraftingPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# --------------------------------------------------------------------- raw opcode assembly


def ops(*parts: bytes) -> bytes:
    """A protocol-2 pickle record made of the given opcode bytes, then STOP."""
    return pickle.PROTO + b"\x02" + b"".join(parts) + pickle.STOP


def text(value: str) -> bytes:
    """BINUNICODE opcode pushing ``value``."""
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def glob(module: str, name: str) -> bytes:
    """GLOBAL opcode."""
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def small_int(value: int) -> bytes:
    """BININT1 opcode."""
    return pickle.BININT1 + bytes([value])


def long1(value: int) -> bytes:
    """LONG1 opcode pushing an arbitrary (here: huge) integer."""
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(data)]) + data


# --------------------------------------------------------------------------- checkpoints


def tensor(
    key: str, storage: np.ndarray, offset: object, size: object, stride: object, legacy: bool = True
) -> Call:
    """``_rebuild_tensor_v2`` of a view into ``storage`` as torch pickles it."""
    pid = ("storage", Global("torch", STORAGE_NAMES[storage.dtype]), key, "cpu", storage.size)
    if legacy:
        pid = (*pid, None)
    return Call(
        Global("torch._utils", "_rebuild_tensor_v2"),
        Storage(pid),
        offset,
        size,
        stride,
        False,
        Call(Global("collections", "OrderedDict")),
    )


def _record(obj: object) -> bytes:
    return obj if isinstance(obj, bytes) else dumps(obj)


def legacy_bytes(obj: object, storages: dict[str, np.ndarray]) -> bytes:
    """A legacy ``torch.save`` stream: ``obj`` is an object to pickle or a raw record."""
    parts = [
        pickle.dumps(LEGACY_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps(SYS_INFO, protocol=2),
        _record(obj),
        pickle.dumps(list(storages), protocol=2),
    ]
    for array in storages.values():
        parts += [struct.pack("<q", array.size), array.tobytes()]
    return b"".join(parts)


def zip_bytes(obj: object, storages: dict[str, np.ndarray]) -> bytes:
    """A zip ``torch.save`` archive: ``obj`` is an object to pickle or a raw record."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("archive/data.pkl", _record(obj))
        archive.writestr("archive/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"archive/data/{key}", array.tobytes())
    return buf.getvalue()


def write_legacy(path: Path, obj: object, storages: dict[str, np.ndarray]) -> Path:
    path.write_bytes(legacy_bytes(obj, storages))
    return path


def write_zip(path: Path, obj: object, storages: dict[str, np.ndarray]) -> Path:
    path.write_bytes(zip_bytes(obj, storages))
    return path


def small_state(legacy: bool) -> tuple[ODict, dict[str, np.ndarray]]:
    """A state dict exercising offsets, non-contiguous strides, scalars and dtypes."""
    floats = np.arange(24, dtype=np.float32)
    halves = np.array([1.5, -2.0, 0.25], dtype=np.float16)
    longs = np.array([7], dtype=np.int64)
    state = ODict(
        [
            ("conv.weight", tensor("0", floats, 0, (2, 3, 4), (12, 4, 1), legacy)),
            ("conv.weight_t", tensor("0", floats, 0, (4, 3, 2), (1, 4, 12), legacy)),
            ("fc.bias", tensor("0", floats, 20, (4,), (1,), legacy)),
            ("half", tensor("1", halves, 1, (2,), (1,), legacy)),
            ("bn.num_batches_tracked", tensor("2", longs, 0, (), (), legacy)),
        ]
    )
    return state, {"0": floats, "1": halves, "2": longs}


def one_tensor(size: object, stride: object, offset: object = 0, legacy: bool = True) -> tuple:
    """A state dict holding one view ``w`` into a 4-float storage."""
    floats = np.arange(4, dtype=np.float32)
    return ODict([("w", tensor("0", floats, offset, size, stride, legacy))]), {"0": floats}

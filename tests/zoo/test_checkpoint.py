"""Tests for the torch-free, restricted PyTorch checkpoint reader."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from maco_tf.models.zoo.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    load_torch_state_dict,
)
from maco_tf.models.zoo.efficientnet_lite import efficientnet_lite0_checkpoint_path

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
STORAGE_NAMES = {
    np.dtype("f4"): "FloatStorage",
    np.dtype("f2"): "HalfStorage",
    np.dtype("i8"): "LongStorage",
}


# ---------------------------------------------------------------- crafting pickles


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


class Storage:
    """Pickled as a persistent id."""

    def __init__(self, pid: tuple) -> None:
        self.pid = pid


class CraftingPickler(pickle._Pickler):  # the pure-Python pickler lets us emit any global
    def persistent_id(self, obj: object) -> object:
        return obj.pid if isinstance(obj, Storage) else None

    def save(self, obj: object, save_persistent_id: bool = True) -> None:
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def dumps(obj: object) -> bytes:
    buf = io.BytesIO()
    CraftingPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def tensor(
    key: str, storage: np.ndarray, offset: int, size: tuple, stride: tuple, legacy: bool = True
) -> Call:
    pid = ("storage", Global("torch", STORAGE_NAMES[storage.dtype]), key, "cpu", storage.size)
    if legacy:
        pid = (*pid, None)
    hooks = Call(Global("collections", "OrderedDict"))
    return Call(
        Global("torch._utils", "_rebuild_tensor_v2"),
        Storage(pid),
        offset,
        size,
        stride,
        False,
        hooks,
    )


def write_legacy(path: Path, obj: object, storages: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        f.write(pickle.dumps(LEGACY_MAGIC, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps(SYS_INFO, protocol=2))
        f.write(dumps(obj))
        f.write(pickle.dumps(list(storages), protocol=2))
        for array in storages.values():
            f.write(struct.pack("<q", array.size))
            f.write(array.tobytes())
    return path


def write_zip(path: Path, obj: object, storages: dict[str, np.ndarray]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", dumps(obj))
        archive.writestr("archive/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"archive/data/{key}", array.tobytes())
    return path


def small_state(legacy: bool) -> tuple[Call, dict[str, np.ndarray]]:
    """A state dict exercising offsets, non-contiguous strides, scalars and dtypes."""
    floats = np.arange(24, dtype=np.float32)
    halves = np.array([1.5, -2.0, 0.25], dtype=np.float16)
    longs = np.array([7], dtype=np.int64)
    state = Call(
        Global("collections", "OrderedDict"),
        [
            ("conv.weight", tensor("0", floats, 0, (2, 3, 4), (12, 4, 1), legacy)),
            ("conv.weight_t", tensor("0", floats, 0, (4, 3, 2), (1, 4, 12), legacy)),
            ("fc.bias", tensor("0", floats, 20, (4,), (1,), legacy)),
            ("half", tensor("1", halves, 1, (2,), (1,), legacy)),
            ("bn.num_batches_tracked", tensor("2", longs, 0, (), (), legacy)),
        ],
    )
    return state, {"0": floats, "1": halves, "2": longs}


def check_small_state(loaded: dict[str, np.ndarray]) -> None:
    floats = np.arange(24, dtype=np.float32)
    assert list(loaded) == [
        "conv.weight",
        "conv.weight_t",
        "fc.bias",
        "half",
        "bn.num_batches_tracked",
    ]
    np.testing.assert_array_equal(loaded["conv.weight"], floats.reshape(2, 3, 4))
    np.testing.assert_array_equal(loaded["conv.weight_t"], floats.reshape(2, 3, 4).T)
    np.testing.assert_array_equal(loaded["fc.bias"], floats[20:24])
    np.testing.assert_array_equal(loaded["half"], np.array([-2.0, 0.25], np.float16))
    assert loaded["bn.num_batches_tracked"].shape == ()
    assert int(loaded["bn.num_batches_tracked"]) == 7
    assert loaded["conv.weight_t"].flags.c_contiguous


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("writer, legacy", [(write_legacy, True), (write_zip, False)])
def test_crafted_state_dict_round_trip(tmp_path: Path, writer, legacy: bool) -> None:
    state, storages = small_state(legacy)
    path = writer(tmp_path / "small.pth", state, storages)
    check_small_state(load_torch_state_dict(path))


def test_bundled_checkpoint_loads() -> None:
    state = load_torch_state_dict(efficientnet_lite0_checkpoint_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values())


class RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def malicious_payloads(marker: Path) -> dict[str, tuple[object, str]]:
    """name -> (object to pickle as the main record, global expected in the error)."""
    shell = f"touch {marker}"
    python = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": (RunsShell(shell), "system"),
        "builtins.eval": (Call(Global("builtins", "eval"), python), "builtins.eval"),
        "eval in a tensor's hooks": (
            Call(
                Global("collections", "OrderedDict"),
                [
                    (
                        "w",
                        Call(
                            Global("torch._utils", "_rebuild_tensor_v2"),
                            Storage(
                                ("storage", Global("torch", "FloatStorage"), "0", "cpu", 1, None)
                            ),
                            0,
                            (1,),
                            (1,),
                            False,
                            Call(Global("builtins", "exec"), python),
                        ),
                    )
                ],
            ),
            "builtins.exec",
        ),
        "torch-looking global": (Call(Global("torch", "load"), str(marker)), "torch.load"),
        "subprocess": (Call(Global("subprocess", "call"), shell), "subprocess.call"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "os.system",
        "builtins.eval",
        "eval in a tensor's hooks",
        "torch-looking global",
        "subprocess",
    ],
)
@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_malicious_checkpoint_is_refused(tmp_path: Path, case: str, writer) -> None:
    marker = tmp_path / "pwned"
    payload, refused = malicious_payloads(marker)[case]
    path = writer(tmp_path / "evil.pth", payload, {"0": np.zeros(1, np.float32)})
    with pytest.raises(UnsafeCheckpointError, match="refusing to load") as info:
        load_torch_state_dict(path)
    assert refused in info.value.global_name
    assert str(path) in str(info.value)
    assert isinstance(info.value, pickle.UnpicklingError)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["os.system", "builtins.eval"])
def test_payloads_are_live_under_plain_pickle(tmp_path: Path, case: str) -> None:
    """Control: the crafted payloads really do run code when unpickled naively."""
    marker = tmp_path / "pwned"
    payload, _ = malicious_payloads(marker)[case]
    pickle.loads(dumps(payload))  # deliberate: only writes a file in tmp_path
    assert marker.exists()


def test_malicious_header_record_is_refused(tmp_path: Path) -> None:
    """Even the sys-info record, read before the state dict, admits no globals."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        f.write(pickle.dumps(LEGACY_MAGIC, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps(RunsShell(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafeCheckpointError):
        load_torch_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 10, 2_000, 45_000, 9_000_000, 18_826_031])
def test_truncated_checkpoint_gives_clear_error(tmp_path: Path, keep: int) -> None:
    data = efficientnet_lite0_checkpoint_path().read_bytes()[:keep]
    path = tmp_path / "truncated.pth"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="truncated|corrupt") as info:
        load_torch_state_dict(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=str(path)):
        load_torch_state_dict(path)
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="magic"):
        load_torch_state_dict(path)


def test_out_of_bounds_view_is_rejected(tmp_path: Path) -> None:
    """A tensor whose size/stride reaches past its storage must not read foreign memory."""
    floats = np.arange(4, dtype=np.float32)
    state = Call(
        Global("collections", "OrderedDict"), [("w", tensor("0", floats, 2, (1000,), (1000,)))]
    )
    path = write_legacy(tmp_path / "oob.pth", state, {"0": floats})
    with pytest.raises(CheckpointError, match="overruns"):
        load_torch_state_dict(path)


def test_storage_size_mismatch_is_rejected(tmp_path: Path) -> None:
    floats = np.arange(4, dtype=np.float32)
    state = Call(Global("collections", "OrderedDict"), [("w", tensor("0", floats, 0, (4,), (1,)))])
    path = write_legacy(tmp_path / "short.pth", state, {"0": floats[:2]})
    with pytest.raises(CheckpointError, match="expected 4"):
        load_torch_state_dict(path)


def test_non_tensor_entries_are_rejected(tmp_path: Path) -> None:
    path = write_legacy(tmp_path / "plain.pth", {"lr": 0.1}, {})
    with pytest.raises(CheckpointError, match="not a tensor"):
        load_torch_state_dict(path)

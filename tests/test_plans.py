"""Direction files of ``--direction``: checked from the ``.npy`` header before any value is read."""

import os
import resource
import struct

import numpy as np
import pytest

from maco_tf import Limits, MacoError
from maco_tf.runs.index_lists import MAX_INDICES
from maco_tf.runs.plans import load_directions


def npy_declaring(shape: tuple[int, ...], descr: str = "<f4", data: bytes = b"") -> bytes:
    """A version 1.0 ``.npy`` file whose header declares ``shape`` of ``descr``, then ``data``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header = header.ljust(117) + "\n"  # magic + length + header = 128 bytes, as numpy pads
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def _refused(path, fragment: str) -> str:
    with pytest.raises(MacoError) as error:
        load_directions(str(path))
    message = str(error.value)
    assert fragment in message and "\n" not in message and str(path) in message
    return message


def test_a_128_byte_file_declaring_10_to_the_10_rows_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_declaring((10**10, 8)))
    assert path.stat().st_size == 128
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(path, f"holds 10000000000 directions, more than the {MAX_INDICES}")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_rows_count_against_the_target_bound(tmp_path):
    path = tmp_path / "many.npy"
    np.save(path, np.ones((MAX_INDICES + 1, 2), np.float32))
    _refused(path, "more than the 100000 one run may make")
    np.save(path, np.ones((3, 2), np.float32))
    assert load_directions(str(path)).shape == (3, 2)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.ones((2, 3), np.complex64), "complex"),
        (np.ones((2, 2, 2), np.float32), "shape (2, 2, 2)"),
        (np.array(1.0), "shape ()"),
        (np.array([True, False]), "bool"),
        (np.array([[1e39, 1.0]]), "infinite values (in float32)"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.zeros((1, 4)), "all zeros"),
    ],
)
def test_the_array_must_be_one_or_two_real_finite_axes(tmp_path, array, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    _refused(path, fragment)


def test_declared_bytes_must_be_held_and_bounded(tmp_path):
    path = tmp_path / "short.npy"
    path.write_bytes(npy_declaring((4, 2), data=b"\x00" * 16))
    _refused(path, "declares (4, 2) float32 values (32 bytes) but holds 16 bytes")
    path.write_bytes(npy_declaring((4, 2), descr="|O"))
    _refused(path, "object")
    np.save(path, np.ones((65, 8), np.float64))  # 4160 bytes
    with pytest.raises(MacoError, match="over the limit max_batch_memory=4096"):
        load_directions(str(path), Limits(max_batch_memory=4096))
    assert load_directions(str(path)).dtype == np.float32


def test_not_a_npy_file_nor_a_regular_file(tmp_path):
    (tmp_path / "text.npy").write_text("not numpy")
    _refused(tmp_path / "text.npy", "cannot read direction file")
    _refused(tmp_path / "missing.npy", "cannot read direction file")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.npy")  # opened, it would hang
        _refused(tmp_path / "fifo.npy", "not a regular file")

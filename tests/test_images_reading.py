"""Reading photos (:mod:`maco_tf.models.images.reading`): regular files only, bounded before
decoding, every mode, one-line errors), and the promise that reading loads no TensorFlow."""

import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from maco_tf import Limits, MacoError
from maco_tf.models.images import (
    ImageBounds,
    ImageReadError,
    convert_mode,
    image_files,
    image_size,
    read_array,
    read_image,
    regular_file,
)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, depth: int = 8, colour: int = 2, rows=None) -> bytes:
    """A PNG whose header declares ``width x height``; ``rows`` (raw scanlines) or no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = b"" if rows is None else _chunk(b"IDAT", zlib.compress(rows, 9))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + body + _chunk(b"IEND", b"")


def big_bilevel_png(side: int) -> bytes:
    """A valid black ``side x side`` 1-bit PNG (small on disk, huge once decoded)."""
    row = b"\x00" + bytes((side + 7) // 8)
    return png_declaring(side, side, depth=1, colour=0, rows=row * side)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and isinstance(error.value, MacoError)
    return message


# ------------------------------------------------------------------------- regular files


@needs_fifo
def test_a_fifo_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)  # opening it for reading would block: the test would hang
    with pytest.raises(ImageReadError) as error:
        read_image(fifo, what="--image")
    assert "FIFO" in _one_line(error) and "photo.png" in str(error.value)
    with pytest.raises(ImageReadError, match="FIFO"):
        image_size(fifo)


def test_a_directory_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(ImageReadError, match="directory"):
        regular_file(tmp_path, "--image")
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")


@needs_fifo
def test_folders_skip_fifos_and_directories_by_name(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "b.png")
    os.mkfifo(tmp_path / "a.png")
    (tmp_path / "c.jpg").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    notes = []
    assert image_files(tmp_path, note=notes.append) == [tmp_path / "b.png"]
    assert len(notes) == 2 and "a.png" in notes[0] and "FIFO" in notes[0]
    assert "c.jpg" in notes[1] and "directory" in notes[1]


# ------------------------------------------------------------------------ pixel bounds


def test_a_74_byte_bomb_is_one_line(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50000, 50000, rows=b"\x00" * 16))
    assert bomb.stat().st_size < 100
    with pytest.raises(ImageReadError) as error:
        read_image(bomb)
    assert "bomb.png" in _one_line(error) and "max_image_pixels" in str(error.value)


def test_the_pixel_bound_is_checked_from_the_header(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(big_bilevel_png(12000))
    with pytest.raises(ImageReadError) as error:
        read_image(path)
    assert "12000x12000" in _one_line(error) and "MACO_TF_MAX_IMAGE_PIXELS" in str(error.value)
    small = tmp_path / "small.png"
    Image.new("RGB", (5, 4)).save(small)
    assert image_size(small) == (5, 4)
    with pytest.raises(ImageReadError, match="5x4 = 20 pixels"):
        read_image(small, bounds=ImageBounds(max_image_pixels=19))
    assert read_image(small, bounds=ImageBounds(max_image_pixels=20)).size == (5, 4)


_PEAK_SCRIPT = """
import sys
from maco_tf.models.images import ImageReadError, read_image
def peak():  # KiB; VmHWM is this process's own (ru_maxrss would carry its parent's across fork)
    return next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith("VmHWM:"))
before = peak()
try:
    read_image(sys.argv[1])
except ImageReadError:
    pass
else:
    raise SystemExit("decoded")
print(before, peak())
"""


def test_refusing_a_big_png_costs_no_memory(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(big_bilevel_png(12000))  # 144 Mpx: 432 MB as RGB, 1.7 GB as float32
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    before, after = (int(kib) for kib in done.stdout.split())
    assert after - before < 32 * 1024  # KiB: nothing near one decoded image


def test_limits_carry_the_image_bounds_from_the_environment():
    limits = Limits.from_environment(
        {"MACO_TF_MAX_IMAGE_PIXELS": "99", "MACO_TF_MAX_EXAMPLES": "3"}
    )
    assert limits.image_bounds() == ImageBounds(99, 3, Limits().max_example_pixels)
    assert Limits().image_bounds() == ImageBounds()
    # well below what 24 GiB decodes several times over, as float32 RGB
    assert ImageBounds().max_image_pixels * 3 * 4 * 8 < 24 * 2**30


def test_folders_are_bounded_in_number_and_pixels(tmp_path):
    for index in range(4):
        Image.new("RGB", (10, 10)).save(tmp_path / f"{index}.png")
    assert len(image_files(tmp_path, bounds=ImageBounds(max_examples=4))) == 4
    with pytest.raises(ImageReadError) as error:
        image_files(tmp_path, bounds=ImageBounds(max_examples=3))
    assert "holds 4 photos" in _one_line(error) and "MACO_TF_MAX_EXAMPLES" in str(error.value)
    assert len(image_files(tmp_path, first=3, bounds=ImageBounds(max_examples=3))) == 3
    with pytest.raises(ImageReadError, match="MACO_TF_MAX_EXAMPLE_PIXELS"):
        image_files(tmp_path, bounds=ImageBounds(max_example_pixels=399))
    with pytest.raises(ImageReadError, match="not a folder"):
        image_files(tmp_path / "0.png")


# ---------------------------------------------------------------------- decoder errors


@pytest.mark.parametrize(
    "content",
    [
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n",
        png_declaring(8, 8, rows=b"\x00" * 5),  # truncated pixel data
        png_declaring(8, 8, depth=3, colour=2),  # a bit depth PNG does not have
    ],
)
def test_every_decoder_error_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as error:
        read_array(path)
    assert "broken.png" in _one_line(error)


# ----------------------------------------------------------------------------- modes


def test_16_bit_grey_is_scaled_by_its_range(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as image:
        assert image.mode.startswith("I")
    grey = read_array(tmp_path / "grey16.png", channels=1)[..., 0].astype(float)
    np.testing.assert_allclose(grey, ramp / 257.0, atol=0.51)
    rgb = read_array(tmp_path / "grey16.png")
    assert (rgb == 255).mean() < 0.01 and np.all(rgb[..., 0] == rgb[..., 2])


def test_32_bit_and_float_grey_use_their_real_range():
    wide = Image.fromarray(np.array([[-1000, 0], [500, 1000]], np.int32))
    assert np.asarray(convert_mode(wide, 1)).tolist() == [[0, 128], [191, 255]]
    fractions = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], np.float32))
    assert np.asarray(convert_mode(fractions, 1)).tolist() == [[0, 128], [255, 64]]
    flat = Image.fromarray(np.full((2, 2), 7.5, np.float32))
    assert np.asarray(convert_mode(flat, 1)).max() == 0
    with pytest.raises(ValueError, match="NaN"):
        convert_mode(Image.fromarray(np.array([[np.nan]], np.float32)))


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    assert np.asarray(convert_mode(rgba)).tolist() == [[[255, 255, 255], [10, 20, 30]]]
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (60, 255))
    assert np.asarray(convert_mode(la, 1)).tolist() == [[255, 60]]
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    assert np.asarray(convert_mode(palette)).tolist() == [[[255, 255, 255], [200, 0, 0]]]


def test_cmyk_palette_and_bilevel_become_rgb(tmp_path):
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))
    cmyk.save(tmp_path / "cmyk.jpg", quality=100)
    red = read_array(tmp_path / "cmyk.jpg")
    assert red.shape == (2, 3, 3) and red[..., 0].min() > 200 and red[..., 1:].max() < 60
    palette = Image.new("RGB", (4, 4), (0, 0, 255)).convert("P")
    palette.save(tmp_path / "palette.gif")
    assert read_array(tmp_path / "palette.gif")[0, 0].tolist() == [0, 0, 255]
    Image.new("1", (4, 4), 1).save(tmp_path / "bilevel.png")
    assert read_array(tmp_path / "bilevel.png", channels=1).max() == 255
    with pytest.raises(ValueError, match="channels"):
        convert_mode(cmyk, 4)


def exif_rotated_jpeg(path: Path) -> None:
    """A JPEG stored 8 wide and 4 high, left half red, whose EXIF turns it upright 4 x 8."""
    stored = Image.new("RGB", (8, 4), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 4, 4))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    stored.save(path, exif=exif, quality=100)


def test_exif_orientation_is_applied(tmp_path):
    exif_rotated_jpeg(tmp_path / "rotated.jpg")
    upright = read_array(tmp_path / "rotated.jpg")
    assert upright.shape == (8, 4, 3)


_LAZY_SCRIPT = """
import sys
import numpy as np
from PIL import Image
from maco_tf.models.images import read_array
Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(sys.argv[1])
read_array(sys.argv[1])
print(sorted(name for name in ("tensorflow", "keras") if name in sys.modules))
"""


def test_reading_a_photo_loads_no_tensorflow(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", _LAZY_SCRIPT, str(tmp_path / "photo.png")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ property: mutated headers


def _seed_files() -> dict[str, bytes]:
    """Small valid files of several formats: the starting points of the mutations."""
    import io

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    files = {}
    for name, mode, fmt in [
        ("rgb.png", "RGB", "PNG"),
        ("grey16.png", "I;16", "PNG"),
        ("palette.gif", "P", "GIF"),
        ("photo.jpg", "RGB", "JPEG"),
        ("cmyk.tif", "CMYK", "TIFF"),
        ("rgba.webp", "RGBA", "WEBP"),
        ("rgb.bmp", "RGB", "BMP"),
    ]:
        image = Image.fromarray(pixels).convert(mode if mode != "I;16" else "L")
        if mode == "I;16":
            image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        files[name] = buffer.getvalue()
    files["declares_50000.png"] = png_declaring(50000, 50000)
    return files


_SEEDS = _seed_files()


@st.composite
def _mutated(draw) -> tuple[str, bytes]:
    """A seed file with a few bytes of its first 64 (the header) overwritten, or cut short."""
    name = draw(st.sampled_from(sorted(_SEEDS)))
    data = bytearray(_SEEDS[name])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, min(63, len(data) - 1)))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return name, bytes(data)


@settings(
    max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_mutated())
def test_mutated_headers_are_read_or_refused_in_one_line(tmp_path, case):
    name, data = case
    path = tmp_path / name
    path.write_bytes(data)
    bounds = ImageBounds(max_image_pixels=4096 * 4096)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing raw from the decoders reaches the user
            array = read_array(path, bounds=bounds)
    except ImageReadError as exc:
        event("refused")
        assert "\n" not in str(exc) and name in str(exc)
        return
    event("read")
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
    assert array.shape[0] * array.shape[1] <= bounds.max_image_pixels

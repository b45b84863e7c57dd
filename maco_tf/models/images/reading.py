"""Reading photos: files and folders, checked before anything is decoded.

A photo is read in three checked steps, each refusing bad input with one
:class:`ImageReadError` line that names the file:

1. :func:`regular_file`: the path is a regular file (checked with :func:`os.stat` before anything
   opens it, so a FIFO, a device or a directory is never opened).
2. :func:`image_size`: the header is parsed (no pixel is decoded) and the declared size is
   checked against :attr:`ImageBounds.max_image_pixels`, the project's own bound, well below
   PIL's decompression-bomb threshold.
3. :func:`read_image`: the pixels are decoded, the EXIF orientation applied, and the mode
   converted to 8-bit RGB or grey (:func:`convert_mode`: 16-bit and floating-point grey scaled
   by their real range, palettes expanded, transparency composited on white, CMYK and YCbCr
   converted). Any decoder error, PIL's ``DecompressionBombError`` and its warning included,
   becomes one line.

Folders are listed by :func:`image_files`: regular files with an image suffix, in name order;
other entries with an image suffix (FIFOs, devices, directories, broken links) are named in a
note and skipped; the number of photos and their total declared pixels are bounded
(:attr:`ImageBounds.max_examples`, :attr:`ImageBounds.max_example_pixels`).

The bounds come from :class:`maco_tf.core.limits.Limits` (``Limits.from_environment()
.image_bounds()``, with the environment variables ``MACO_TF_MAX_IMAGE_PIXELS``,
``MACO_TF_MAX_EXAMPLES`` and ``MACO_TF_MAX_EXAMPLE_PIXELS``); this module's defaults are the
same numbers. Neither TensorFlow nor Keras is imported here.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from maco_tf.checks import check_int
from maco_tf.errors import MacoError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageBounds",
    "ImageReadError",
    "convert_mode",
    "image_files",
    "image_size",
    "read_array",
    "read_image",
    "regular_file",
]

#: File suffixes read as images in folders (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
#: Largest 16-bit value: 16-bit grey is scaled from 0-65535 to 0-255.
_UINT16_MAX = 65535
#: What composited transparency shows through.
_BACKGROUND = (255, 255, 255, 255)
#: Modes converted to RGB by PIL as they are.
_COLOUR_MODES = ("RGB", "CMYK", "YCbCr", "HSV", "RGBX")
#: Modes with transparency (composited on white).
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageReadError(MacoError):
    """A photo cannot be read: not a regular file, too large, or not a decodable image."""


@dataclass(frozen=True)
class ImageBounds:
    """How much image data a reader accepts, checked from the headers before decoding.

    Attributes
    ----------
    max_image_pixels
        Largest ``width * height`` of one photo (default 8192 x 8192: its decoding and
        conversion to float32 stay near 1 GiB).
    max_examples
        Largest number of photos in an ``--examples`` folder.
    max_example_pixels
        Largest sum of the declared pixels of an ``--examples`` folder's photos.
    """

    max_image_pixels: int = 8192 * 8192
    max_examples: int = 2000
    max_example_pixels: int = 2**32

    def __post_init__(self) -> None:
        for name in ("max_image_pixels", "max_examples", "max_example_pixels"):
            check_int(getattr(self, name), f"Limits.{name}", 1)

    def refusal(self, what: str, limit: str) -> ImageReadError:
        """The error for ``what`` over the bound ``limit`` (a field name), with how to raise it."""
        return ImageReadError(
            f"{what}, over the limit {limit}={getattr(self, limit)}; use a smaller input, or "
            f"raise the limit with the environment variable MACO_TF_{limit.upper()} (or "
            f"Limits({limit}=...))"
        )


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    """What a file of ``st_mode`` is, for a message (``"a FIFO"``...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def regular_file(path: str | os.PathLike[str], what: str = "image") -> Path:
    """``path`` as a Path, checked to be a regular file (links followed) without opening it.

    Parameters
    ----------
    path
        The file.
    what
        How the message names it (``"--image"``, ``"example image"``...).

    Returns
    -------
    path
        The same path.

    Raises
    ------
    ImageReadError
        For a missing file, a directory, a FIFO, a device or a socket.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ImageReadError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ImageReadError(
            f"{what} {str(path)!r} is {_kind(mode)}, not a regular file; give an image file"
        )
    return path


def _regular_handle(path: Path, what: str) -> BinaryIO:
    """``path`` opened for reading, checked regular before (stat) and after (fstat) opening.

    The file is opened without blocking, so a FIFO swapped in between the two checks cannot
    hang the reader either.
    """
    regular_file(path, what)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImageReadError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    handle = os.fdopen(descriptor, "rb")
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        handle.close()
        raise ImageReadError(
            f"{what} {str(path)!r} is {_kind(mode)}, not a regular file; give an image file"
        )
    return handle


@contextlib.contextmanager
def _open(path: Path, what: str, bounds: ImageBounds) -> Iterator[Image.Image]:
    """The image of a regular file, opened lazily (header only) and checked against the bound."""
    with _regular_handle(path, what) as handle:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our bound decides
            _quiet_decoder_notes()
            try:
                image = Image.open(handle)
            except Image.DecompressionBombError:
                raise bounds.refusal(
                    f"{what} {str(path)!r} declares more pixels than PIL decodes safely",
                    "max_image_pixels",
                ) from None
            except Exception as exc:  # any parser error of any plugin: one line
                reason = _reason(exc)
                raise ImageReadError(f"cannot read {what} {str(path)!r}: {reason}") from None
        with image:
            width, height = image.size
            if width * height > bounds.max_image_pixels:
                raise bounds.refusal(
                    f"{what} {str(path)!r} declares {width}x{height} = {width * height} pixels",
                    "max_image_pixels",
                )
            yield image


def _quiet_decoder_notes() -> None:
    """Silence the decoders' own notes (corrupt EXIF, skipped tags): what they skip is skipped.

    Call inside :func:`warnings.catch_warnings`. What cannot be decoded is still an error.
    """
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def _reason(exc: BaseException) -> str:
    """One line of an exception's message (its class name if it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def image_size(
    path: str | os.PathLike[str], what: str = "image", bounds: ImageBounds | None = None
) -> tuple[int, int]:
    """``(width, height)`` declared by an image file's header, without decoding its pixels.

    Raises
    ------
    ImageReadError
        For a file that is not regular, not an image, or over
        :attr:`ImageBounds.max_image_pixels`.
    """
    with _open(Path(path), what, bounds or ImageBounds()) as image:
        return image.size


def _grey_levels(image: Image.Image) -> np.ndarray:
    """A 16-bit, 32-bit or floating-point grey image as float values in 0-255.

    ``I;16`` modes span 0-65535. ``I`` images whose values fit in 0-65535 are 16-bit data (PIL
    reads 16-bit PNG and TIFF grey so); other ``I`` images, and ``F`` images outside 0-1, are
    stretched from their smallest to their largest value; ``F`` images within 0-1 are
    fractions.
    """
    values = np.asarray(image, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("the image holds NaN or infinite values")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= _UINT16_MAX):
        return values * (255.0 / _UINT16_MAX)
    if image.mode == "F" and low >= 0 and high <= 1:
        return values * 255.0
    if high == low:
        return np.zeros_like(values)
    return (values - low) * (255.0 / (high - low))


def convert_mode(image: Image.Image, channels: int = 3) -> Image.Image:
    """An image of any PIL mode as 8-bit RGB (``channels=3``) or grey ``"L"`` (``channels=1``).

    Parameters
    ----------
    image
        A loaded PIL image of any mode.
    channels
        3 for RGB, 1 for grey.

    Returns
    -------
    image
        Mode ``"RGB"`` or ``"L"``: 16-bit, 32-bit and floating-point grey scaled by their
        range (:func:`_grey_levels`), palettes expanded, transparency (``RGBA``, ``LA``, ``PA``,
        palette transparency) composited on white, CMYK, YCbCr and HSV converted.

    Raises
    ------
    ValueError
        For ``channels`` other than 1 or 3, a mode PIL cannot convert, or non-finite values.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels!r}")
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        levels = np.clip(np.round(_grey_levels(image)), 0, 255).astype(np.uint8)
        grey = Image.fromarray(levels)
        return grey if channels == 1 else grey.convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        background = Image.new("RGBA", image.size, _BACKGROUND)
        image = Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    elif mode in ("1", "L", "P") and channels == 1:
        return image.convert("L")
    elif mode not in _COLOUR_MODES and mode not in ("1", "L", "P"):
        raise ValueError(f"image mode {mode!r} is not supported; save the image as RGB")
    rgb = image.convert("RGB")
    return rgb.convert("L") if channels == 1 else rgb


def read_image(
    path: str | os.PathLike[str],
    channels: int = 3,
    *,
    what: str = "image",
    bounds: ImageBounds | None = None,
) -> Image.Image:
    """Read a photo: regular file, bounded size, EXIF orientation, 8-bit RGB or grey.

    Parameters
    ----------
    path
        An image file of any format PIL reads.
    channels
        3 (RGB) or 1 (grey); see :func:`convert_mode`.
    what
        How messages name the file (``"--image"``, ``"example image"``...).
    bounds
        The pixel bound; default ``ImageBounds()``.

    Returns
    -------
    image
        A decoded PIL image of mode ``"RGB"`` or ``"L"``, upright.

    Raises
    ------
    ImageReadError
        One line naming the file: not a regular file, over the pixel bound (checked from the
        header, before decoding), or not decodable (PIL's errors and bomb checks included).
    """
    path = Path(path)
    with _open(path, what, bounds or ImageBounds()) as image, warnings.catch_warnings():
        _quiet_decoder_notes()
        try:
            upright = ImageOps.exif_transpose(image)
            return convert_mode(upright, channels)
        except Exception as exc:  # truncated data, bad EXIF, unsupported modes: one line
            raise ImageReadError(f"cannot read {what} {str(path)!r}: {_reason(exc)}") from None


def read_array(
    path: str | os.PathLike[str],
    channels: int = 3,
    *,
    what: str = "image",
    bounds: ImageBounds | None = None,
) -> np.ndarray:
    """:func:`read_image` as a uint8 array ``(height, width, channels)``."""
    image = read_image(path, channels, what=what, bounds=bounds)
    return np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, channels)


def _note(message: str) -> None:
    print(f"maco-tf: warning: {message}", file=sys.stderr)


def _candidates(folder: Path, recursive: bool) -> list[Path]:
    """Entries of ``folder`` with an image suffix and no hidden part, sorted by path."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in entries
        if path.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def image_files(
    folder: str | os.PathLike[str],
    *,
    what: str = "--examples",
    recursive: bool = False,
    first: int | None = None,
    bounds: ImageBounds | None = None,
    note: Callable[[str], None] = _note,
) -> list[Path]:
    """The photos of a folder: regular image files, sorted, bounded in number and pixels.

    Parameters
    ----------
    folder
        The folder.
    what
        How messages name it (``"--examples"``...).
    recursive
        Search sub-folders too.
    first
        Keep only the first ``first`` files (a command's own cap) before the bounds are checked.
    bounds
        :attr:`~ImageBounds.max_examples` and :attr:`~ImageBounds.max_example_pixels`
        (default ``ImageBounds()``).
    note
        Called with one line per entry skipped because it is not a regular file (a FIFO, a
        device, a directory named like an image, a broken link); default a warning on stderr.

    Returns
    -------
    files
        Regular files with a suffix of :data:`IMAGE_SUFFIXES` (hidden ones left out), sorted;
        possibly empty. Files whose header cannot be read are kept (their reader names them).

    Raises
    ------
    ImageReadError
        If ``folder`` is not a folder, holds more than ``max_examples`` photos, or their
        declared pixels sum to more than ``max_example_pixels``.
    """
    bounds = bounds or ImageBounds()
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{what} {root} is not a folder")
    files = []
    for path in _candidates(root, recursive):
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            note(f"{what}: skipped {path}: {exc.strerror}")
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        else:
            note(f"{what}: skipped {path}: {_kind(mode)}, not a regular file")
    files = files if first is None else files[:first]
    if len(files) > bounds.max_examples:
        raise bounds.refusal(f"{what} {root} holds {len(files)} photos", "max_examples")
    _check_total_pixels(files, root, what, bounds)
    return files


def _check_total_pixels(files: Sequence[Path], root: Path, what: str, bounds: ImageBounds) -> None:
    """Refuse a folder whose photos declare more than ``max_example_pixels`` in all."""
    total = 0
    for path in files:
        try:
            width, height = image_size(path, what, bounds)
        except ImageReadError:
            continue  # named by the reader, which refuses or skips it
        total += width * height
        if total > bounds.max_example_pixels:
            raise bounds.refusal(
                f"the photos of {what} {root} declare more than {total} pixels in all",
                "max_example_pixels",
            )

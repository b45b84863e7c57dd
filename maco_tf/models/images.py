"""Images into a model: every photo the project reads goes through this module.

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
same numbers.

Arrays go into a model through the second half of the module: :func:`unwrap_model` (a Keras
model or a :class:`~maco_tf.LoadedModel`, with its declared range and logits layer),
:func:`as_images` (a checked batch ``(N, H, W, C)``, a :class:`~maco_tf.Visualization`
accepted), :func:`resolve_ranges` and :func:`map_range` (the images' value range mapped
linearly to the model's), :func:`resize_images` (bilinear, antialiased, to the model input),
:func:`prepare_photos` (photos of any size, centre-cropped and resized), and
:func:`prepared_batches` / :func:`run_batches` (a batch at a time through the model). Bad arrays
and objects that are not models raise :class:`ModelInputError`. TensorFlow and Keras are
imported by the functions that need them, so reading photos does not load them.
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
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps

from maco_tf.checks import check_int, check_values_range
from maco_tf.errors import InvalidSettingError, MacoError

if TYPE_CHECKING:
    import keras

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageBounds",
    "ImageReadError",
    "ModelInputError",
    "as_images",
    "center_crop",
    "check_channels",
    "convert_mode",
    "image_files",
    "image_size",
    "map_range",
    "model_name",
    "prepare_batch",
    "prepare_photos",
    "prepared_batches",
    "read_array",
    "read_image",
    "regular_file",
    "resize_images",
    "resolve_ranges",
    "run_batches",
    "unwrap_model",
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


#: Value range of 8-bit images (photos read from files).
UINT8_RANGE = (0.0, 255.0)
#: Images put through a model at once.
DEFAULT_BATCH_SIZE = 32

Range = tuple[float, float]
ModelLike = object  # a keras.Model or a maco_tf.LoadedModel
ImagesLike = object  # an array (N, H, W, C) or a maco_tf.Visualization


class ImageReadError(MacoError):
    """A photo cannot be read: not a regular file, too large, or not a decodable image."""


class ModelInputError(MacoError):
    """Bad input for a model: a bad batch of images or class indices, or not a model.

    An empty or misshapen batch, a channel count the model does not take, non-finite values,
    class indices out of range, or an object that is neither a ``keras.Model`` nor a
    :class:`~maco_tf.LoadedModel`.
    """


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
    with _open(path, what, bounds or ImageBounds()) as image:
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


# ------------------------------------------------------------------ arrays into a model


def unwrap_model(model: ModelLike) -> tuple[keras.Model, Range | None, str | None]:
    """The Keras model, its declared input range and its logits layer.

    Parameters
    ----------
    model
        A ``keras.Model``, or a :class:`~maco_tf.LoadedModel` (anything with a Keras ``model``
        attribute, and optionally ``values_range`` and ``logits_layer``).

    Returns
    -------
    model, values_range, logits_layer
        The Keras model; the range it expects and the name of its logits layer when a
        LoadedModel declares them, else None.

    Raises
    ------
    ModelInputError
        For anything else.
    """
    import keras

    if isinstance(model, keras.Model):
        return model, None, None
    inner = getattr(model, "model", None)
    if isinstance(inner, keras.Model):
        declared = getattr(model, "values_range", None)
        declared = tuple(float(v) for v in declared) if declared is not None else None
        return inner, declared, getattr(model, "logits_layer", None)
    raise ModelInputError(
        f"model must be a keras.Model or a maco_tf.LoadedModel, not {type(model).__name__}"
    )


def model_name(model: ModelLike) -> str:
    """A model's ``name``, else its class name (for messages and result keys)."""
    name = getattr(model, "name", None)
    return str(name) if name else type(model).__name__


def as_images(
    images: ImagesLike, what: str, values_range: Sequence[float] | None
) -> tuple[np.ndarray, Range | None]:
    """A checked batch of images as float32 and its range.

    Parameters
    ----------
    images
        ``(N, H, W, C)`` array-like, or a :class:`~maco_tf.Visualization`.
    what
        How messages name the argument (``"images"``, ``"reference_images"``...).
    values_range
        Range of the images; default the Visualization's, else None (unknown).

    Returns
    -------
    images, values_range
        A float32 ``(N, H, W, C)`` array with ``N, H, W >= 1`` and finite values, and the
        checked range (or None).

    Raises
    ------
    ModelInputError
        For something that is not a non-empty, finite batch of images.
    """
    own_range = getattr(images, "values_range", None)
    if hasattr(images, "images") and own_range is not None:  # a maco_tf.Visualization
        images = images.images
        if values_range is None:
            values_range = own_range
    try:
        array = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(f"{what} must be an array of images (N, H, W, C): {exc}") from exc
    if array.ndim != 4:
        hint = " (a single image? add a batch axis: images[None])" if array.ndim == 3 else ""
        raise ModelInputError(
            f"{what} must be a batch of images (N, H, W, C); got shape {array.shape}{hint}"
        )
    if array.shape[0] == 0:
        raise ModelInputError(f"{what} is empty (shape {array.shape}); give at least one image")
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ModelInputError(f"{what} has images of size 0 (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise ModelInputError(f"{what} contains NaN or infinite values")
    checked = check_values_range(values_range, "values_range") if values_range is not None else None
    return array, checked


def check_channels(images: np.ndarray, what: str, model: keras.Model) -> None:
    """Refuse (:class:`ModelInputError`) images whose channel count the model does not take."""
    from maco_tf.models.layers import model_input_size

    channels = model_input_size(model)[2]
    if images.shape[-1] != channels:
        raise ModelInputError(
            f"{what} have {images.shape[-1]} channel(s) but model {model.name!r} takes "
            f"{channels}-channel images (shape {images.shape})"
        )


def resolve_ranges(
    declared: Range | None,
    values_range: Range | None,
    model_range: Sequence[float] | None,
) -> tuple[Range | None, Range | None]:
    """``(images range, model range)``: unknown ranges default to each other.

    The model's range is ``model_range`` (checked), else the one the model ``declared``; the
    images' range is ``values_range``, else the model's.
    """
    target = check_values_range(model_range, "model_range") if model_range is not None else declared
    source = values_range if values_range is not None else target
    return source, target if target is not None else source


def map_range(array: np.ndarray, source: Range | None, target: Range | None) -> np.ndarray:
    """``array`` mapped linearly from the range ``source`` to ``target``, as float32.

    Unchanged (as float32) when either range is unknown (None) or both are equal.
    """
    if source is None or target is None or tuple(source) == tuple(target):
        return np.asarray(array, dtype=np.float32)
    unit = (np.asarray(array, dtype=np.float64) - source[0]) / (source[1] - source[0])
    return (unit * (target[1] - target[0]) + target[0]).astype(np.float32)


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, H, W, C)`` images resized to ``size = (height, width)``, bilinear and antialiased.

    Returns float32; the images as they are when they already have that size.
    """
    if tuple(images.shape[1:3]) == tuple(size):
        return np.asarray(images, dtype=np.float32)
    import tensorflow as tf

    resized = tf.image.resize(np.asarray(images, np.float32), size, antialias=True)
    return resized.numpy().astype(np.float32)


def prepare_batch(
    images: np.ndarray,
    model: keras.Model,
    values_range: Range | None,
    model_range: Range | None,
) -> np.ndarray:
    """One batch mapped from ``values_range`` to ``model_range`` and resized to the model input."""
    from maco_tf.models.layers import model_input_size

    height, width, _ = model_input_size(model)
    return resize_images(map_range(images, values_range, model_range), (height, width))


def prepared_batches(
    images: np.ndarray,
    model: keras.Model,
    ranges: tuple[Range | None, Range | None],
    batch_size: int,
) -> Iterator[np.ndarray]:
    """:func:`prepare_batch` of each run of ``batch_size`` images, in order.

    Raises
    ------
    ModelInputError
        For a ``batch_size`` that is not an integer >= 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ModelInputError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    for start in range(0, images.shape[0], batch_size):
        yield prepare_batch(images[start : start + batch_size], model, *ranges)


def run_batches(
    function: Callable[[np.ndarray], object],
    images: np.ndarray,
    model: keras.Model,
    ranges: tuple[Range | None, Range | None],
    batch_size: int,
) -> np.ndarray:
    """``function`` (a model call) on the :func:`prepared_batches`, outputs concatenated."""
    import keras

    outputs = [
        keras.ops.convert_to_numpy(function(batch))
        for batch in prepared_batches(images, model, ranges, batch_size)
    ]
    return np.concatenate(outputs, axis=0)


def center_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred crop of an ``(H, W, ...)`` image with width / height = ``aspect``."""
    height, width = image.shape[:2]
    if width / height > aspect:
        new_width = max(1, round(height * aspect))
        left = (width - new_width) // 2
        return image[:, left : left + new_width]
    new_height = max(1, round(width / aspect))
    top = (height - new_height) // 2
    return image[top : top + new_height]


def _photo_list(images: object) -> list[np.ndarray]:
    """A batch, one image or a list of images as a list of arrays."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim in (2, 3):
        return [images]
    try:
        return [np.asarray(item) for item in images]
    except TypeError as exc:
        raise InvalidSettingError(
            "images must be an array (N, H, W, C), one image (H, W, C) or a list of images"
        ) from exc


def prepare_photos(
    images: object,
    size: tuple[int, int, int],
    values_range: Range,
    images_range: Sequence[float] | None = None,
    crop: bool = True,
) -> np.ndarray:
    """Photos of any sizes as one batch at a model's input size, in its value range.

    Parameters
    ----------
    images
        An array ``(N, H, W, C)``, one image ``(H, W, C)`` or ``(H, W)``, or a list of images of
        any sizes. Grey images are repeated to RGB and an alpha channel dropped for an RGB model.
    size
        ``(height, width, channels)`` of the model input.
    values_range
        The model's range.
    images_range
        Range of the photos; default ``(0, 255)`` for uint8 ones, else ``values_range``.
    crop
        Centre-crop each photo to the input's aspect ratio first (:func:`center_crop`); else
        photos are stretched.

    Returns
    -------
    batch
        ``(N, height, width, channels)`` float32 in ``values_range``.

    Raises
    ------
    InvalidSettingError
        For no photo, a photo that is not ``(H, W[, C])``, or a channel count the model does
        not take.
    """
    height, width, channels = size
    items = _photo_list(images)
    if not items:
        raise InvalidSettingError("no real image given; pass at least one image of the class")
    given = check_values_range(images_range, "images_range") if images_range is not None else None
    prepared = []
    for index, item in enumerate(items):
        item = _photo_channels(np.asarray(item), index, channels)
        source = given or (UINT8_RANGE if item.dtype == np.uint8 else values_range)
        item = map_range(item, source, values_range)
        if crop:
            item = center_crop(item, width / height)
        prepared.append(resize_images(item[None], (height, width))[0])
    return np.stack(prepared).astype(np.float32)


def _photo_channels(item: np.ndarray, index: int, channels: int) -> np.ndarray:
    """Photo ``index`` as ``(H, W, channels)``: grey repeated, alpha dropped for RGB."""
    if item.ndim == 2:
        item = item[..., None]
    if item.ndim != 3:
        raise InvalidSettingError(
            f"image {index} has shape {item.shape}; expected (H, W, C) or (H, W)"
        )
    if item.shape[-1] == 4 and channels == 3:
        item = item[..., :3]  # drop an alpha channel
    if item.shape[-1] == 1 and channels == 3:
        item = np.repeat(item, 3, axis=-1)
    if item.shape[-1] != channels:
        raise InvalidSettingError(
            f"image {index} has {item.shape[-1]} channels; the model takes {channels}"
        )
    return item

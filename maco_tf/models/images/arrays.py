"""Arrays into a model: unwrapping, checked batches, value ranges, resizing, batched calls.

:func:`unwrap_model` takes a Keras model or a :class:`~maco_tf.LoadedModel` (with its declared
range and logits layer); :func:`as_images` checks a batch ``(N, H, W, C)`` (a
:class:`~maco_tf.Visualization` accepted); :func:`resolve_ranges` and :func:`map_range` map the
images' value range linearly to the model's; :func:`resize_images` resizes bilinearly with
antialiasing to the model input; :func:`prepare_photos` takes photos of any size, centre-cropped
(:func:`center_crop`) and resized; :func:`prepared_batches` and :func:`run_batches` put a batch
at a time through the model. Bad arrays and objects that are not models raise
:class:`ModelInputError`. TensorFlow and Keras are imported by the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from maco_tf.checks import check_values_range
from maco_tf.errors import InvalidSettingError, MacoError

if TYPE_CHECKING:
    import keras

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "UINT8_RANGE",
    "ImagesLike",
    "ModelInputError",
    "ModelLike",
    "Range",
    "as_images",
    "center_crop",
    "check_channels",
    "map_range",
    "model_name",
    "prepare_batch",
    "prepare_photos",
    "prepared_batches",
    "resize_images",
    "resolve_ranges",
    "run_batches",
    "unwrap_model",
]

#: Value range of 8-bit images (photos read from files).
UINT8_RANGE = (0.0, 255.0)
#: Images put through a model at once.
DEFAULT_BATCH_SIZE = 32

Range = tuple[float, float]
ModelLike = object  # a keras.Model or a maco_tf.LoadedModel
ImagesLike = object  # an array (N, H, W, C) or a maco_tf.Visualization


class ModelInputError(MacoError):
    """Bad input for a model: a bad batch of images or class indices, or not a model.

    An empty or misshapen batch, a channel count the model does not take, non-finite values,
    class indices out of range, or an object that is neither a ``keras.Model`` nor a
    :class:`~maco_tf.LoadedModel`.
    """


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


def resize_images(images: np.ndarray, size: Sequence[int], *, antialias: bool = True) -> np.ndarray:
    """``(N, H, W, C)`` images resized to ``size = (height, width)``, bilinear.

    Parameters
    ----------
    images
        A batch ``(N, H, W, C)``.
    size
        ``(height, width)``.
    antialias
        Filter when shrinking (the default); False samples the bilinear grid as it is (what
        feature inversion's target image has always been resized with).

    Returns
    -------
    images
        float32 ``(N, height, width, C)``; the images as they are when they already have that
        size.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[1:3]) == size:
        return np.asarray(images, dtype=np.float32)
    import tensorflow as tf

    resized = tf.image.resize(np.asarray(images, np.float32), size, antialias=antialias)
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

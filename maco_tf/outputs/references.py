"""Natural references of a unit: photos read from a folder, scored by an objective.

:func:`load_photos` reads a folder of photos at a model's input size (through
:mod:`maco_tf.models.images`, bounded by :class:`~maco_tf.core.limits.Limits`);
:func:`objective_scores` gives the value of every combination of an objective on every photo
and :func:`top_activating` the photos that excite each combination most: the references the
trust check (:mod:`maco_tf.outputs.trust`) compares a visualization with. Bad input raises
:data:`~maco_tf.outputs.features.MetricInputError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from maco_tf.core.limits import Limits
from maco_tf.core.objectives import compile_objective
from maco_tf.models.images import (
    DEFAULT_BATCH_SIZE,
    IMAGE_SUFFIXES,
    ImageReadError,
    ImagesLike,
    as_images,
    check_channels,
    image_files,
    read_image,
    resolve_ranges,
)
from maco_tf.outputs.activations import batched_outputs
from maco_tf.outputs.features import MetricInputError

__all__ = [
    "PHOTO_RANGE",
    "PHOTO_SUFFIXES",
    "combination_values",
    "load_photos",
    "objective_scores",
    "top_activating",
    "top_indices",
]

#: Range of the pixel values :func:`load_photos` returns.
PHOTO_RANGE = (0.0, 255.0)
#: File suffixes :func:`load_photos` reads (case-insensitive).
PHOTO_SUFFIXES = IMAGE_SUFFIXES


def objective_scores(
    objective: object,
    images: ImagesLike,
    values_range: Sequence[float] | None = None,
    *,
    model_range: Sequence[float] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Value of every combination of an objective on every image (whole image, resized).

    Parameters
    ----------
    objective
        An Xplique ``Objective`` (e.g. from :mod:`maco_tf.targets`) with C combinations.
    images
        ``(N, H, W, C)`` images, resized to the model input.
    values_range
        Range of ``images``; default ``model_range``.
    model_range
        Range the objective's model expects; default ``values_range`` (no mapping).
    batch_size
        Images per forward pass.

    Returns
    -------
    scores
        ``(N, C)`` float64: the quantity the visualization maximises, per image.
    """
    compiled = compile_objective(objective)
    model = compiled.model
    array, source = as_images(images, "images", values_range)
    check_channels(array, "images", model)
    (scores,) = batched_outputs(
        array,
        model,
        list(compiled.outputs),
        resolve_ranges(None, source, model_range),
        batch_size,
        lambda outputs: [combination_values(compiled, outputs)],
    )
    return scores


def combination_values(compiled: object, outputs: list) -> np.ndarray:
    """``(B, C)``: each image scored alone (losses may reduce over the batch axis)."""
    count = int(outputs[0].shape[0])
    values = np.zeros((count, compiled.nb_combinations))
    for func, output, masks, factor in zip(
        compiled.funcs, outputs, compiled.masks, compiled.multipliers, strict=True
    ):
        output = tf.cast(output, tf.float32)
        for image in range(count):
            for combination in range(compiled.nb_combinations):
                value = func(
                    output[image : image + 1], tf.constant(masks[combination : combination + 1])
                )
                values[image, combination] += float(factor) * float(tf.reduce_mean(value))
    return values


def top_activating(
    objective: object,
    images: ImagesLike,
    k: int = 8,
    values_range: Sequence[float] | None = None,
    *,
    model_range: Sequence[float] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Indices of the ``k`` images that excite each combination of an objective most.

    Parameters
    ----------
    objective
        An Xplique ``Objective`` with C combinations.
    images
        ``(N, H, W, C)`` natural images (see :func:`load_photos` for a folder).
    k
        Images per combination, ``1 <= k <= N``.
    values_range, model_range, batch_size
        As :func:`objective_scores`.

    Returns
    -------
    indices
        ``(C, k)`` int indices into ``images``, best first (ties: lower index first).
    """
    scores = objective_scores(
        objective, images, values_range, model_range=model_range, batch_size=batch_size
    )
    return top_indices(scores, k)


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """``(C, k)`` indices of the ``k`` best rows of ``scores (N, C)`` per column, best first."""
    count = scores.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= count:
        raise MetricInputError(f"k must be an integer from 1 to {count} (the images); got {k!r}")
    order = np.argsort(-scores, axis=0, kind="stable")
    return order[:k].T.copy()


def _photo_size(size: object, limits: Limits) -> tuple[int, int]:
    """``size`` (a side or ``(height, width)``) as two ints from 1 to ``limits.max_size``."""
    try:
        height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    except (TypeError, ValueError):
        raise MetricInputError(
            f"size must be a side or (height, width) in pixels; got {size!r}"
        ) from None
    for side in (height, width):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise MetricInputError(f"size must be positive integers (pixels); got {size!r}")
        if side > limits.max_size:
            raise MetricInputError(str(limits.refusal("size", int(side), "max_size")))
    return int(height), int(width)


def load_photos(
    folder: str | os.PathLike[str],
    size: int | Sequence[int],
    *,
    limit: int | None = None,
    limits: Limits | None = None,
) -> np.ndarray:
    """Every image file of a folder (not recursive), RGB, resized, as ``(N, H, W, 3)`` floats.

    Photos are read by :func:`maco_tf.models.images.read_image` (regular files only, each
    checked against the pixel bound from its header, EXIF orientation applied, any mode
    converted to RGB); the folder is listed by :func:`maco_tf.models.images.image_files`
    (entries that are not regular files named and skipped; number and total pixels bounded).

    Parameters
    ----------
    folder
        A directory; files with a suffix in :data:`PHOTO_SUFFIXES` are read in name order.
    size
        ``side`` or ``(height, width)`` of the returned images (bilinear, antialiased), each
        from 1 to ``limits.max_size``.
    limit
        Read at most this many files.
    limits
        The bounds; default :meth:`Limits.from_environment
        <maco_tf.core.limits.Limits.from_environment>`.

    Returns
    -------
    photos
        float32 in :data:`PHOTO_RANGE` (0 to 255).

    Raises
    ------
    MetricInputError
        One line: a missing folder, a folder without images, an unreadable, irregular or
        oversized file (named), a bad ``size``, or photos over the bounds of ``limits``.
    """
    from PIL import Image  # lazy: only folders need PIL

    limits = Limits.from_environment() if limits is None else limits
    height, width = _photo_size(size, limits)
    path = Path(folder)
    if not path.is_dir():
        raise MetricInputError(f"photo folder {str(path)!r} does not exist or is not a folder")
    bounds = limits.image_bounds()
    try:
        files = image_files(path, what="photo folder", first=limit, bounds=bounds)
    except ImageReadError as exc:
        raise MetricInputError(str(exc)) from None
    if not files:
        raise MetricInputError(
            f"no images in {str(path)!r}; put photos there (suffixes: {', '.join(PHOTO_SUFFIXES)})"
        )
    _check_photo_memory(len(files), height, width, limits)
    photos = np.empty((len(files), height, width, 3), np.float32)
    for index, file in enumerate(files):
        try:
            rgb = read_image(file, 3, bounds=bounds)
        except ImageReadError as exc:
            raise MetricInputError(str(exc)) from None
        resized = rgb.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
        photos[index] = np.asarray(resized, dtype=np.float32)
    return photos


def _check_photo_memory(count: int, height: int, width: int, limits: Limits) -> None:
    """Refuse photos whose float32 batch would be over ``limits.max_batch_memory``."""
    nbytes = count * height * width * 3 * 4
    if nbytes > limits.max_batch_memory:
        raise MetricInputError(
            f"{count} photos of {height}x{width} would take {nbytes / 2**30:.1f} GiB, over the "
            f"limit max_batch_memory={limits.max_batch_memory} bytes; read fewer photos "
            f"(limit=) or a smaller size, or raise the limit with the environment variable "
            f"MACO_TF_MAX_BATCH_MEMORY"
        )

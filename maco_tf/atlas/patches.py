"""Top-activating patches: the crops of natural photos that drive a unit most.

For every photo of ``--examples DIR`` (fitted to the model input: centre square, resized) and
every unit of the layer, the unit's response is its largest value over the layer's positions:
the channel's activation (``"channel"``), the unit's own value (``"neuron"``) or the projection
of the activation vector on the direction (``"direction"``). A unit's top photos are those with
the largest responses; its patches are the regions of those photos seen by the position of the
maximum, a square of the layer's effective receptive field (:func:`receptive_field`) centred on
that position.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from maco_tf.atlas.photo_copies import open_rgb
from maco_tf.core.limits import Limits
from maco_tf.errors import MacoError
from maco_tf.models.images import IMAGE_SUFFIXES, image_files
from maco_tf.models.layers import layer_output
from maco_tf.models.loading import LoadedModel
from maco_tf.runs.plans import Plan

__all__ = [
    "MAX_PHOTOS",
    "Responses",
    "crop_patch",
    "load_photos",
    "patch_box",
    "photo_paths",
    "receptive_field",
    "unit_responses",
]

#: Largest number of photos of ``--examples`` that are searched.
MAX_PHOTOS = 2000
#: Photos put through the model at once.
PHOTO_BATCH = 16
#: Fraction of the peak input gradient that bounds the effective receptive field.
FIELD_THRESHOLD = 0.05


def photo_paths(root: Path) -> list[Path]:
    """The image files under ``root`` (sub-folders included), sorted, at most :data:`MAX_PHOTOS`.

    Listed by :func:`maco_tf.models.images.image_files`: entries that are not regular files
    are named and skipped, and the photos kept are bounded in number and total pixels
    (:class:`~maco_tf.core.limits.Limits`).

    Raises
    ------
    MacoError
        If ``root`` is not a folder, holds no image file, or is over the bounds.
    """
    bounds = Limits.from_environment().image_bounds()
    files = image_files(root, recursive=True, first=MAX_PHOTOS, bounds=bounds)
    if not files:
        raise MacoError(f"--examples {root} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_photos(paths: Sequence[Path], loaded: LoadedModel) -> tuple[np.ndarray, list[Path]]:
    """Photos as a model input batch (centre square, resized, in the model's value range).

    Returns
    -------
    batch, kept
        ``(n, height, width, channels)`` float32, and the paths of the ``n`` readable photos
        (those :func:`~maco_tf.atlas.photo_copies.open_rgb` cannot read are left out).
    """
    height, width = loaded.input_size
    channels = int(loaded.model.inputs[0].shape[-1])
    low, high = loaded.values_range
    images, kept = [], []
    for path in paths:
        image = open_rgb(path, 1 if channels == 1 else 3)
        if image is None:
            continue
        fitted = ImageOps.fit(image, (width, height), Image.Resampling.BICUBIC)
        array = np.asarray(fitted, dtype=np.float32).reshape(height, width, channels)
        images.append(low + array / 255.0 * (high - low))
        kept.append(path)
    if not images:
        return np.zeros((0, height, width, channels), np.float32), kept
    return np.stack(images), kept


@dataclass(frozen=True)
class Responses:
    """Each unit's response to each photo, and where in the layer it peaked.

    Attributes
    ----------
    values
        ``(photos, units)``: the largest response over the layer's positions.
    rows, cols
        ``(photos, units)``: the position of that largest response (0 for a flat layer).
    grid
        ``(height, width)`` of the layer's positions (``(1, 1)`` for a flat layer).
    photos
        The readable photos, in row order.
    """

    values: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    grid: tuple[int, int]
    photos: list[Path]


def _peak(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest value of each ``(H, W)`` map of a batch, and its row and column."""
    flat = maps.reshape(len(maps), -1)
    best = flat.argmax(axis=1)
    return flat[np.arange(len(maps)), best], best // maps.shape[2], best % maps.shape[2]


def _unit_peaks(
    features: np.ndarray, plan: Plan, position: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One unit's response to each image of a batch, and the row and column where it peaks."""
    target = plan.targets[position]
    zeros = np.zeros(len(features), np.int64)
    if target.kind == "neuron":
        location = np.unravel_index(target.index, features.shape[1:])
        values = features.reshape(len(features), -1)[:, target.index]
        if features.ndim != 4:
            return values, zeros, zeros
        return values, zeros + location[0], zeros + location[1]
    if target.kind == "channel":
        maps = features[..., target.index]
    else:
        vector = np.asarray(plan.objective.masks[0][target.index], np.float32)
        vector = vector.reshape(-1, vector.shape[-1]).mean(axis=0)
        maps = features @ (vector / np.linalg.norm(vector))
    if maps.ndim == 1:
        return maps, zeros, zeros
    return _peak(maps.reshape(len(maps), maps.shape[1], -1))


def _batches(paths: Sequence[Path], loaded: LoadedModel) -> Iterator[tuple[np.ndarray, list]]:
    for first in range(0, len(paths), PHOTO_BATCH):
        batch, kept = load_photos(paths[first : first + PHOTO_BATCH], loaded)
        if kept:
            yield batch, kept


def _report_left_out(paths: Sequence[Path], shown: int = 5) -> None:
    """One warning line naming the photos that could not be read (the first ``shown``)."""
    if paths:
        names = ", ".join(str(path) for path in paths[:shown])
        more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
        print(
            f"maco-tf: warning: {len(paths)} photo(s) of --examples cannot be read (not an "
            f"image, or over the limit max_image_pixels) and are left out: {names}{more}",
            file=sys.stderr,
        )


def unit_responses(
    loaded: LoadedModel, layer: str, plan: Plan, positions: Sequence[int], paths: Sequence[Path]
) -> Responses:
    """The response of each planned unit (``positions`` in ``plan``) to each readable photo.

    The photos that cannot be read are left out, named in one warning line on stderr.

    Raises
    ------
    MacoError
        If no photo can be read.
    """
    tensor = layer_output(loaded.model, layer)
    features_model = keras.Model(loaded.model.inputs[0], tensor)
    grid = (int(tensor.shape[1]), int(tensor.shape[2])) if len(tensor.shape) == 4 else (1, 1)
    values, rows, cols, photos = [], [], [], []
    for batch, kept in _batches(paths, loaded):
        features = keras.ops.convert_to_numpy(features_model(batch, training=False))
        peaks = [_unit_peaks(features, plan, position) for position in positions]
        values.append(np.stack([peak[0] for peak in peaks], axis=1))
        rows.append(np.stack([peak[1] for peak in peaks], axis=1))
        cols.append(np.stack([peak[2] for peak in peaks], axis=1))
        photos.extend(kept)
    if not photos:
        raise MacoError("no readable photo in --examples")
    _report_left_out([path for path in paths if path not in set(photos)])
    return Responses(
        np.concatenate(values), np.concatenate(rows), np.concatenate(cols), grid, photos
    )


def receptive_field(loaded: LoadedModel, layer: str, photos: np.ndarray) -> int:
    """Side in input pixels of the effective receptive field of the layer's central position.

    The mean absolute input gradient of the centre position's activations (all channels) over
    ``photos`` is thresholded at :data:`FIELD_THRESHOLD` of its peak; the side is the larger
    extent of that region, at least the layer's stride. A flat layer sees the whole input.
    """
    height, width = loaded.input_size
    tensor = layer_output(loaded.model, layer)
    if len(tensor.shape) != 4 or not len(photos):
        return max(height, width)
    features_model = keras.Model(loaded.model.inputs[0], tensor)
    grid = (int(tensor.shape[1]), int(tensor.shape[2]))
    images = tf.convert_to_tensor(photos)
    with tf.GradientTape() as tape:
        tape.watch(images)
        centre = features_model(images, training=False)[:, grid[0] // 2, grid[1] // 2, :]
        total = tf.reduce_sum(tf.abs(centre))
    saliency = tf.reduce_mean(tf.abs(tape.gradient(total, images)), axis=(0, 3)).numpy()
    stride = max(height / grid[0], width / grid[1])
    if not np.isfinite(saliency).all() or saliency.max() <= 0:
        return round(stride)
    ys, xs = np.nonzero(saliency >= FIELD_THRESHOLD * saliency.max())
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    return int(min(max(height, width), max(side, round(stride))))


def patch_box(
    row: int, col: int, grid: tuple[int, int], input_size: tuple[int, int], side: int
) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` in input pixels: a ``side`` square centred on the position.

    The square is moved (not shrunk) to lie inside the input, and clipped only when ``side``
    exceeds the input.
    """
    height, width = input_size
    centre_y = (row + 0.5) * height / grid[0]
    centre_x = (col + 0.5) * width / grid[1]
    box = []
    for centre, extent in ((centre_x, width), (centre_y, height)):
        size = min(side, extent)
        start = int(round(min(max(centre - size / 2, 0), extent - size)))
        box.append((start, start + size))
    (left, right), (top, bottom) = box
    return left, top, right, bottom


def crop_patch(path: Path, loaded: LoadedModel, box: tuple[int, int, int, int]) -> Image.Image:
    """The ``box`` of the photo at ``path`` as fitted to the model input (RGB).

    Raises
    ------
    MacoError
        If the photo can no longer be read.
    """
    image = open_rgb(path)
    if image is None:
        raise MacoError(f"cannot read example image {path}")
    height, width = loaded.input_size
    fitted = ImageOps.fit(image, (width, height), Image.Resampling.BICUBIC)
    return fitted.crop(box)

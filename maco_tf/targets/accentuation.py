"""Feature accentuation (Hamblin, Fel et al., 2024): a seed image changed to drive a unit.

Image-seeded feature visualization: the image is parameterised by its own spectrum
(:class:`~maco_tf.core.parameterization.SeededSpectrumParameterization`: the seed's magnitude,
fixed up to a trainable gain in (0, 1), and its phase, trained), optimised through the usual
random crops and noise to maximise the objective, minus a penalty that keeps it close to the
seed::

    maximise  objective(crops of x) - penalty * mean(((x - seed) / (range width / 2)) ** 2)

The penalty is the mean squared pixel difference (read in a value range of width 2, as the
noise), on the whole image before crops and noise, as in Horama's ``accentuation``. Faccent, the
paper's library, measures the distance at a layer of the model instead; the pixel distance needs
no second pass of the seed through the model and reads the same for every objective.

The penalty is an image term of the objective (:func:`maco_tf.core.objectives.with_image_term`)
whose mask is the seed: it runs on the engine's compiled loop like any objective.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from maco_tf.checks import as_image_batch, check_values_range, is_finite_number
from maco_tf.core.augment import whole_image_views
from maco_tf.core.config import RunConfig
from maco_tf.core.engine import LoopCache
from maco_tf.core.objectives import (
    CompiledObjective,
    compile_objective,
    with_image_term,
)
from maco_tf.core.parameterization import SeededSpectrumParameterization
from maco_tf.core.visualization import Visualization, apply_overrides, visualize
from maco_tf.errors import InvalidSettingError, MacoError
from maco_tf.models.images import resize_images
from maco_tf.models.layers import model_input_size

__all__ = [
    "Accentuation",
    "AccentuationInputError",
    "ACCENTUATION_DEFAULTS",
    "accentuate",
    "accentuation_config",
    "mean_squared_distance",
    "objective_values",
    "prepare_seeds",
    "seed_distance",
]

#: How far (fraction of the range's width) a seed may stray outside ``values_range``.
RANGE_TOLERANCE = 1e-3
#: How much (relative) a seed's aspect ratio may differ from the accentuation's before resizing.
ASPECT_TOLERANCE = 0.02
#: Settings of :func:`accentuation_config` that differ from :class:`~maco_tf.RunConfig`'s:
#: Faccent's 100 steps of 16 crops of about 0.9 of the image side, noise 1 % of the value
#: range (0.04 for a width of 2), no whole views, images at the model's input size.
ACCENTUATION_DEFAULTS = {
    "steps": 100,
    "crops": 16,
    "box_size": 0.9,
    "whole_views": 0,
    "noise": 0.04,
    "size": None,
}
#: Settings the seed images decide.
_SET_BY_SEEDS = ("method", "copies", "magnitude_dataset")


class AccentuationInputError(MacoError):
    """The seed images cannot be accentuated as given (shape, channels, values, count)."""


@dataclass
class Accentuation(Visualization):
    """Everything one :func:`accentuate` call produced; leading axis = objective combination.

    The fields of :class:`~maco_tf.core.visualization.Visualization` (``loss_history`` holds the
    maximised quantity, objective minus penalty, at every step), plus:

    Attributes
    ----------
    seeds
        ``(N, H, W, C)`` the seed image of each combination, at the accentuation's size.
    seed_distance
        ``(N,)`` root mean squared pixel difference between image and seed, as a fraction of
        the width of ``values_range`` (0: unchanged; PSNR in dB is ``-20 log10`` of it).
    objective_before, objective_after
        ``(N,)`` objective value of the seed and of the accentuated image, each seen whole
        (resized to the model input, no crops or noise).
    penalty
        Weight of the distance penalty.
    """

    seeds: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 1, 1, 1)))
    seed_distance: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    objective_before: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    objective_after: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    penalty: float = 0.0


def mean_squared_distance(images: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """``(n,)`` mean over pixels and channels of ``(images - reference) ** 2``."""
    return tf.reduce_mean(tf.square(images - reference), axis=[1, 2, 3])


def seed_distance(
    images: np.ndarray, seeds: np.ndarray, values_range: Sequence[float]
) -> np.ndarray:
    """Root mean squared difference per image, as a fraction of the value range's width.

    Parameters
    ----------
    images, seeds
        ``(N, H, W, C)`` arrays of the same shape.
    values_range
        ``(low, high)`` of the pixel values.

    Returns
    -------
    distance
        ``(N,)`` float64, 0 for identical images, 1 for black against white everywhere.
    """
    low, high = (float(v) for v in values_range)
    difference = (np.asarray(images, np.float64) - np.asarray(seeds, np.float64)) / (high - low)
    return np.sqrt(np.mean(np.square(difference), axis=(1, 2, 3)))


def _as_array(images: object) -> np.ndarray:
    try:
        array = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise AccentuationInputError(
            f"images must be a numeric array (H, W, C) or (N, H, W, C); got {type(images).__name__}"
        ) from exc
    return as_image_batch(
        array,
        AccentuationInputError,
        "images must be (height, width, channels) or (N, height, width, channels); got shape",
    )


def _check_values(array: np.ndarray, values_range: tuple[float, float]) -> None:
    if not np.all(np.isfinite(array)):
        raise AccentuationInputError("the seed images contain NaN or infinite values")
    low, high = values_range
    slack = RANGE_TOLERANCE * (high - low)
    seen = (float(array.min()), float(array.max()))
    if seen[0] < low - slack or seen[1] > high + slack:
        hint = ""
        if seen[1] > 1.0 + slack and seen[1] <= 255.0 and high <= 1.0:
            hint = f" (uint8 photos: x / 255 * {high - low:g} + {low:g})"
        raise AccentuationInputError(
            f"the seed images take values in [{seen[0]:g}, {seen[1]:g}], outside the model's "
            f"values_range ({low:g}, {high:g}); rescale them to it{hint}, or pass the "
            f"values_range the model expects"
        )


def prepare_seeds(
    model: keras.Model,
    images: object,
    count: int,
    values_range: Sequence[float],
    size: Sequence[int] | None = None,
) -> np.ndarray:
    """Seed images checked, resized and broadcast to one per objective combination.

    Parameters
    ----------
    model
        Model with a single fixed-size image input.
    images
        ``(H, W, C)`` (one seed for every combination) or ``(count, H, W, C)`` (one each), in
        ``values_range``, at least the model's input size and of the aspect ratio of ``size``.
    count
        Number of objective combinations.
    values_range
        ``(low, high)`` range of the model's inputs.
    size
        ``(height, width)`` of the accentuation (the seeds are resized to it, bilinear and
        antialiased); None: the model input size.

    Returns
    -------
    seeds
        float32 ``(count, height, width, channels)``.

    Raises
    ------
    AccentuationInputError
        For a wrong rank, channel count, seed count, a size smaller than the model input or
        of another aspect ratio, non-finite values or values outside ``values_range``.
    """
    height, width, channels = model_input_size(model)
    values_range = check_values_range(values_range)
    array = _as_array(images)
    if array.shape[-1] != channels:
        raise AccentuationInputError(
            f"the seed images have {array.shape[-1]} channel(s) but model {model.name!r} takes "
            f"{channels}-channel images (shape {array.shape}); convert them first"
        )
    if array.shape[0] not in (1, count):
        raise AccentuationInputError(
            f"got {array.shape[0]} seed images for {count} objective combinations; give one "
            f"image per combination, or a single image for all"
        )
    _check_values(array, values_range)
    if array.shape[1] < height or array.shape[2] < width:
        raise AccentuationInputError(
            f"the seed images are {array.shape[1]}x{array.shape[2]}, smaller than the model "
            f"input {height}x{width}; give larger images"
        )
    target = (height, width) if size is None else (int(size[0]), int(size[1]))
    if target[0] < height or target[1] < width:
        raise InvalidSettingError(
            f"size {target} is smaller than the model input ({height}, {width}); use at least "
            f"the input size, or size=None"
        )
    aspect = (array.shape[1] / array.shape[2]) / (target[0] / target[1])
    if abs(aspect - 1.0) > ASPECT_TOLERANCE:
        raise AccentuationInputError(
            f"the seed images are {array.shape[1]}x{array.shape[2]} and the accentuation "
            f"{target[0]}x{target[1]}: crop the seeds to that aspect ratio (e.g. their centre "
            f"square) or give size= with theirs"
        )
    if tuple(array.shape[1:3]) != target:
        array = np.clip(resize_images(array, target), *values_range)
    return np.ascontiguousarray(np.broadcast_to(array, (count, *array.shape[1:])))


def objective_values(compiled: CompiledObjective, images: np.ndarray) -> np.ndarray:
    """Objective value of each image seen whole (resized to the model input, no noise).

    Parameters
    ----------
    compiled
        The objective; its model terms are scored (image terms are not).
    images
        ``(N, H, W, C)``, one per combination, in the model's value range.

    Returns
    -------
    values
        ``(N,)`` float32: ``sum_i multiplier_i * loss_i``.
    """
    height, width, _ = model_input_size(compiled.model)
    views = whole_image_views(tf.constant(images, tf.float32), (height, width))
    features = keras.Model(compiled.model.inputs, list(compiled.outputs))(views, training=False)
    features = list(features) if isinstance(features, (list, tuple)) else [features]
    values = np.zeros(len(images), np.float32)
    for func, output, masks, multiplier in zip(
        compiled.funcs, features, compiled.masks, compiled.multipliers, strict=False
    ):
        for n in range(len(images)):  # one image at a time, as the engine scores each crop
            value = func(tf.cast(output[n : n + 1], tf.float32), tf.constant(masks[n : n + 1]))
            values[n] += multiplier * float(tf.reduce_mean(value))
    return values


def accentuation_config(config: RunConfig | None = None, **overrides: object) -> RunConfig:
    """The settings of an accentuation: ``config``, or :data:`ACCENTUATION_DEFAULTS`, overridden.

    Parameters
    ----------
    config
        A :class:`~maco_tf.RunConfig`; None: ``RunConfig(**ACCENTUATION_DEFAULTS)``.
    **overrides
        Field names of :class:`~maco_tf.RunConfig` or :class:`~maco_tf.EngineConfig`.
        ``size`` is that of the accentuation (None: the model input); ``method``, ``copies``
        and ``magnitude_dataset`` are set by the seeds and refused.

    Returns
    -------
    config
        The validated config (its ``method`` still the default: :func:`accentuate` replaces
        it by the seeded parameterization).

    Raises
    ------
    InvalidSettingError
        For a setting the seeds decide, an unknown name or an invalid value.
    """
    fixed = sorted(set(_SET_BY_SEEDS) & set(overrides))
    if fixed:
        raise InvalidSettingError(
            f"accentuate sets {', '.join(fixed)} from the seed images; leave it out"
        )
    if config is None:
        config = RunConfig(**ACCENTUATION_DEFAULTS)
    return apply_overrides(config, **overrides)


class _IdentifiedSeeds(SeededSpectrumParameterization):
    """The seeded parameterization with image ``ids[i]`` starting from ``seeds[i]``."""

    def __init__(self, seeds: np.ndarray, values_range: tuple[float, float], ids: Sequence[int]):
        super().__init__(seeds, values_range)
        self._rows = {int(image_id): row for row, image_id in enumerate(ids)}
        if len(self._rows) != len(self.seeds):
            raise InvalidSettingError(f"image_ids must be {len(self.seeds)} distinct integers")

    def initial_params(self, seed: int, indices: Sequence[int]) -> np.ndarray:
        """Parameters of the seeds of the images ``indices`` (ids)."""
        rows = [self._rows[int(image_id)] for image_id in indices]
        return self.seed_params(self.seeds[np.asarray(rows, dtype=np.int64)])


def accentuate(
    objective: object,
    images: object,
    config: RunConfig | None = None,
    *,
    penalty: float = 1.0,
    progress: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    cache: LoopCache | None = None,
    image_ids: Sequence[int] | None = None,
    **overrides: object,
) -> Accentuation:
    """Accentuate what drives each objective combination in its seed image.

    Parameters
    ----------
    objective
        An Xplique ``Objective`` (or a maco_tf objective) with N combinations.
    images
        Seed images in ``values_range``: ``(H, W, C)`` for all combinations or
        ``(N, H, W, C)``, one each; at least the model's input size (see
        :func:`prepare_seeds`).
    config
        The run's settings; default :func:`accentuation_config` (Faccent's crops, noise and
        steps). Its optimizer, when None, is Adam(0.05), as Faccent.
    penalty
        Weight of the mean squared pixel distance to the seed (pixels read in a value range
        of width 2); 0: the objective alone, bounded only by the steps.
    progress, strategy, cache
        As for :func:`maco_tf.visualize`.
    image_ids
        Identity of each image's random streams (crops, noise), as for
        :func:`maco_tf.visualize`: the images of a run split in chunks equal those of one call
        when each chunk passes its images' ids. Default ``0 .. N-1``.
    **overrides
        Settings replacing those of ``config`` (``steps=64``, ``size=448``,
        ``values_range=(0, 255)``, ``seed=3``, ``batch_size=2``...); see
        :func:`accentuation_config`.

    Returns
    -------
    accentuation
        See :class:`Accentuation`.

    Raises
    ------
    AccentuationInputError
        For unusable seed images.
    InvalidSettingError
        For settings the seeds decide, a negative penalty, or an invalid setting.
    """
    if isinstance(penalty, bool) or not is_finite_number(penalty) or float(penalty) < 0:
        raise InvalidSettingError(
            f"penalty must be a weight >= 0 that is finite in float32; got {penalty!r}"
        )
    penalty = float(penalty)
    config = accentuation_config(config, **overrides)
    if config.copies != 1:
        raise InvalidSettingError("accentuate makes one image per seed; use copies=1")
    compiled = compile_objective(objective)
    values_range = config.values_range
    seeds = prepare_seeds(
        compiled.model, images, compiled.nb_combinations, values_range, config.size
    )
    ids = range(len(seeds)) if image_ids is None else [int(i) for i in image_ids]
    parameterization = _IdentifiedSeeds(seeds, values_range, ids)
    start = parameterization.to_images(tf.constant(parameterization.initial_params(0, ids))).numpy()
    unit = 2.0 / (values_range[1] - values_range[0])  # distances read in a range of width 2
    penalised = with_image_term(compiled, mean_squared_distance, start, -penalty * unit**2)
    run = visualize(
        penalised,
        config.replace(method=parameterization),
        progress=progress,
        strategy=strategy,
        cache=cache,
        image_ids=None if image_ids is None else list(ids),
    )
    fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(Visualization)}
    fields["settings"] = {**run.settings, "penalty": penalty}
    return Accentuation(
        **fields,
        seeds=seeds,
        seed_distance=seed_distance(run.images, seeds, values_range),
        objective_before=objective_values(compiled, seeds),
        objective_after=objective_values(compiled, run.images),
        penalty=penalty,
    )

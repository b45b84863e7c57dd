"""Transformations of the views, as a list in the run configuration (``RunConfig.transforms``).

Each step, after the crops and before the noise, every view the model sees goes through the
listed transformations in order. Names and values (one ``name:value`` per transformation; the
value may be left out for its default):

============  ========  =====================================================================
name          default   what every view gets
============  ========  =====================================================================
``jitter``    8         a random shift of up to ``value`` pixels along each axis
``scale``     0.1       a random zoom by a factor in ``[1 - value, 1 + value]``
``rotate``    5         a random rotation of up to ``value`` degrees either way
``flip``      0.5       a left-right flip with probability ``value``
``blur``      1         a Gaussian blur of std ``value`` pixels
``pad``       4         ``value`` pixels of grey (the middle of the value range) on each side,
                        then a resize back to the view's size
============  ========  =====================================================================

Consecutive ``jitter``, ``scale``, ``rotate`` and ``flip`` are one resampling (bilinear, edges
reflected, gathers only: it differentiates with respect to the views and compiles under XLA);
a ``flip`` alone is an exact mirror. Every draw is stateless, keyed by ``(image seed, step,
TRANSFORM_SALT + position in the list)`` as the crops are: the same seed gives the same
images, whatever the batch.

The Xplique drop-in :func:`maco_tf.optimize` also puts callables in the list (``views ->
views``, e.g. Xplique's ``random_jitter(6)``); a callable's output is resized back to the
view's size, and its randomness is its own (not keyed by the seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from maco_tf.checks import is_finite_number
from maco_tf.core.objectives import callable_key
from maco_tf.core.seeds import MAX_TRANSFORMS, TRANSFORM_SALT, step_seeds
from maco_tf.errors import InvalidSettingError

__all__ = [
    "TRANSFORMS",
    "Transform",
    "apply_transforms",
    "gaussian_blur",
    "gaussian_kernel",
    "parse_transforms",
]

#: ``name: (default value, what the value must be, its check)``.
TRANSFORMS: dict[str, tuple[float, str, Callable[[float], bool]]] = {
    "jitter": (8.0, "pixels >= 0", lambda v: v >= 0),
    "scale": (0.1, "a fraction in [0, 1)", lambda v: 0 <= v < 1),
    "rotate": (5.0, "degrees in [0, 180]", lambda v: 0 <= v <= 180),
    "flip": (0.5, "a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "blur": (1.0, "a std in pixels > 0", lambda v: v > 0),
    "pad": (4.0, "an integer number of pixels >= 0", lambda v: v >= 0 and v == int(v)),
}
#: Transformations that move pixels: consecutive ones are one resampling.
GEOMETRIC = ("jitter", "scale", "rotate", "flip")


@dataclass(frozen=True)
class Transform:
    """One transformation of the list: a known name and its value, or a callable.

    Attributes
    ----------
    name
        One of :data:`TRANSFORMS`, or ``"callable"``.
    value
        Its parameter (see the module's table); 0 for a callable.
    func
        For ``"callable"``: ``func(views (M, h, w, C)) -> views``.
    """

    name: str
    value: float = 0.0
    func: Callable[[tf.Tensor], tf.Tensor] | None = None

    def key(self) -> tuple:
        """Hashable description of what the traced transformation computes."""
        return (self.name, self.value, None if self.func is None else callable_key(self.func))

    def __str__(self) -> str:
        if self.func is not None:
            return f"callable:{getattr(self.func, '__qualname__', type(self.func).__name__)}"
        return f"{self.name}:{self.value:g}"


def _known(name: str, value: object) -> Transform:
    """A named transformation with its value checked, else a one-line error."""
    if name not in TRANSFORMS:
        raise InvalidSettingError(
            f"unknown transform {name!r} in transforms; choose among {', '.join(TRANSFORMS)}"
        )
    default, what, check = TRANSFORMS[name]
    if value is None or value == "":
        value = default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not is_finite_number(number) or not check(number):
        raise InvalidSettingError(
            f"transforms: {name} takes {what}; got {value!r} (e.g. {name}:{default:g})"
        )
    return Transform(name, number)


def _one(item: object) -> Transform:
    if isinstance(item, Transform):
        return item if item.func is not None else _known(item.name, item.value)
    if isinstance(item, str):
        name, _, value = item.strip().partition(":")
        return _known(name.strip(), value.strip())
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
        return _known(item[0], item[1])
    if callable(item):
        return Transform("callable", 0.0, item)
    raise InvalidSettingError(
        f"transforms holds {item!r}; give 'name:value' strings (e.g. 'jitter:8'), "
        f"(name, value) pairs or callables"
    )


def parse_transforms(value: object) -> tuple[Transform, ...]:
    """The transformations a setting describes, checked.

    Parameters
    ----------
    value
        None or ``()`` (none), a string ``"jitter:8,rotate:5"``, or a sequence of
        ``"name:value"`` strings, ``(name, value)`` pairs, :class:`Transform` or callables.

    Returns
    -------
    transforms
        In order.

    Raises
    ------
    InvalidSettingError
        For an unknown name, a bad value, or more than ``MAX_TRANSFORMS`` (14) entries.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, Transform) or callable(value):
        items = [value]
    else:
        try:
            items = list(value)
        except TypeError:
            raise InvalidSettingError(
                f"transforms must be a list like ['jitter:8', 'rotate:5']; got {value!r}"
            ) from None
    transforms = tuple(_one(item) for item in items)
    if len(transforms) > MAX_TRANSFORMS:
        raise InvalidSettingError(
            f"transforms lists {len(transforms)} transformations; at most {MAX_TRANSFORMS}"
        )
    return transforms


def gaussian_kernel(sigma: float) -> np.ndarray:
    """``(k, k)`` normalised Gaussian of std ``sigma`` pixels, ``k = 2 ceil(2 sigma) + 1``."""
    radius = max(1, int(np.ceil(2.0 * float(sigma))))
    axis = np.arange(-radius, radius + 1, dtype=np.float64)
    line = np.exp(-0.5 * (axis / float(sigma)) ** 2)
    kernel = np.outer(line, line)
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_blur(views: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
    """Views ``(M, h, w, C)`` convolved with a :func:`gaussian_kernel` (edges reflected)."""
    radius = kernel.shape[0] // 2
    depthwise = np.tile(kernel[:, :, None, None], (1, 1, int(views.shape[-1]), 1))
    padded = tf.pad(views, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, depthwise, strides=[1, 1, 1, 1], padding="VALID")


def _reflect(coords: tf.Tensor, size: int) -> tf.Tensor:
    """Coordinates folded back into ``[0, size - 1]`` by reflection at the edges."""
    if size == 1:
        return tf.zeros_like(coords)
    period = 2.0 * (size - 1)
    folded = tf.math.floormod(coords, period)
    return (size - 1) - tf.abs(folded - (size - 1))


def resample(views: tf.Tensor, inverse: tf.Tensor) -> tf.Tensor:
    """Views warped by per-view affine maps, bilinear with reflected edges, gathers only.

    Parameters
    ----------
    views
        ``(M, h, w, C)``.
    inverse
        ``(M, 3, 3)``: for each view, the map from an output pixel's ``(y, x, 1)`` (relative
        to the view's centre) to the source pixel it samples.

    Returns
    -------
    warped
        ``(M, h, w, C)``.
    """
    count, height, width = (int(d) for d in views.shape[:3])
    ys, xs = np.meshgrid(
        np.arange(height) - (height - 1) / 2.0, np.arange(width) - (width - 1) / 2.0, indexing="ij"
    )
    grid = tf.constant(np.stack([ys, xs, np.ones_like(ys)]).reshape(3, -1), tf.float32)
    source = tf.matmul(inverse[:, :2], grid)  # (M, 2, h*w)
    src_y = _reflect(source[:, 0] + (height - 1) / 2.0, height)
    src_x = _reflect(source[:, 1] + (width - 1) / 2.0, width)
    y0, x0 = tf.floor(src_y), tf.floor(src_x)
    wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
    y0 = tf.clip_by_value(tf.cast(y0, tf.int32), 0, height - 1)
    x0 = tf.clip_by_value(tf.cast(x0, tf.int32), 0, width - 1)
    y1, x1 = tf.minimum(y0 + 1, height - 1), tf.minimum(x0 + 1, width - 1)
    which = tf.broadcast_to(tf.range(count, dtype=tf.int32)[:, None], tf.shape(y0))

    def at(rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
        return tf.gather_nd(views, tf.stack([which, rows, cols], axis=-1))  # (M, h*w, C)

    top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx
    return tf.reshape(top * (1.0 - wy) + bottom * wy, views.shape)


def _inverse_matrix(transform: Transform, draws: tf.Tensor) -> tf.Tensor:
    """``(M, 3, 3)`` inverse maps of one geometric transformation from uniform ``draws (M, 2)``."""
    value = transform.value
    zeros, ones = tf.zeros_like(draws[:, 0]), tf.ones_like(draws[:, 0])
    if transform.name == "jitter":
        shift = (2.0 * draws - 1.0) * value
        rows = [[ones, zeros, -shift[:, 0]], [zeros, ones, -shift[:, 1]]]
    elif transform.name == "scale":
        factor = 1.0 / (1.0 + (2.0 * draws[:, 0] - 1.0) * value)
        rows = [[factor, zeros, zeros], [zeros, factor, zeros]]
    elif transform.name == "rotate":
        angle = -(2.0 * draws[:, 0] - 1.0) * (value * math.pi / 180.0)
        cos, sin = tf.cos(angle), tf.sin(angle)
        rows = [[cos, -sin, zeros], [sin, cos, zeros]]
    else:  # flip
        sign = tf.where(draws[:, 0] < value, -ones, ones)
        rows = [[ones, zeros, zeros], [zeros, sign, zeros]]
    rows.append([zeros, zeros, ones])
    return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=1)


def _draws(
    image_seeds: tf.Tensor, step: tf.Tensor, position: int, views: int, span: tuple[int, int]
) -> tf.Tensor:
    """Uniform draws ``(N * v, 2)`` of transformation ``position`` for the views ``span``."""
    first, last = span
    per_image = []
    for j in range(int(image_seeds.shape[0])):
        seed = step_seeds(image_seeds[j : j + 1], step, TRANSFORM_SALT + position)[0]
        draws = tf.random.stateless_uniform((views, 2), seed=seed, alg="philox")
        per_image.append(draws[first:last])
    return tf.concat(per_image, axis=0) if len(per_image) > 1 else per_image[0]


def _pad(views: tf.Tensor, pixels: int, fill: float) -> tf.Tensor:
    size = (int(views.shape[1]), int(views.shape[2]))
    padded = tf.pad(
        views, [[0, 0], [pixels, pixels], [pixels, pixels], [0, 0]], constant_values=fill
    )
    return tf.image.resize(padded, size)


def _call(transform: Transform, views: tf.Tensor) -> tf.Tensor:
    """A callable transformation, its output resized back to the views' size."""
    out = tf.cast(transform.func(views), views.dtype)
    if tuple(out.shape[1:3]) != tuple(views.shape[1:3]):
        out = tf.image.resize(out, views.shape[1:3])
    return tf.reshape(out, views.shape)


def _group_end(transforms: Sequence[Transform], position: int) -> int:
    """End of the run of geometric transformations that starts at ``position``."""
    end = position
    while end < len(transforms) and transforms[end].name in GEOMETRIC:
        end += 1
    return end


def _flip(views: tf.Tensor, flipped: tf.Tensor) -> tf.Tensor:
    """Views mirrored left-right where ``flipped`` ``(M,)`` is true (exact, no resampling)."""
    return tf.where(flipped[:, None, None, None], tf.reverse(views, axis=[2]), views)


def apply_transforms(
    views: tf.Tensor,
    transforms: Sequence[Transform],
    image_seeds: tf.Tensor,
    step: tf.Tensor,
    nb_views: int,
    span: tuple[int, int],
    fill: float,
) -> tf.Tensor:
    """One lane of views through the transformations, in order.

    Parameters
    ----------
    views
        ``(N * v, h, w, C)``, image-major: views ``span = [first, last)`` of each of the
        ``N`` images (``v = last - first``).
    transforms
        The run's list (:func:`parse_transforms`).
    image_seeds
        ``(N,)`` int64 seed of each image.
    step
        Current step (scalar).
    nb_views
        Views per image in all lanes (the draws are made for all and ``span`` taken, so they
        do not depend on the lanes).
    span
        Which of an image's views this lane holds.
    fill
        Value of the ``pad`` pixels.

    Returns
    -------
    views
        Same shape.
    """
    position = 0
    while position < len(transforms):
        transform = transforms[position]
        if transform.name == "flip" and _group_end(transforms, position) == position + 1:
            draws = _draws(image_seeds, step, position, nb_views, span)
            views = _flip(views, draws[:, 0] < transform.value)
            position += 1
            continue
        if transform.name in GEOMETRIC:
            inverse = None
            while position < len(transforms) and transforms[position].name in GEOMETRIC:
                draws = _draws(image_seeds, step, position, nb_views, span)
                matrix = _inverse_matrix(transforms[position], draws)
                # the source of the composed map: earlier transformations' inverses act last
                inverse = matrix if inverse is None else tf.matmul(inverse, matrix)
                position += 1
            views = resample(views, inverse)
            continue
        if transform.name == "blur":
            views = gaussian_blur(views, gaussian_kernel(transform.value))
        elif transform.name == "pad":
            views = _pad(views, int(transform.value), fill)
        else:
            views = _call(transform, views)
        position += 1
    return views

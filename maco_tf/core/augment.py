"""Expectation over transformations: schedules, random crops and noise.

Every random draw is *stateless*, keyed by ``(image seed, step)``, so an image's crops depend
only on its own seed and step -- never on the other images of its batch, nor on the order in
which batches run. (XLA's Philox kernel maps seeds to streams differently from TensorFlow's
graph kernel, so ``jit_compile=True`` gives other, equally reproducible, draws.)

On a CPU the gradients are bit-for-bit reproducible too: crops are differentiated with a
race-free gradient (:func:`crop_views`) and a tensor used by several views sums their
gradients in a fixed order (:func:`fan_out`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from maco_tf.checks import as_float32
from maco_tf.core.seeds import CROP_SALT, NOISE_SALT, step_seeds
from maco_tf.errors import InvalidSettingError

Schedule = float | Callable[[int], float] | Sequence[float] | np.ndarray | None

#: Default crop-size schedule, as a fraction of the image side: linear from 0.5 to 0.05.
DEFAULT_BOX_SIZE = (0.5, 0.05)

# Crop geometry, as in the MACO reference implementation.
CENTER_STD = 0.15
BOX_SIZE_STD = 0.05
MIN_BOX_SIZE = 0.05
#: Std (image pixels) of the random roll of the whole views, clipped to 6 pixels.
WHOLE_SHIFT_STD = 3.0


def linear_schedule(start: float, end: float) -> Callable[[int], np.ndarray]:
    """Schedule factory: linear ramp from ``start`` to ``end`` over the steps."""

    def schedule(nb_steps: int) -> np.ndarray:
        return np.linspace(start, end, nb_steps, dtype=np.float32)

    return schedule


def resolve_schedule(
    value: Schedule, nb_steps: int, name: str, default: Callable[[int], np.ndarray]
) -> np.ndarray:
    """Turn a float, a per-step callable, a sequence or ``None`` into a float32 array (nb_steps,).

    Parameters
    ----------
    value
        ``None`` (use ``default``), a constant, a callable ``step -> value`` (evaluated once per
        step, up front, so the compiled loop receives plain tensors), or an array of length
        ``nb_steps``.
    nb_steps
        Number of optimisation steps.
    name
        Argument name, for error messages.
    default
        ``nb_steps -> array`` used when ``value`` is None.

    Returns
    -------
    values
        Array of shape ``(nb_steps,)``.
    """
    if value is None:
        values = default(nb_steps)
    elif callable(value):
        try:
            values = [float(np.asarray(value(step))) for step in range(nb_steps)]
        except Exception as exc:  # the user's callable failed: say which argument
            raise InvalidSettingError(
                f"{name} callable failed at a step: {exc!r}; it must map a step index "
                f"(0..{nb_steps - 1}) to a float"
            ) from exc
    elif np.ndim(value) == 0:
        values = np.full(nb_steps, float(value))
    else:
        values = as_float32(value, name).reshape(-1)
        if values.shape[0] != nb_steps:
            raise InvalidSettingError(
                f"{name} has {values.shape[0]} values but steps={nb_steps}; give one per step"
            )
    return as_float32(values, name)


def box_size_schedule(box_size: Schedule, nb_steps: int) -> np.ndarray:
    """Per-step average crop size (fraction of the image side), default linear 0.5 to 0.05."""
    values = resolve_schedule(box_size, nb_steps, "box_size", linear_schedule(*DEFAULT_BOX_SIZE))
    if np.any(values <= 0) or np.any(values > 1):
        raise InvalidSettingError(
            f"box_size must lie in (0, 1] (a fraction of the image side); got values in "
            f"[{values.min():g}, {values.max():g}]"
        )
    return values


def noise_schedule(noise_intensity: Schedule, nb_steps: int) -> np.ndarray:
    """Per-step noise level; ``None`` gives a log ramp from 1 to 1e-4 (as in Xplique)."""

    def default(steps: int) -> np.ndarray:
        return np.logspace(0, -4, steps, dtype=np.float32)

    values = resolve_schedule(noise_intensity, nb_steps, "noise", default)
    if np.any(values < 0):
        raise InvalidSettingError(f"noise must be >= 0; got values down to {values.min():g}")
    return values


def _axis_sampling(
    start: tf.Tensor, end: tf.Tensor, size: int, out: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Bilinear sampling along one axis, as ``tf.image.crop_and_resize`` does it.

    Returns the lower and upper source indices ``(M, out)``, the interpolation weight of the
    upper one and a validity mask (coordinates outside the image sample zero).
    """
    if out > 1:
        steps = tf.range(out, dtype=tf.float32) / float(out - 1)
        coords = start[:, None] * (size - 1) + steps[None] * ((end - start)[:, None] * (size - 1))
    else:
        coords = tf.tile((0.5 * (start + end) * (size - 1))[:, None], [1, out])
    valid = (coords >= 0.0) & (coords <= float(size - 1))
    low = tf.floor(coords)
    weight = coords - low
    low_idx = tf.clip_by_value(tf.cast(low, tf.int32), 0, size - 1)
    high_idx = tf.clip_by_value(low_idx + 1, 0, size - 1)
    return low_idx, high_idx, weight, valid


def crop_and_resize(
    images: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor, output_size: tuple[int, int]
) -> tf.Tensor:
    """Bilinear crops with gathers only: same values as ``tf.image.crop_and_resize``.

    TensorFlow's ``CropAndResize`` has no XLA kernel; this version compiles under XLA and
    differentiates with respect to the images (out-of-image samples are 0, as with the
    default ``extrapolation_value``).

    Parameters
    ----------
    images
        ``(N, H, W, C)``.
    boxes
        ``(M, 4)`` normalised ``[y1, x1, y2, x2]``.
    box_indices
        ``(M,)`` image of each box.
    output_size
        ``(h, w)``.

    Returns
    -------
    crops
        ``(M, h, w, C)``.
    """
    height, width = images.shape[1], images.shape[2]
    out_h, out_w = output_size
    y_lo, y_hi, y_w, y_ok = _axis_sampling(boxes[:, 0], boxes[:, 2], height, out_h)
    x_lo, x_hi, x_w, x_ok = _axis_sampling(boxes[:, 1], boxes[:, 3], width, out_w)
    which = tf.broadcast_to(box_indices[:, None], tf.shape(y_lo))
    top = tf.gather_nd(images, tf.stack([which, y_lo], axis=-1))  # (M, h, W, C)
    bottom = tf.gather_nd(images, tf.stack([which, y_hi], axis=-1))
    rows = top + (bottom - top) * y_w[:, :, None, None]
    left = tf.gather(rows, x_lo, axis=2, batch_dims=1)  # (M, h, w, C)
    right = tf.gather(rows, x_hi, axis=2, batch_dims=1)
    crops = left + (right - left) * x_w[:, None, :, None]
    valid = tf.cast(y_ok[:, :, None, None] & x_ok[:, None, :, None], crops.dtype)
    return crops * valid


#: Scratch memory (bytes) that one call of :func:`crop_views`' gradient may hold at once.
CROP_GRADIENT_SCRATCH = 256 * 2**20


def crop_views(
    images: tf.Tensor,
    boxes: tf.Tensor,
    output_size: tuple[int, int],
    scratch_bytes: int = CROP_GRADIENT_SCRATCH,
) -> tf.Tensor:
    """Bilinear crops of each image, as ``tf.image.crop_and_resize``, with a race-free gradient.

    TensorFlow's CPU kernel for the image gradient of ``crop_and_resize`` shares the boxes
    among threads and adds into the image gradient without synchronisation: when two threads
    work on boxes of the same image, updates to the pixels where they overlap are lost or
    reordered, so the gradient changes from run to run and can miss whole contributions.
    Here each box's gradient goes to its own slab (``box_ind`` ``0..M-1``, no two threads
    share memory) and the slabs of an image are summed in a fixed order. The forward pass is
    TensorFlow's op.

    Parameters
    ----------
    images
        ``(N, H, W, C)``.
    boxes
        ``(N, K, 4)`` normalised ``[y1, x1, y2, x2]``: the ``K`` boxes of each image.
        Not differentiated.
    output_size
        ``(h, w)``.
    scratch_bytes
        Largest slab memory held at once by the gradient; boxes are taken in groups that fit
        (at least one box per image per group).

    Returns
    -------
    crops
        ``(N * K, h, w, C)``, image-major (image 0's crops first).
    """
    nb_images, nb_boxes = int(boxes.shape[0]), int(boxes.shape[1])
    height, width, channels = (int(d) for d in images.shape[1:])
    out_h, out_w = output_size
    slab_bytes = nb_images * height * width * channels * images.dtype.size
    group = int(max(1, min(nb_boxes, scratch_bytes // max(slab_bytes, 1))))
    flat_boxes = tf.reshape(boxes, (nb_images * nb_boxes, 4))
    box_indices = tf.repeat(tf.range(nb_images, dtype=tf.int32), nb_boxes)

    @tf.custom_gradient
    def crop(source: tf.Tensor) -> tf.Tensor:
        crops = tf.image.crop_and_resize(source, flat_boxes, box_indices, output_size)

        def grad(upstream: tf.Tensor) -> tf.Tensor:
            upstream = tf.reshape(
                tf.cast(upstream, tf.float32), (nb_images, nb_boxes, out_h, out_w, channels)
            )
            partial = []
            for first in range(0, nb_boxes, group):
                count = min(group, nb_boxes - first)
                slabs = tf.raw_ops.CropAndResizeGradImage(
                    grads=tf.reshape(
                        upstream[:, first : first + count],
                        (nb_images * count, out_h, out_w, channels),
                    ),
                    boxes=tf.reshape(boxes[:, first : first + count], (nb_images * count, 4)),
                    box_ind=tf.range(nb_images * count, dtype=tf.int32),
                    image_size=[nb_images * count, height, width, channels],
                    T=source.dtype,
                )
                slabs = tf.reshape(slabs, (nb_images, count, height, width, channels))
                partial.append(tf.reduce_sum(slabs, axis=1))
            return partial[0] if len(partial) == 1 else tf.reduce_sum(tf.stack(partial), 0)

        return crops, grad

    return crop(images)


def fan_out(tensor: tf.Tensor, copies: int) -> list[tf.Tensor]:
    """``copies`` uses of ``tensor`` whose gradients are summed in a fixed order.

    When a tensor feeds three or more ops, TensorFlow sums their gradients with ``AddN``,
    whose CPU kernel starts from whichever input buffer it can reuse at that moment: the
    order of the additions, hence the rounding, changes from run to run. Each copy is the
    tensor itself (an identity, no data is copied); the gradients of all copies are stacked
    and summed along the stack, always in the same order.
    """
    if copies <= 1:
        return [tensor]

    @tf.custom_gradient
    def split(source: tf.Tensor) -> list[tf.Tensor]:
        def grad(*upstream: tf.Tensor | None) -> tf.Tensor:
            parts = [tf.zeros_like(source) if g is None else g for g in upstream]
            return tf.reduce_sum(tf.stack(parts), axis=0)

        return [tf.identity(source) for _ in range(copies)], grad

    return split(tensor)


_INV_65536 = 1.0 / 65536.0


def gaussian_plus_uniform(shape: tuple[int, ...], seed: tf.Tensor) -> tf.Tensor:
    """Standard normal plus uniform(-1/2, 1/2) noise, from one random 32-bit word per value.

    Generating random bits is what the noise costs on a CPU, so each Philox word serves twice:
    its high 16 bits feed the Box-Muller transform (a pair of words gives a radius and an
    angle, hence two normal values), its low 16 bits give the uniform part. The uniform part
    is quantised at 1/65536 of its width and the normal part is exact up to 4.85 standard
    deviations (P(|z| > 4.85) ~ 1e-6). Returns float32 values of ``shape``, the same for the
    same ``seed`` (a ``(2,)`` integer tensor).
    """
    size = int(np.prod(shape))
    pairs = (size + 1) // 2
    words = tf.random.stateless_uniform(
        (2, pairs), seed=seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    high = tf.cast(tf.bitwise.right_shift(words, 16), tf.float32)
    low = tf.cast(tf.bitwise.bitwise_and(words, 0xFFFF), tf.float32)
    # (k + 1/2) / 2**16: uniform in (0, 1), never 0 (the logarithm) nor 1
    radius = tf.sqrt(-2.0 * tf.math.log((high[0] + 0.5) * _INV_65536))
    angle = (high[1] + 0.5) * (2.0 * np.pi * _INV_65536)
    gaussian = tf.stack([radius * tf.cos(angle), radius * tf.sin(angle)])
    noise = gaussian + (low * _INV_65536 - (0.5 - 0.5 * _INV_65536))
    noise = tf.reshape(noise, (2 * pairs,))
    return tf.reshape(noise[:size] if 2 * pairs != size else noise, shape)


#: A noise pool holds one step's noise of an image plus this fraction more: the span of the
#: random offsets at which the steps read it.
NOISE_POOL_EXTRA = 0.25
#: ... and at least this many values more (small models).
MIN_NOISE_POOL_EXTRA = 4096


def noise_pool_size(size: int) -> int:
    """Length of the pool that serves windows of ``size`` noise values."""
    return size + max(int(size * NOISE_POOL_EXTRA), MIN_NOISE_POOL_EXTRA)


def noise_pool(size: int, seed: tf.Tensor) -> tf.Tensor:
    """A flat pool of :func:`noise_pool_size` ``(size)`` noise values (normal plus uniform).

    Drawing fresh noise for every crop and step is, after the model itself, the largest cost
    of a step on a CPU. The compiled loop draws one pool per call (every ``steps_per_call``
    steps) and each image and step reads a window of ``size`` values at its own random
    offset: every value is still distributed as N(0, 1) + U(-1/2, 1/2), two steps of a call
    see the same values at the same place only where their offsets coincide, and the pool
    is new at every call.
    """
    return gaussian_plus_uniform((noise_pool_size(size),), seed)


#: Pool offsets are multiples of this many values (64 bytes of float32): a window that starts
#: and ends on such a boundary is a view of the pool, not a copy (TensorFlow's ``Slice``).
POOL_ALIGNMENT = 16


def pool_offset(pool: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Random start of a window of ``size`` values in ``pool``, drawn from ``seed``.

    An int32 scalar, uniform over the multiples of ``POOL_ALIGNMENT`` at which the window
    fits.
    """
    slots = (int(pool.shape[0]) - size) // POOL_ALIGNMENT + 1
    slot = tf.random.stateless_uniform(
        (), seed=seed, minval=0, maxval=slots, dtype=tf.int32, alg="philox"
    )
    return slot * POOL_ALIGNMENT


def pooled_noise(pool: tf.Tensor, shape: tuple[int, ...], seed: tf.Tensor) -> tf.Tensor:
    """A window of ``pool`` of the given shape, at an offset drawn from ``seed``."""
    size = int(np.prod(shape))
    return tf.reshape(tf.slice(pool, [pool_offset(pool, size, seed)], [size]), shape)


def resize_matrix(size: int, out: int, iterations: int = 200) -> np.ndarray:
    """``(out, size)`` weights of an antialiased linear resize along one axis.

    Half-pixel centres and a triangle kernel widened by the downscaling factor (as PIL and
    ``tf.image.resize(..., antialias=True)`` do), then balanced (Sinkhorn iterations) so that
    every output is a weighted mean (rows sum to 1) *and* every source pixel carries the same
    total weight (columns sum to ``out / size``). A plain bilinear downscale samples some
    pixels and skips others, and even a triangle filter covers pixels unevenly, in a periodic
    pattern; the views of the whole image recur at every step, so their gradient would print
    that pattern into the accumulated transparency as a lattice (docs/quality.md). Balancing
    (``iterations`` rounds) applies only when downscaling.
    """
    scale = size / out
    width = max(scale, 1.0)
    centres = (np.arange(out) + 0.5) * scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(size)[None, :] - centres[:, None]) / width)
    weights /= weights.sum(axis=1, keepdims=True)
    if out < size:
        for _ in range(iterations):
            weights *= (out / size) / weights.sum(axis=0, keepdims=True)
            weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32)


def whole_image_views(images: tf.Tensor, output_size: tuple[int, int]) -> tf.Tensor:
    """Whole images ``(N, H, W, C)`` resized (antialiased) to ``output_size``; XLA-friendly."""
    rows = tf.constant(resize_matrix(int(images.shape[1]), output_size[0]))
    cols = tf.constant(resize_matrix(int(images.shape[2]), output_size[1]))
    return tf.einsum("oh,nhwc,pw->nopc", rows, images, cols)


def lane_sizes(views: int, lanes: int) -> list[int]:
    """Views per lane when ``views`` views are shared by ``lanes`` lanes (at most ``views``).

    The first ``views % lanes`` lanes take one view more: ``lane_sizes(5, 2) == [3, 2]``.
    """
    lanes = max(1, min(int(lanes), int(views)))
    return [views // lanes + (1 if k < views % lanes else 0) for k in range(lanes)]


def random_crops(
    images: tf.Tensor,
    box_size: tf.Tensor,
    noise_std: tf.Tensor,
    nb_crops: int,
    output_size: tuple[int, int],
    image_seeds: tf.Tensor,
    step: tf.Tensor,
    xla_friendly: bool = False,
    pool: tf.Tensor | None = None,
    whole_views: int = 0,
) -> tf.Tensor:
    """Sample ``nb_crops`` noisy crops of each image and resize them to ``output_size``.

    Crop centres are drawn around the image centre (std 0.15 of the side), square sides around
    ``box_size`` (std 0.05, clipped to [0.05, 1]); Gaussian noise of std ``noise_std`` and
    uniform noise of width ``noise_std`` are added. With ``nb_crops == 0`` each image is
    resized whole (one view, no noise-free shortcut: noise is still added).

    Parameters
    ----------
    images
        ``(N, H, W, C)``.
    box_size, noise_std
        Scalars for this step; ``noise_std`` is already in the images' value units.
    nb_crops
        Crops per image (static).
    output_size
        Model input ``(h, w)``.
    image_seeds
        ``(N,)`` int64 seed of each image.
    step
        Current step (scalar).
    xla_friendly
        Use :func:`crop_and_resize` (gathers) instead of :func:`crop_views` (TensorFlow's
        op, which XLA lacks, with a race-free gradient).
    pool
        A :func:`noise_pool` to read the noise from, instead of fresh draws.
    whole_views
        The first ``whole_views`` views of each image are the whole image (rolled by a few
        random pixels, antialiased resize :func:`whole_image_views`, noise), so that every
        step also scores the image as it is finally seen; the other crops are drawn as usual
        (from the same random stream).

    Returns
    -------
    crops
        ``(N * max(nb_crops, 1), h, w, C)``, the crops of image 0 first.
    """
    return random_crop_lanes(
        images,
        box_size,
        noise_std,
        nb_crops,
        output_size,
        image_seeds,
        step,
        xla_friendly=xla_friendly,
        pool=pool,
        whole_views=whole_views,
        lanes=1,
    )[0]


def random_crop_lanes(
    images: tf.Tensor,
    box_size: tf.Tensor,
    noise_std: tf.Tensor,
    nb_crops: int,
    output_size: tuple[int, int],
    image_seeds: tf.Tensor,
    step: tf.Tensor,
    xla_friendly: bool = False,
    pool: tf.Tensor | None = None,
    whole_views: int = 0,
    lanes: int = 1,
) -> list[tf.Tensor]:
    """The views of :func:`random_crops`, built directly as ``lanes`` separate batches.

    Lane ``k`` holds views ``a_k .. b_k - 1`` of every image (:func:`lane_sizes`), with the
    same boxes and noise values as :func:`random_crops` gives them: the lanes are that
    function's output regrouped, without a split or a copy of the whole. Each lane goes
    through the model on its own, and nothing joins the lanes before the model's outputs,
    so the runtime can overlap one lane's cropping (and its gradient) with another's model.

    Parameters
    ----------
    images
        ``(N, H, W, C)``.
    box_size, noise_std
        Scalars for this step, as :func:`random_crops`.
    nb_crops
        Views per image (static; 0: the whole image, resized).
    output_size
        Model input ``(h, w)``.
    image_seeds
        ``(N,)`` int64 seed of each image.
    step
        Current step (scalar).
    xla_friendly
        Crop with gathers (:func:`crop_and_resize`) instead of :func:`crop_views`.
    pool
        A :func:`noise_pool`, or None for fresh noise.
    whole_views
        Views per image that are the whole image, as :func:`random_crops`.
    lanes
        Number of lanes (at most ``max(nb_crops, 1)`` are made).

    Returns
    -------
    batches
        One ``(N * v_k, h, w, C)`` tensor per lane, image-major (image 0's views first).
    """
    parts = crop_lanes(
        images,
        box_size,
        nb_crops,
        output_size,
        image_seeds,
        step,
        xla_friendly=xla_friendly,
        whole_views=whole_views,
        lanes=lanes,
    )
    return add_lane_noise(parts, noise_std, nb_crops, image_seeds, step, pool=pool)


def lane_spans(nb_crops: int, lanes: int) -> list[tuple[int, int]]:
    """Views ``[first, last)`` of each image in each lane (:func:`lane_sizes`)."""
    bounds = np.cumsum([0, *lane_sizes(max(nb_crops, 1), lanes)]).tolist()
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def crop_lanes(
    images: tf.Tensor,
    box_size: tf.Tensor,
    nb_crops: int,
    output_size: tuple[int, int],
    image_seeds: tf.Tensor,
    step: tf.Tensor,
    xla_friendly: bool = False,
    whole_views: int = 0,
    lanes: int = 1,
) -> list[tf.Tensor]:
    """The views of :func:`random_crop_lanes` before their noise is added.

    Parameters and lanes as :func:`random_crop_lanes` (without the noise's); returns one
    ``(N * v_k, h, w, C)`` tensor per lane (:func:`lane_spans`), image-major.
    """
    nb_images = images.shape[0]
    channels = images.shape[-1]
    spans = lane_spans(nb_crops, lanes)  # views [first, last) per lane
    view_shape = (*output_size, channels)
    if nb_crops == 0:
        parts = [tf.image.resize(images, output_size)]
    else:
        boxes, shifts = _crop_geometry(
            nb_images, nb_crops, box_size, image_seeds, step, whole_views
        )
        # per lane: its number of whole views, and its crops [crop_first, crop_last)
        layout = [
            (
                max(0, min(last, whole_views) - first),
                max(first, whole_views) - whole_views,
                last - whole_views,
            )
            for first, last in spans
        ]
        # Every consumer of the images (or of the whole views) gets its own fan_out copy,
        # so that their gradients add up in the same order at every run.
        lanes_with_crops = sum(1 for _, crop_first, crop_last in layout if crop_last > crop_first)
        lanes_with_whole = sum(1 for nb_whole, _, _ in layout if nb_whole)
        sources = fan_out(images, lanes_with_crops + (1 if whole_views else 0))
        whole = []
        if whole_views:
            # Rolled by a few pixels (the synthesised images are periodic): the model's
            # stride patterns then land elsewhere at every step instead of adding up.
            source = sources.pop()
            rolled = tf.stack(
                [tf.roll(source[j], shifts[j], axis=[0, 1]) for j in range(nb_images)]
            )
            whole = fan_out(whole_image_views(rolled, output_size)[:, None], lanes_with_whole)
        parts = []
        for (first, last), (nb_whole, crop_first, crop_last) in zip(spans, layout, strict=True):
            pieces = []
            if nb_whole:
                pieces.append(tf.repeat(whole.pop(), nb_whole, axis=1))
            if crop_last > crop_first:
                count = crop_last - crop_first
                lane_boxes = tf.stack([b[crop_first:crop_last] for b in boxes])
                source = sources.pop()
                if xla_friendly:
                    box_indices = tf.repeat(tf.range(nb_images, dtype=tf.int32), count)
                    lane_boxes = tf.reshape(lane_boxes, (nb_images * count, 4))
                    crops = crop_and_resize(source, lane_boxes, box_indices, output_size)
                else:
                    crops = crop_views(source, lane_boxes, output_size)
                pieces.append(tf.reshape(crops, (nb_images, count, *view_shape)))
            lane = tf.concat(pieces, axis=1) if len(pieces) > 1 else pieces[0]
            parts.append(tf.reshape(lane, (nb_images * (last - first), *view_shape)))
    return parts


def add_lane_noise(
    parts: list[tf.Tensor],
    noise_std: tf.Tensor,
    nb_crops: int,
    image_seeds: tf.Tensor,
    step: tf.Tensor,
    pool: tf.Tensor | None = None,
) -> list[tf.Tensor]:
    """The lanes of :func:`crop_lanes` with the step's noise added, as :func:`random_crop_lanes`.

    The noise of each image depends on its seed and the step only (not on the lanes).
    """
    views = max(nb_crops, 1)
    spans = lane_spans(nb_crops, len(parts))
    nb_images = int(parts[0].shape[0]) // (spans[0][1] - spans[0][0])
    view_shape = tuple(parts[0].shape[1:])
    noises: list[list[tf.Tensor]] = [[] for _ in spans]
    for j in range(nb_images):
        seeds = step_seeds(image_seeds[j : j + 1], step, NOISE_SALT)[0]
        if pool is None:
            noise = gaussian_plus_uniform((views, *view_shape), seeds)
        else:
            noise = pooled_noise(pool, (views, *view_shape), seeds)
        # (aligned pool windows and their lane slices are views of the pool, not copies)
        for lane, (first, last) in zip(noises, spans, strict=True):
            lane.append(noise[first:last] if len(spans) > 1 else noise)
    return [
        part + (tf.concat(noise, axis=0) if len(noise) > 1 else noise[0]) * noise_std
        for part, noise in zip(parts, noises, strict=True)
    ]


def _crop_geometry(
    nb_images: int,
    nb_crops: int,
    box_size: tf.Tensor,
    image_seeds: tf.Tensor,
    step: tf.Tensor,
    whole_views: int,
) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """Boxes and shifts of every image's views for one step.

    Returns, per image, the boxes ``(nb_crops - whole_views, 4)`` of its crops and, with
    whole views, the ``(2,)`` integer shift of its whole views (else an empty list).
    """
    boxes, shifts = [], []
    for j in range(nb_images):
        seeds = step_seeds(image_seeds[j : j + 1], step, CROP_SALT)[0]
        draws = tf.random.stateless_normal((3, nb_crops), seed=seeds, alg="philox")
        center_y = 0.5 + draws[0] * CENTER_STD
        center_x = 0.5 + draws[1] * CENTER_STD
        side = tf.clip_by_value(box_size + draws[2] * BOX_SIZE_STD, MIN_BOX_SIZE, 1.0)
        if whole_views:  # whole views are not crops: their draws give the view's shift
            shifts.append(
                tf.cast(
                    tf.round(tf.clip_by_value(draws[:2, 0] * WHOLE_SHIFT_STD, -6.0, 6.0)),
                    tf.int32,
                )
            )
            center_y, center_x, side = (t[whole_views:] for t in (center_y, center_x, side))
        boxes.append(
            tf.stack(
                [
                    center_y - side / 2,
                    center_x - side / 2,
                    center_y + side / 2,
                    center_x + side / 2,
                ],
                axis=-1,
            )
        )
    return boxes, shifts

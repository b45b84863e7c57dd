import numpy as np
import pytest
import tensorflow as tf

from maco_tf.core.augment import (
    box_size_schedule,
    crop_and_resize,
    crop_views,
    fan_out,
    lane_sizes,
    noise_pool,
    noise_schedule,
    random_crop_lanes,
    random_crops,
    whole_image_views,
)
from maco_tf.errors import InvalidSettingError


def test_default_schedules():
    boxes = box_size_schedule(None, 10)
    np.testing.assert_allclose(boxes[[0, -1]], [0.5, 0.05], rtol=1e-6)
    assert np.all(np.diff(boxes) < 0)
    np.testing.assert_allclose(noise_schedule(0.08, 5), 0.08)
    np.testing.assert_allclose(noise_schedule(None, 3), [1.0, 0.01, 1e-4], rtol=1e-5)


def test_callable_and_array_schedules():
    np.testing.assert_allclose(box_size_schedule(lambda i: 0.1 * (i + 1), 3), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(noise_schedule(np.array([0.1, 0.2]), 2), [0.1, 0.2])
    np.testing.assert_allclose(box_size_schedule(0.3, 4), 0.3)


def test_bad_schedules():
    with pytest.raises(InvalidSettingError, match=r"\(0, 1\]"):
        box_size_schedule(1.5, 3)
    with pytest.raises(InvalidSettingError, match="one per step"):
        box_size_schedule([0.2, 0.3], 3)
    with pytest.raises(InvalidSettingError, match="callable failed"):
        noise_schedule(lambda i: 1 / 0, 3)
    with pytest.raises(InvalidSettingError, match=">= 0"):
        noise_schedule(-0.1, 3)


def test_gather_crops_match_tensorflow(rng):
    images = tf.constant(rng.normal(size=(2, 40, 30, 3)).astype(np.float32))
    centers = rng.uniform(0.1, 0.9, size=(12, 2))
    sides = rng.uniform(0.05, 1.0, size=(12, 1))
    boxes = tf.constant(np.concatenate([centers - sides / 2, centers + sides / 2], 1), tf.float32)
    indices = tf.constant(rng.integers(0, 2, 12), tf.int32)
    for size in [(8, 8), (5, 11), (1, 1)]:
        expected = tf.image.crop_and_resize(images, boxes, indices, size)
        np.testing.assert_allclose(
            crop_and_resize(images, boxes, indices, size), expected, atol=1e-4
        )


def _reference_crop_gradient(shape, boxes, upstream):
    """The image gradient of bilinear crops, box after box in float64 (TensorFlow's sampling)."""
    grad = np.zeros(shape, np.float64)
    height, width = shape[1:3]
    out_h, out_w = upstream.shape[2:4]
    for image in range(boxes.shape[0]):
        for box, up in zip(boxes[image], upstream[image], strict=True):
            y1, x1, y2, x2 = box.astype(np.float32)
            ys = y1 * (height - 1) + np.arange(out_h) * ((y2 - y1) * (height - 1) / (out_h - 1))
            xs = x1 * (width - 1) + np.arange(out_w) * ((x2 - x1) * (width - 1) / (out_w - 1))
            for y, in_y in enumerate(ys):
                if not 0 <= in_y <= height - 1:
                    continue
                top, bottom = int(np.floor(in_y)), int(np.ceil(in_y))
                for x, in_x in enumerate(xs):
                    if not 0 <= in_x <= width - 1:
                        continue
                    left, right = int(np.floor(in_x)), int(np.ceil(in_x))
                    wy, wx = in_y - top, in_x - left
                    g = up[y, x].astype(np.float64)
                    grad[image, top, left] += (1 - wy) * (1 - wx) * g
                    grad[image, top, right] += (1 - wy) * wx * g
                    grad[image, bottom, left] += wy * (1 - wx) * g
                    grad[image, bottom, right] += wy * wx * g
    return grad


@pytest.mark.parametrize("scratch", [None, 1])  # one call, or one box per image per call
def test_crop_views_match_tensorflow_with_an_exact_repeatable_gradient(rng, scratch):
    # many large boxes on the same images: the case where TensorFlow's CPU gradient kernel,
    # which shares boxes among threads without synchronisation, loses or reorders updates
    images = tf.constant(rng.normal(size=(2, 30, 40, 3)).astype(np.float32))
    centers = rng.uniform(0.3, 0.7, size=(2, 24, 2))
    sides = rng.uniform(0.3, 1.2, size=(2, 24, 1))  # some boxes leave the image
    boxes = np.concatenate([centers - sides / 2, centers + sides / 2], -1).astype(np.float32)
    upstream = rng.normal(size=(2, 24, 9, 7, 3)).astype(np.float32)
    kwargs = {} if scratch is None else {"scratch_bytes": scratch}

    @tf.function
    def crops_and_gradient(source):
        with tf.GradientTape() as tape:
            tape.watch(source)
            crops = crop_views(source, tf.constant(boxes), (9, 7), **kwargs)
            loss = tf.reduce_sum(crops * tf.reshape(upstream, crops.shape))
        return crops, tape.gradient(loss, source)

    crops, grad = crops_and_gradient(images)
    expected = tf.image.crop_and_resize(
        images, boxes.reshape(-1, 4), np.repeat(np.arange(2), 24).astype(np.int32), (9, 7)
    )
    np.testing.assert_array_equal(crops, expected)
    reference = _reference_crop_gradient(images.shape, boxes, upstream)
    np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-4)
    for _ in range(4):
        np.testing.assert_array_equal(crops_and_gradient(images)[1], grad)


def test_fan_out_sums_the_gradients_of_its_copies(rng):
    x = tf.constant(rng.normal(size=(3, 5)).astype(np.float32))
    weights = [tf.constant(rng.normal(size=(3, 5)).astype(np.float32)) for _ in range(4)]

    @tf.function
    def gradient(source):
        with tf.GradientTape() as tape:
            tape.watch(source)
            copies = fan_out(source, 5)  # the last copy is unused: its gradient is None
            loss = sum(tf.reduce_sum(c * w) for c, w in zip(copies, weights, strict=False))
        return copies, tape.gradient(loss, source)

    copies, grad = gradient(x)
    assert len(copies) == 5
    for copy in copies:
        np.testing.assert_array_equal(copy, x)
    np.testing.assert_allclose(grad, np.sum(weights, axis=0), rtol=1e-6)
    for _ in range(4):
        np.testing.assert_array_equal(gradient(x)[1], grad)
    assert fan_out(x, 1) == [x]


def _crops(images, seeds, step=3, xla=False):
    return random_crops(
        tf.constant(images),
        0.4,
        0.1,
        4,
        (8, 8),
        tf.constant(seeds, tf.int64),
        tf.constant(step),
        xla_friendly=xla,
    ).numpy()


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize(
    "nb_crops, whole, lanes", [(5, 0, 2), (5, 2, 2), (5, 2, 3), (4, 3, 4), (3, 1, 9), (0, 0, 2)]
)
def test_lanes_regroup_the_views_of_random_crops(rng, pooled, nb_crops, whole, lanes):
    """Same boxes, whole views and noise values, regrouped per lane: lane k holds views
    a_k..b_k - 1 of every image."""
    images = tf.constant(rng.normal(size=(3, 24, 20, 3)).astype(np.float32))
    seeds = tf.constant([11, 12, 13], tf.int64)
    views = max(nb_crops, 1)
    pool = noise_pool(views * 8 * 8 * 3, tf.constant([5, 6], tf.int64)) if pooled else None
    args = (images, 0.4, 0.3, nb_crops, (8, 8), seeds, tf.constant(3))
    whole_crops = random_crops(*args, pool=pool, whole_views=whole).numpy()
    grouped = whole_crops.reshape(3, views, 8, 8, 3)
    per_lane = random_crop_lanes(*args, pool=pool, whole_views=whole, lanes=lanes)
    sizes = lane_sizes(views, lanes)
    assert [lane.shape[0] for lane in per_lane] == [3 * size for size in sizes]
    first = 0
    for lane, size in zip(per_lane, sizes, strict=True):
        expected = grouped[:, first : first + size].reshape(-1, 8, 8, 3)
        np.testing.assert_allclose(lane.numpy(), expected, atol=1e-6)
        first += size


def test_crops_are_per_image_and_reproducible(rng):
    images = rng.normal(size=(3, 24, 24, 3)).astype(np.float32)
    crops = _crops(images, [11, 12, 13])
    assert crops.shape == (12, 8, 8, 3)
    again = _crops(images, [11, 12, 13])
    np.testing.assert_array_equal(crops, again)
    alone = _crops(images[2:], [13])
    np.testing.assert_allclose(crops[8:], alone, atol=1e-6)  # independent of batch mates
    assert not np.allclose(_crops(images, [11, 12, 13], step=4), crops)
    np.testing.assert_allclose(_crops(images, [11, 12, 13], xla=True), crops, atol=1e-4)


def test_whole_views_show_the_whole_image_and_keep_the_other_crops(rng):
    images = tf.constant(rng.normal(size=(2, 24, 20, 3)).astype(np.float32))
    seeds = tf.constant([11, 12], tf.int64)

    def crops(step, whole, noise=0.0, nb_crops=4, xla=False):
        return random_crops(
            images, 0.4, noise, nb_crops, (8, 8), seeds, tf.constant(step),
            whole_views=whole, xla_friendly=xla,
        ).numpy()  # fmt: skip

    # An antialiased resize in which every pixel counts the same (resize_matrix).
    smooth = tf.image.resize(tf.image.resize(images, (6, 5)), (24, 20))  # low-pass content
    np.testing.assert_allclose(
        whole_image_views(smooth, (8, 8)),
        tf.image.resize(smooth, (8, 8), antialias=True),
        atol=0.05,
    )

    def roll_of(view, image):
        """The (dy, dx) roll of ``image`` whose whole view is ``view``, or None."""
        for dy in range(-6, 7):
            for dx in range(-6, 7):
                rolled = np.roll(images.numpy()[image], (dy, dx), axis=(0, 1))
                if np.allclose(whole_image_views(rolled[None], (8, 8))[0], view, atol=1e-5):
                    return dy, dx
        return None

    rolls = set()
    for step in (3, 4, 5):
        with_whole, plain = crops(step, 2), crops(step, 0)
        for image in range(2):
            first = 4 * image
            roll = roll_of(with_whole[first], image)
            assert roll is not None  # a whole view is the image, rolled by at most 6 pixels
            rolls.add(roll)
            np.testing.assert_array_equal(with_whole[first], with_whole[first + 1])
            # the random crops keep their draws: crops 2 and 3 are those without whole views
            np.testing.assert_array_equal(
                with_whole[first + 2 : first + 4], plain[first + 2 : first + 4]
            )
    assert len(rolls) >= 3  # the roll changes from step to step and image to image
    np.testing.assert_allclose(crops(3, 2, xla=True), crops(3, 2), atol=1e-4)
    only_whole = crops(3, 2, nb_crops=2)
    assert roll_of(only_whole[0], 0) is not None and roll_of(only_whole[2], 1) is not None
    noisy = crops(3, 1, noise=0.1)
    assert 0.05 < np.std(noisy[0] - crops(3, 1)[0]) < 0.2  # whole views get noise too


def test_resize_matrix_spreads_every_pixel():
    from maco_tf.core.augment import resize_matrix

    weights = resize_matrix(320, 224)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)  # constants are kept
    coverage = weights.sum(axis=0)  # what each source pixel contributes: the same for all
    np.testing.assert_allclose(coverage, 224 / 320, rtol=1e-3)
    assert np.all(weights >= 0) and np.count_nonzero(weights[100]) <= 5  # a local filter
    np.testing.assert_allclose(resize_matrix(7, 7), np.eye(7), atol=1e-7)


def test_noise_distribution():
    from scipy import stats

    from maco_tf.core.augment import gaussian_plus_uniform

    noise = gaussian_plus_uniform((40, 50, 3), tf.constant([1, 2], tf.int64)).numpy()
    assert noise.shape == (40, 50, 3)
    assert abs(noise.mean()) < 0.03
    np.testing.assert_allclose(noise.var(), 1 + 1 / 12, rtol=0.05)
    # the sum of N(0, 1) and U(-1/2, 1/2) has a known CDF: compare with a KS test
    grid = np.linspace(-6, 6, 4001)
    density = stats.norm.cdf(grid + 0.5) - stats.norm.cdf(grid - 0.5)
    cdf = np.cumsum(density) / density.sum()
    statistic, pvalue = stats.kstest(noise.ravel(), lambda x: np.interp(x, grid, cdf))
    assert pvalue > 1e-3, statistic
    other = gaussian_plus_uniform((40, 50, 3), tf.constant([1, 3], tf.int64)).numpy()
    assert abs(np.corrcoef(noise.ravel(), other.ravel())[0, 1]) < 0.05


def test_noise_from_16_bit_halves_has_the_right_moments_and_tails():
    from scipy import stats

    from maco_tf.core.augment import gaussian_plus_uniform

    # an odd size: the last Box-Muller pair is cut
    noise = gaussian_plus_uniform((1_000_001,), tf.constant([7, 8], tf.int64)).numpy()
    assert noise.shape == (1_000_001,)
    centred = noise - noise.mean()
    variance = centred.var()
    assert abs(noise.mean()) < 0.005
    np.testing.assert_allclose(variance, 1 + 1 / 12, rtol=0.01)
    # fourth moment of N(0, 1) + U(-1/2, 1/2): 3 + 6/12 + 1/80
    np.testing.assert_allclose((centred**4).mean(), 3.5125, rtol=0.03)
    # tails: P(|N + U| > 3) as the exact convolution gives it, within sampling error
    grid = np.linspace(-0.5, 0.5, 2001)
    tail = np.mean(stats.norm.sf(3 - grid) + stats.norm.cdf(-3 - grid))
    observed = np.mean(np.abs(noise) > 3)
    assert abs(observed - tail) < 5 * np.sqrt(tail / noise.size), (observed, tail)
    # neighbours (the two values of a Box-Muller pair sit half the array apart) are independent
    half = noise.size // 2
    assert abs(np.corrcoef(noise[:half], noise[half : 2 * half])[0, 1]) < 0.005
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.005


def test_pooled_noise_windows():
    from maco_tf.core.augment import POOL_ALIGNMENT, noise_pool, noise_pool_size, pooled_noise

    assert noise_pool_size(6) == 6 + 4096
    assert noise_pool_size(10**6) == 1_250_000
    pool = noise_pool(6, tf.constant([4, 5], tf.int64))
    assert pool.shape == (noise_pool_size(6),)
    flat = pool.numpy()
    span = flat.size - 6 + 1

    def offset(k: int) -> int:
        window = pooled_noise(pool, (2, 3), tf.constant([1, k], tf.int64)).numpy().ravel()
        starts = [i for i in range(span) if np.array_equal(flat[i : i + 6], window)]
        assert starts, "the window is a contiguous slice of the pool"
        return starts[0]

    offsets = {offset(k) for k in range(20)}
    assert len(offsets) > 3  # steps read the pool at different offsets
    assert all(start % POOL_ALIGNMENT == 0 for start in offsets)  # views, not copies

import numpy as np
import pytest
import tensorflow as tf

from maco_tf.core.parameterization import (
    GAIN_LOGIT,
    SEED_MARGIN,
    FourierParameterization,
    MacoParameterization,
    PixelParameterization,
    SeededSpectrumParameterization,
)
from maco_tf.core.spectrum import imagenet_magnitude


@pytest.mark.parametrize("shape", [(64, 64), (48, 62), (33, 45)])
def test_maco_spectrum_magnitude_is_the_target(shape):
    """Before colour mixing and sigmoid, |FFT| of the image is the target magnitude / std."""
    height, width = shape
    magnitude = imagenet_magnitude(height, width)
    param = MacoParameterization(magnitude, (height, width, 3), (-1, 1))
    phase = param.initial_params(seed=3, indices=[0, 1])
    spatial = param.spatial(tf.constant(phase)).numpy()  # standardised, decorrelated basis
    spectra = np.abs(np.fft.rfft2(np.moveaxis(spatial, -1, 1), axes=(-2, -1)))
    # frequencies the real inverse FFT leaves free: columns strictly between DC and Nyquist
    last = width // 2 if width % 2 == 0 else width // 2 + 1
    free = (slice(None), slice(None), slice(1, last))
    for i in range(2):
        target = magnitude[free]
        scale = np.median(spectra[i][free] / target)  # 1 / std of the image before scaling
        np.testing.assert_allclose(
            spectra[i][free] / scale, target, rtol=1e-2, atol=1e-5 * target.max()
        )
    # the phase, not the magnitude, carries the image: two seeds give different images
    assert np.abs(spatial[0] - spatial[1]).mean() > 0.1


def test_only_phase_is_trainable_and_images_in_range():
    magnitude = imagenet_magnitude(32, 32)
    param = MacoParameterization(magnitude, (32, 32, 3), (0, 255))
    assert param.param_shape == (3, 32, 17)
    phase = tf.Variable(param.initial_params(0, [0]))
    with tf.GradientTape() as tape:
        images = param.to_images(phase)
        loss = tf.reduce_sum(images[..., 0])
    grad = tape.gradient(loss, phase)
    assert grad is not None and np.any(grad.numpy() != 0)
    assert images.shape == (1, 32, 32, 3)
    assert images.numpy().min() >= 0 and images.numpy().max() <= 255
    assert param.buffers()["magnitude"] is param.magnitude  # the magnitude is a fixed buffer


def test_initial_params_depend_on_seed_and_index_only():
    param = MacoParameterization(imagenet_magnitude(16, 16), (16, 16, 3), (-1, 1))
    batch = param.initial_params(7, [0, 1, 2])
    alone = param.initial_params(7, [2])
    np.testing.assert_array_equal(batch[2], alone[0])
    assert not np.allclose(param.initial_params(8, [0])[0], batch[0])


def test_magnitude_shape_is_checked():
    with pytest.raises(ValueError, match="expected"):
        MacoParameterization(np.ones((3, 16, 9)), (16, 20, 3), (-1, 1))


@pytest.mark.parametrize("cls", [FourierParameterization, PixelParameterization])
def test_baselines_produce_valid_images(cls):
    param = cls((24, 30, 3), (-1, 1))
    images = param.to_images(tf.constant(param.initial_params(0, [0, 1]))).numpy()
    assert images.shape == (2, 24, 30, 3)
    assert images.min() >= -1 and images.max() <= 1


def test_grayscale_maco_has_no_colour_mixing():
    magnitude = np.ones((1, 16, 9), np.float32)
    param = MacoParameterization(magnitude, (16, 16, 1), (0, 1))
    images = param.to_images(tf.constant(param.initial_params(0, [0]))).numpy()
    expected = 1 / (1 + np.exp(-param.spatial(tf.constant(param.initial_params(0, [0]))).numpy()))
    np.testing.assert_allclose(images, expected, atol=1e-6)


def _reference_maco_images(params, magnitude, values_range):
    """MACO's synthesis written with plain TensorFlow ops (automatic differentiation)."""
    from maco_tf.core.color import COLOR_CORRELATION
    from maco_tf.core.parameterization import PHASE_SPREAD

    def standardize(t):
        mean, variance = tf.nn.moments(t, axes=list(range(1, len(t.shape))), keepdims=True)
        return (t - mean) / (tf.sqrt(variance) + 1e-5)

    phase = standardize(params) * PHASE_SPREAD
    spectrum = tf.complex(tf.cos(phase) * magnitude, tf.sin(phase) * magnitude)
    height = params.shape[2]
    width = 2 * (params.shape[3] - 1)
    images = standardize(tf.transpose(tf.signal.irfft2d(spectrum, [height, width]), [0, 2, 3, 1]))
    images = tf.tensordot(images, tf.constant(COLOR_CORRELATION), axes=[[-1], [0]])
    low, high = values_range
    return tf.nn.sigmoid(images) * (high - low) + low


def test_closed_form_gradients_equal_automatic_differentiation():
    shape = (24, 32, 3)
    values_range = (0.0, 255.0)
    param = MacoParameterization(imagenet_magnitude(24, 32), shape, values_range)
    params = tf.constant(param.initial_params(3, [0, 1]))
    weights = tf.random.stateless_normal((2, *shape), seed=[1, 2])

    def value_and_grad(synthesis):
        with tf.GradientTape() as tape:
            tape.watch(params)
            images = synthesis(params)
            loss = tf.reduce_sum(images * weights)
        return images.numpy(), tape.gradient(loss, params).numpy()

    images, grad = value_and_grad(param.to_images)
    ref_images, ref_grad = value_and_grad(
        lambda p: _reference_maco_images(p, tf.constant(param.magnitude)[None], values_range)
    )
    np.testing.assert_allclose(images, ref_images, atol=1e-4)
    assert np.abs(ref_grad).max() > 0
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6 * np.abs(ref_grad).max())


def test_standardize_gradient_is_finite_on_a_constant_tensor():
    from maco_tf.core.parameterization import _standardize

    flat = tf.ones((2, 5, 5, 3))
    with tf.GradientTape() as tape:
        tape.watch(flat)
        loss = tf.reduce_sum(_standardize(flat) * tf.reshape(tf.range(150.0), (2, 5, 5, 3)))
    grad = tape.gradient(loss, flat).numpy()
    assert np.all(np.isfinite(grad))


def test_phase_spread_sets_the_standardised_phase_spread():
    magnitude = imagenet_magnitude(16, 16)
    unit = MacoParameterization(magnitude, (16, 16, 3), (-1, 1), phase_spread=1.0)
    default = MacoParameterization(magnitude, (16, 16, 3), (-1, 1))
    params = tf.constant(default.initial_params(0, [0]))
    spread_unit = np.std(np.angle(unit.spectrum(params).numpy()[0, :, 1:-1, 1:-1]))
    spread_default = np.std(np.angle(default.spectrum(params).numpy()[0, :, 1:-1, 1:-1]))
    # pi-spread phases wrap around the circle (std of a uniform angle: pi / sqrt(3))
    assert spread_unit == pytest.approx(1.0, abs=0.1)
    assert spread_default == pytest.approx(np.pi / np.sqrt(3), abs=0.15)
    assert unit.cache_key() != default.cache_key()


@pytest.mark.parametrize("spread", [0.0, -1.0, float("nan")])
def test_phase_spread_must_be_positive(spread):
    with pytest.raises(ValueError, match="phase_spread"):
        MacoParameterization(imagenet_magnitude(16, 16), (16, 16, 3), (-1, 1), phase_spread=spread)


@pytest.mark.parametrize(
    ("shape", "values_range"), [((40, 40, 3), (-1, 1)), ((33, 45, 1), (0, 255))]
)
def test_seeded_spectrum_starts_at_its_seeds(shape, values_range):
    """The first image is the seed (pixels at most the margin away), image ``i`` from seed ``i``."""
    low, high = values_range
    seeds = np.random.default_rng(0).uniform(low, high, (3, *shape)).astype(np.float32)
    param = SeededSpectrumParameterization(seeds, values_range)
    assert param.param_shape == (3, shape[2], shape[0], shape[1] // 2 + 1)
    images = param.to_images(tf.constant(param.initial_params(seed=7, indices=[2, 0]))).numpy()
    assert images.shape == (2, *shape)
    margin = 1.01 * SEED_MARGIN * (high - low)
    np.testing.assert_allclose(images, seeds[[2, 0]], atol=margin)


def test_seeded_spectrum_trains_phase_and_gain_not_the_magnitude():
    seeds = np.random.default_rng(1).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    param = SeededSpectrumParameterization(seeds, (-1, 1))
    params = tf.Variable(param.initial_params(0, [0]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(param.to_images(params) * tf.constant(seeds))
    grad = tape.gradient(loss, params).numpy()
    assert np.abs(grad[:, 0]).max() > 0 and np.abs(grad[:, 1]).max() > 0
    assert not np.any(grad[:, 2])
    # the magnitude plane is the seed's spectrum magnitude (over the initial gain)
    assert np.all(params.numpy()[:, 2] >= 0) and np.all(params.numpy()[:, 1] == GAIN_LOGIT)

import numpy as np
import pytest

from maco_tf.core.color import COLOR_CORRELATION, decorrelate
from maco_tf.core.spectrum import (
    dataset_magnitude,
    imagenet_magnitude,
    resize_magnitude,
    xplique_spectrum_path,
)
from maco_tf.errors import SpectrumError


def test_xplique_spectrum_is_found_without_copying():
    path = xplique_spectrum_path()
    assert path.name == "spectrum_decorrelated.npy"
    assert "xplique" in str(path)
    assert np.load(path).shape == (3, 512, 257)


@pytest.mark.parametrize("shape", [(512, 512), (224, 224), (97, 131), (600, 300)])
def test_imagenet_magnitude_shapes(shape):
    mag = imagenet_magnitude(*shape)
    assert mag.shape == (3, shape[0], shape[1] // 2 + 1)
    assert np.all(np.isfinite(mag)) and np.all(mag >= 0)


def test_resize_keeps_dc_and_identity():
    original = np.load(xplique_spectrum_path())
    same = resize_magnitude(original, 512, 512)
    np.testing.assert_allclose(same, original, rtol=1e-6)
    small = resize_magnitude(original, 224, 224)
    # DC maps to DC, rescaled by sqrt(pixel ratio); other bins keep their magnitude
    np.testing.assert_allclose(small[:, 0, 0], original[:, 0, 0] * 224 / 512, rtol=1e-5)
    np.testing.assert_allclose(small[:, 1, 1], original[:, 2, 2], rtol=0.2)
    assert np.all(small[:, 1, 0] > small[:, 50, 0])
    # negative row frequencies stay symmetric with positive ones (no wrap-around blending)
    np.testing.assert_allclose(small[:, 5, 0], small[:, -5, 0], rtol=0.2)


def test_dataset_magnitude_uses_decorrelated_basis(rng):
    images = rng.uniform(0, 1, size=(4, 32, 32, 3)).astype(np.float32)
    mag = dataset_magnitude(images, 32, 32, channels=3)
    expected = np.abs(np.fft.rfft2(np.moveaxis(decorrelate(images), -1, 1))).mean(axis=0)
    np.testing.assert_allclose(mag, expected, rtol=1e-4)
    # round trip of the colour basis
    np.testing.assert_allclose(decorrelate(images) @ COLOR_CORRELATION, images, atol=1e-5)


def test_dataset_magnitude_accepts_tf_dataset_and_pairs(rng):
    import tensorflow as tf

    images = rng.uniform(0, 1, size=(6, 20, 20, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(6))).batch(4)
    mag = dataset_magnitude(ds, 40, 40, channels=1)
    assert mag.shape == (1, 40, 21)
    direct = dataset_magnitude(images, 20, 20)
    np.testing.assert_allclose(
        direct[0, 0, 0], np.abs(np.fft.rfft2(images[..., 0])).mean(axis=0)[0, 0], rtol=1e-5
    )


def test_dataset_magnitude_errors(rng):
    with pytest.raises(SpectrumError, match="channel"):
        dataset_magnitude(rng.uniform(size=(2, 8, 8, 3)), 8, 8, channels=1)
    with pytest.raises(SpectrumError, match="empty"):
        dataset_magnitude([], 8, 8)
    with pytest.raises(SpectrumError, match="NaN"):
        dataset_magnitude(np.full((1, 8, 8, 1), np.nan), 8, 8)
    with pytest.raises(SpectrumError, match="shape"):
        dataset_magnitude(np.zeros((8, 8)), 8, 8)


@pytest.mark.parametrize("size", [32, 64, 512])
def test_small_images_are_not_flat(size):
    """The mean colour keeps its share of the energy whatever the size."""
    import tensorflow as tf

    from maco_tf.core.parameterization import MacoParameterization

    param = MacoParameterization(imagenet_magnitude(size, size), (size, size, 3), (-1, 1))
    images = param.to_images(tf.constant(param.initial_params(0, range(4)))).numpy()
    assert images.std(axis=(1, 2)).mean() > 0.15

"""Helpers of the planted-feature test: a hand-wired orientation detector and phase statistics.

Orientation convention: an angle is the direction of the *intensity gradient* (the grating's
wave vector), in degrees, measured from the +column axis towards the +row axis (rows grow
downwards). A 45 degree unit therefore likes stripes that run from bottom-left to top-right
("/" on screen), a 135 degree unit stripes that run "\\".
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from scipy.ndimage import gaussian_filter

from maco_tf.core.color import COLOR_CORRELATION

MODEL_SIZE = 32
PERIOD = 8.0  # grating period, in model-input pixels
KERNEL = 11
SIGMA = 4.0  # Gaussian envelope of the Gabor
ANGLES = (45.0, 135.0)  # unit 0, unit 1


def gabor_kernel(size: int, angle_deg: float, period: float, sigma: float) -> np.ndarray:
    """Even (cosine) Gabor ``(size, size)`` with zero mean and unit L2 norm."""
    r = np.arange(size) - (size - 1) / 2
    rows, cols = np.meshgrid(r, r, indexing="ij")
    angle = np.deg2rad(angle_deg)
    envelope = np.exp(-(rows**2 + cols**2) / (2 * sigma**2))
    kernel = envelope * np.cos(2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle)) / period)
    kernel -= envelope * (kernel.sum() / envelope.sum())  # zero response to flat images
    return kernel / np.sqrt((kernel**2).sum())


def planted_model(angles: Sequence[float] = ANGLES) -> keras.Model:
    """``32x32x3`` input -> Gabor conv (one filter per angle, on luminance) -> ReLU -> GAP.

    The output layer ``"unit"`` has one neuron per angle: the mean rectified response of a
    simple cell tuned to gratings of period :data:`PERIOD` at that orientation.
    """
    inputs = keras.Input((MODEL_SIZE, MODEL_SIZE, 3))
    conv = keras.layers.Conv2D(len(angles), KERNEL, padding="valid", name="gabor")
    x = keras.layers.ReLU(name="rectify")(conv(inputs))
    outputs = keras.layers.GlobalAveragePooling2D(name="unit")(x)
    model = keras.Model(inputs, outputs, name="planted")
    kernels = np.stack([gabor_kernel(KERNEL, a, PERIOD, SIGMA) for a in angles], axis=-1)
    kernels = np.repeat(kernels[:, :, None, :], 3, axis=2) / np.sqrt(3.0)
    conv.set_weights([kernels.astype(np.float32), np.zeros(len(angles), np.float32)])
    return model


def grating(size: int, angle_deg: float, period: float, contrast: float = 0.8) -> np.ndarray:
    """Grey sinusoidal grating ``(size, size, 3)`` in (-1, 1)."""
    r = np.arange(size)
    rows, cols = np.meshgrid(r, r, indexing="ij")
    angle = np.deg2rad(angle_deg)
    wave = np.cos(2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle)) / period)
    return np.repeat((contrast * wave)[..., None], 3, axis=-1).astype(np.float32)


def responses(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Unit responses ``(N, units)`` to whole images resized (bilinear) to the model input."""
    resized = tf.image.resize(np.asarray(images, np.float32), (MODEL_SIZE, MODEL_SIZE))
    return np.asarray(model(resized, training=False))


def _random_phase(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A Hermitian-consistent random phase field on the rfft2 grid (0 at DC)."""
    phase = np.angle(np.fft.rfft2(rng.standard_normal((height, width))))
    phase[0, 0] = 0.0
    return phase


def phase_randomized(
    image: np.ndarray, rng: np.random.Generator, values_range: Sequence[float] = (-1, 1)
) -> np.ndarray:
    """Same per-channel |FFT| as ``image``, random phases, clipped to ``values_range``.

    One random phase field is added to every channel, so the colour relations survive and
    only the spatial arrangement is destroyed.
    """
    height, width, _ = image.shape
    spectrum = np.fft.rfft2(image, axes=(0, 1))
    shifted = spectrum * np.exp(1j * _random_phase(rng, height, width))[..., None]
    copy = np.fft.irfft2(shifted, s=(height, width), axes=(0, 1))
    return np.clip(copy, values_range[0], values_range[1])


def maco_phase_randomized(
    image: np.ndarray, rng: np.random.Generator, values_range: Sequence[float] = (-1, 1)
) -> np.ndarray:
    """A random-phase image from MACO's own family: same *pre-sigmoid* magnitude.

    The image is mapped back through the sigmoid and the colour mixing to the decorrelated
    basis in which MACO fixes the magnitude; its phases are randomised there and the image is
    rebuilt the way MACO builds it. The copy has exactly MACO's magnitude constraint.
    """
    low, high = float(values_range[0]), float(values_range[1])
    unit = np.clip((np.asarray(image, np.float64) - low) / (high - low), 1e-6, 1 - 1e-6)
    decorrelated = np.log(unit / (1 - unit)) @ np.linalg.inv(COLOR_CORRELATION)
    height, width, _ = image.shape
    spectrum = np.fft.rfft2(decorrelated, axes=(0, 1))
    shifted = spectrum * np.exp(1j * _random_phase(rng, height, width))[..., None]
    logits = np.fft.irfft2(shifted, s=(height, width), axes=(0, 1)) @ COLOR_CORRELATION
    return (low + (high - low) / (1 + np.exp(-logits))).astype(np.float32)


def oriented_coherence(
    image: np.ndarray, angle_deg: float, sigma_d: float = 1.0, sigma_w: float = 4.0
) -> float:
    """Local orientation statistic from the structure tensor of the luminance.

    In each Gaussian window (std ``sigma_w``) the structure tensor of the gradient (derivative
    of Gaussian, std ``sigma_d``) gives a dominant gradient orientation ``theta`` and a
    coherence in [0, 1]; the statistic is the mean over windows of
    ``coherence * cos(2 (theta - angle))``: +coherence where the window is oriented at
    ``angle``, -coherence where it is orthogonal, 0 for isotropic texture. Normalised per
    window, it is not fixed by the power spectrum (the global sums would be).
    """
    lum = np.asarray(image, np.float64).mean(axis=-1)
    grad_r = gaussian_filter(lum, sigma_d, order=(1, 0), mode="wrap")
    grad_c = gaussian_filter(lum, sigma_d, order=(0, 1), mode="wrap")
    jcc = gaussian_filter(grad_c * grad_c, sigma_w, mode="wrap")
    jrr = gaussian_filter(grad_r * grad_r, sigma_w, mode="wrap")
    jrc = gaussian_filter(grad_r * grad_c, sigma_w, mode="wrap")
    theta = 0.5 * np.arctan2(2 * jrc, jcc - jrr)
    coherence = np.hypot(jcc - jrr, 2 * jrc) / (jcc + jrr + 1e-12)
    return float(np.mean(coherence * np.cos(2 * (theta - np.deg2rad(angle_deg)))))


def band_power_fraction(model: keras.Model, image: np.ndarray, unit: int) -> float:
    """Share of the image's luminance power (at the model input) in the unit's Gabor band.

    ``sum |X|^2 |G|^2 / (sum |X|^2 * max |G|^2)`` on the model-input grid, DC excluded: 1 for a
    grating at the Gabor's peak frequency, small for a natural (1/f) spectrum.
    """
    resized = np.asarray(tf.image.resize(np.asarray(image, np.float32)[None], (MODEL_SIZE,) * 2))
    lum = resized[0].mean(axis=-1)
    power = np.abs(np.fft.fft2(lum - lum.mean())) ** 2
    kernel = model.get_layer("gabor").get_weights()[0][:, :, 0, unit]
    gain = np.abs(np.fft.fft2(kernel, s=(MODEL_SIZE, MODEL_SIZE))) ** 2
    return float((power * gain).sum() / (power.sum() * gain.max()))

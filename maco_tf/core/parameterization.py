"""Image parameterizations: how trainable parameters become images.

Each parameterization turns a batch of parameters ``(N, *param_shape)`` into images
``(N, H, W, C)`` within ``values_range``, and draws initial parameters per image from a seed so
that an image never depends on which other images share its batch.

* :class:`MacoParameterization` -- MACO: a fixed natural-image magnitude and a trainable phase.
* :class:`FourierParameterization` -- Olah et al. (2017): a trainable complex spectrum scaled by
  ``1 / f ** decay_power``.
* :class:`PixelParameterization` -- plain pixels through a sigmoid (the naive baseline).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from maco_tf.core.color import recorrelate
from maco_tf.core.seeds import start_generator
from maco_tf.core.spectrum import spectrum_shape

_EPS = 1e-5
#: Floor of a standard deviation that divides a gradient (constant images).
_TINY = 1e-12

#: Spread (standard deviation) of the standardised MACO phase, in radians.
PHASE_SPREAD = float(np.pi)


@tf.custom_gradient
def _standardize(tensor: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """Zero mean, unit standard deviation per batch item (over all other axes).

    With its gradient in closed form, ``(g - mean(g)) / (std + eps) - y * mean(g y) / std``:
    automatic differentiation of the moments costs about twice the passes over the tensor,
    and this runs twice per step on every image (phase and pixels).
    """
    axes = list(range(1, len(tensor.shape)))
    centred = tensor - tf.reduce_mean(tensor, axis=axes, keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=axes, keepdims=True))
    standardized = centred / (std + _EPS)

    def grad(upstream: tf.Tensor) -> tf.Tensor:
        mean_g = tf.reduce_mean(upstream, axis=axes, keepdims=True)
        mean_gy = tf.reduce_mean(upstream * standardized, axis=axes, keepdims=True)
        return (upstream - mean_g) / (std + _EPS) - standardized * (
            mean_gy / tf.maximum(std, _TINY)
        )

    return standardized, grad


@tf.custom_gradient
def _polar_spectrum(
    phase: tf.Tensor, magnitude: tf.Tensor
) -> tuple[tf.Tensor, Callable[[tf.Tensor], tuple[tf.Tensor, None]]]:
    """``magnitude * exp(i * phase)``; the gradient reaches the phase only.

    ``dL/dphase = magnitude * (cos(phase) Im(G) - sin(phase) Re(G))`` for the upstream
    gradient ``G`` (TensorFlow's convention, ``dL/dRe + i dL/dIm``), reusing the forward
    cosines and sines: automatic differentiation recomputes both and splits the complex
    gradient twice.
    """
    cos, sin = tf.cos(phase), tf.sin(phase)
    spectrum = tf.complex(cos * magnitude, sin * magnitude)

    def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, None]:
        return (cos * tf.math.imag(upstream) - sin * tf.math.real(upstream)) * magnitude, None

    return spectrum, grad


class Parameterization(ABC):
    """Maps trainable parameters to images in ``values_range``.

    Parameters
    ----------
    image_shape
        ``(H, W, C)`` of the synthesised images.
    values_range
        ``(low, high)`` range of the model's inputs.
    """

    #: Short name used in results and logs.
    name: str = "base"

    def __init__(self, image_shape: Sequence[int], values_range: tuple[float, float]):
        self.image_shape = tuple(int(v) for v in image_shape)
        self.values_range = (float(values_range[0]), float(values_range[1]))

    @property
    def channels(self) -> int:
        """Number of image channels."""
        return self.image_shape[-1]

    @property
    @abstractmethod
    def param_shape(self) -> tuple[int, ...]:
        """Shape of the parameters of one image."""

    @abstractmethod
    def initial_params(self, seed: int, indices: Sequence[int]) -> np.ndarray:
        """Initial parameters ``(len(indices), *param_shape)``, one seeded stream per index."""

    @abstractmethod
    def spatial(self, params: tf.Tensor) -> tf.Tensor:
        """Unbounded images ``(N, H, W, C)`` before colour mixing and squashing."""

    def buffers(self) -> dict[str, np.ndarray]:
        """Fixed (non-trainable) arrays the synthesis reads, e.g. the magnitude spectrum."""
        return {}

    def bind(self, buffers: dict[str, tf.Tensor]) -> None:
        """Use these tensors (same shapes as :meth:`buffers`) during synthesis."""
        self._bound = buffers

    def cache_key(self) -> tuple:
        """Everything that changes the traced computation (not the buffer values)."""
        return (type(self).__name__, self.image_shape, self.values_range)

    def to_images(self, params: tf.Tensor) -> tf.Tensor:
        """Images ``(N, H, W, C)`` in ``values_range``: colour mixing, sigmoid, rescaling."""
        images = self.spatial(params)
        if self.channels == 3:
            images = recorrelate(images)
        images = tf.nn.sigmoid(images)
        low, high = self.values_range
        return images * (high - low) + low


class MacoParameterization(Parameterization):
    """MACO: the image is the inverse FFT of ``magnitude * exp(i * phase)``; only the phase trains.

    Synthesis, per image: standardise the phase (spread pi), build the spectrum with the fixed
    magnitude, inverse real FFT, standardise the image, mix colours (RGB), sigmoid into
    ``values_range``.

    Parameters
    ----------
    magnitude
        Fixed magnitude ``(C, H, W // 2 + 1)`` (see :mod:`maco_tf.core.spectrum`).
    image_shape
        ``(H, W, C)``; must agree with the magnitude.
    values_range
        ``(low, high)`` range of the model's inputs.
    """

    name = "maco"

    def __init__(
        self,
        magnitude: np.ndarray,
        image_shape: Sequence[int],
        values_range: tuple[float, float],
    ):
        super().__init__(image_shape, values_range)
        height, width, channels = self.image_shape
        expected = (channels, *spectrum_shape(height, width))
        magnitude = np.asarray(magnitude, dtype=np.float32)
        if magnitude.shape != expected:
            raise ValueError(f"magnitude has shape {magnitude.shape}, expected {expected}")
        self.magnitude = magnitude
        self._bound = {"magnitude": tf.constant(magnitude)}

    @property
    def param_shape(self) -> tuple[int, ...]:
        """``(C, H, W // 2 + 1)``: one phase per frequency and channel."""
        return self.magnitude.shape

    def initial_params(self, seed: int, indices: Sequence[int]) -> np.ndarray:
        """Gaussian phases of spread ``PHASE_SPREAD``, one generator per image index."""
        return np.stack(
            [
                start_generator(seed, i).normal(scale=PHASE_SPREAD, size=self.param_shape)
                for i in indices
            ]
        ).astype(np.float32)

    def buffers(self) -> dict[str, np.ndarray]:
        """The fixed magnitude."""
        return {"magnitude": self.magnitude}

    def spectrum(self, params: tf.Tensor) -> tf.Tensor:
        """Complex spectra ``(N, C, H, W // 2 + 1)`` with the fixed magnitude.

        As in the reference implementation, the phase is standardised per image at every step
        (which keeps the optimizer's steps relative to the phases' spread), but then scaled to
        a spread of ``PHASE_SPREAD`` (pi) instead of 1: with unit spread,
        ``E[cos(phase)] = exp(-1/2)``, the frequencies line up at the origin and every image
        gets a bright spike at pixel (0, 0), i.e. in its four corners; with pi it is
        ``exp(-pi**2 / 2)``, below 1 %.
        """
        phase = _standardize(params) * PHASE_SPREAD
        return _polar_spectrum(phase, self._bound["magnitude"][None])

    def spatial(self, params: tf.Tensor) -> tf.Tensor:
        """Standardised images ``(N, H, W, C)`` in the synthesis (decorrelated) basis."""
        height, width, _ = self.image_shape
        images = tf.signal.irfft2d(self.spectrum(params), fft_length=[height, width])
        return _standardize(tf.transpose(images, [0, 2, 3, 1]))


def fourier_scale(height: int, width: int, decay_power: float) -> np.ndarray:
    """``1 / max(f, 1 / max(H, W)) ** decay_power``, times sqrt(H W), on the rfft grid."""
    freq_y = np.fft.fftfreq(height)[:, None]
    freq_x = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(freq_x**2 + freq_y**2)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
    return (scale * np.sqrt(height * width)).astype(np.float32)


class FourierParameterization(Parameterization):
    """Olah et al. (2017): trainable real and imaginary spectrum, scaled by ``1 / f ** decay``.

    Parameters
    ----------
    image_shape
        ``(H, W, C)``.
    values_range
        ``(low, high)`` range of the model's inputs.
    decay_power
        Spectral decay of the scaling; higher suppresses high frequencies more.
    std
        Standard deviation of the initial spectrum coefficients.
    """

    name = "fourier"

    def __init__(
        self,
        image_shape: Sequence[int],
        values_range: tuple[float, float],
        decay_power: float = 1.0,
        std: float = 0.01,
    ):
        super().__init__(image_shape, values_range)
        height, width, _ = self.image_shape
        self.decay_power = float(decay_power)
        self.std = float(std)
        self.scale = fourier_scale(height, width, self.decay_power)
        self._bound = {}

    @property
    def param_shape(self) -> tuple[int, ...]:
        """``(2, C, H, W // 2 + 1)``: real and imaginary parts."""
        height, width, channels = self.image_shape
        return (2, channels, *spectrum_shape(height, width))

    def initial_params(self, seed: int, indices: Sequence[int]) -> np.ndarray:
        """Small Gaussian spectra, one generator per image index."""
        return np.stack(
            [
                start_generator(seed, i).normal(scale=self.std, size=self.param_shape)
                for i in indices
            ]
        ).astype(np.float32)

    def cache_key(self) -> tuple:
        """Shapes, range and spectral decay (``std`` only changes the initial values)."""
        return (*super().cache_key(), self.decay_power)

    def spatial(self, params: tf.Tensor) -> tf.Tensor:
        """Inverse FFT of the scaled spectrum, ``(N, H, W, C)`` (divided by 4 as in Lucid)."""
        height, width, _ = self.image_shape
        scale = tf.constant(self.scale)[None, None]
        spectrum = tf.complex(params[:, 0] * scale, params[:, 1] * scale)
        images = tf.signal.irfft2d(spectrum, fft_length=[height, width])
        return tf.transpose(images, [0, 2, 3, 1]) / 4.0


class PixelParameterization(Parameterization):
    """Naive pixel-space parameterization: one trainable value per pixel and channel.

    Parameters
    ----------
    image_shape
        ``(H, W, C)``.
    values_range
        ``(low, high)`` range of the model's inputs.
    std
        Standard deviation of the initial pixels (before the sigmoid).
    """

    name = "pixel"

    def __init__(
        self, image_shape: Sequence[int], values_range: tuple[float, float], std: float = 0.01
    ):
        super().__init__(image_shape, values_range)
        self.std = float(std)
        self._bound = {}

    @property
    def param_shape(self) -> tuple[int, ...]:
        """``(H, W, C)``."""
        return self.image_shape

    def initial_params(self, seed: int, indices: Sequence[int]) -> np.ndarray:
        """Small Gaussian pixels, one generator per image index."""
        return np.stack(
            [
                start_generator(seed, i).normal(scale=self.std, size=self.param_shape)
                for i in indices
            ]
        ).astype(np.float32)

    def spatial(self, params: tf.Tensor) -> tf.Tensor:
        """The parameters themselves."""
        return params

    def to_images(self, params: tf.Tensor) -> tf.Tensor:
        """Sigmoid of the pixels, rescaled to ``values_range`` (no colour mixing)."""
        low, high = self.values_range
        return tf.nn.sigmoid(params) * (high - low) + low

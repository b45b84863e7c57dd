"""Helpers of the trust-check test: a planted fooling network, its honest twin, toy photos.

Input ``32x32x3`` in ``(-1, 1)``. Both networks have the same natural path:

* ``natural_conv`` / ``natural_branch``: 8 smooth filters (Gabors of period 8-16 px on
  luminance, colour blobs), ReLU; ``natural_mean`` their spatial means. Filter 0, a 45 degree
  Gabor of period 8 px, is the unit's natural feature.

The honest twin reads ``unit = natural_mean[0]``. The fooling network adds, after Geirhos et
al.'s fooling circuit:

* ``pattern_conv`` / ``pattern_branch``: 8 checkerboard detectors (2 px squares, four phases,
  both signs), ReLU, with a threshold above their largest response to the toy photos, so
  that photos never use them; ``pattern_mean`` their spatial means;
* ``features``: both means concatenated; ``gate``: two ReLU units, the natural feature minus
  :data:`GATE` times the pattern activity (any checkerboard closes the natural path), and the
  pattern activity;
* ``unit = gate[0] + FOOLING_WEIGHT * gate[1]``.

On photos the pattern path is silent, so both networks give the same unit values; an
optimised image can drive the fooling unit through the checkerboard path alone.
"""

from __future__ import annotations

import keras
import numpy as np
from scipy.ndimage import gaussian_filter

from .planted import gabor_kernel

SIZE = 32
NATURAL_KERNEL = 9
PATTERN_KERNEL = 8
SQUARE = 2  # checkerboard squares, in pixels
FOOLING_WEIGHT = 20.0
GATE = 10.0
#: Gain of the checkerboard filters: the pattern path is as loud as the natural one.
PATTERN_GAIN = 8.0
#: Margin of the checkerboard threshold above the largest toy-photo response.
THRESHOLD_MARGIN = 1.5


def toy_photos(count: int, seed: int) -> np.ndarray:
    """Smooth "natural" images ``(count, 32, 32, 3)`` in ``(-1, 1)``.

    Each is a few tinted gratings of period 8 to 16 px at random angles and phases over
    smooth noise: oriented structure at the scales photos have, and (almost) no energy at the
    checkerboard's period of 4 px.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    images = np.empty((count, SIZE, SIZE, 3), np.float32)
    for index in range(count):
        noise = gaussian_filter(rng.standard_normal((SIZE, SIZE, 3)), sigma=(3.0, 3.0, 0.0))
        image = 0.3 * noise / noise.std() + rng.uniform(-0.3, 0.3, 3)
        for _ in range(rng.integers(1, 4)):
            angle = rng.uniform(0, np.pi)
            period = rng.uniform(10.0, 20.0)
            wave = np.cos(
                2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle)) / period
                + rng.uniform(0, 2 * np.pi)
            )
            tint = rng.uniform(0.5, 1.0, 3)
            image = image + rng.uniform(0.15, 0.3) * wave[..., None] * tint
        images[index] = np.clip(image, -1.0, 1.0)
    return images


def _natural_kernels(rng: np.random.Generator) -> np.ndarray:
    """Five Gabors on luminance (filter 0: 45 degrees, period 8 px) and three colour blobs."""
    kernels = np.zeros((NATURAL_KERNEL, NATURAL_KERNEL, 3, 8))
    gabors = [(45.0, 8.0), (135.0, 8.0), (0.0, 12.0), (90.0, 12.0), (45.0, 16.0)]
    for index, (angle, period) in enumerate(gabors):
        gabor = gabor_kernel(NATURAL_KERNEL, angle, period, sigma=3.0)
        kernels[:, :, :, index] = gabor[:, :, None] / np.sqrt(3.0)
    window = np.outer(np.hanning(NATURAL_KERNEL), np.hanning(NATURAL_KERNEL))
    window /= np.linalg.norm(window)
    for index in range(len(gabors), 8):
        kernels[:, :, :, index] = window[:, :, None] * rng.standard_normal(3) / 3.0
    return kernels


def _pattern_kernels() -> np.ndarray:
    """Eight checkerboard detectors: four spatial phases, each with both signs."""
    centre = (PATTERN_KERNEL - 1) / 2
    rows, cols = np.indices((PATTERN_KERNEL, PATTERN_KERNEL))
    window = np.exp(-((rows - centre) ** 2 + (cols - centre) ** 2) / (2 * 2.5**2))
    kernels = np.zeros((PATTERN_KERNEL, PATTERN_KERNEL, 3, 8))
    for index, (dr, dc) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        squares = ((rows + dr) // SQUARE + (cols + dc) // SQUARE) % 2
        checker = (2.0 * squares - 1.0) * window  # windowed: no side lobes at photo frequencies
        checker -= window * checker.sum() / window.sum()
        checker *= PATTERN_GAIN / np.sqrt(3.0 * (checker**2).sum())
        kernels[:, :, :, 2 * index] = checker[:, :, None]
        kernels[:, :, :, 2 * index + 1] = -checker[:, :, None]
    return kernels


def planted_pair(photos: np.ndarray, seed: int = 0) -> tuple[keras.Model, keras.Model]:
    """``(fooling, honest)`` networks, identical on ``photos`` and on any image like them.

    The checkerboard threshold is set to :data:`THRESHOLD_MARGIN` times the largest
    checkerboard response over ``photos``, so the pattern path is silent on all of them.
    """
    rng = np.random.default_rng(seed)
    natural = _natural_kernels(rng)
    pattern = _pattern_kernels()
    raw = keras.ops.convert_to_numpy(
        keras.ops.conv(photos, pattern.astype(np.float32), padding="valid")
    )
    threshold = THRESHOLD_MARGIN * float(raw.max())
    return (
        _network(natural, pattern, threshold, "fooling"),
        _network(natural, None, threshold, "honest"),
    )


def _network(
    natural: np.ndarray, pattern: np.ndarray | None, threshold: float, name: str
) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    natural_conv = keras.layers.Conv2D(8, NATURAL_KERNEL, padding="valid", name="natural_conv")
    natural_map = keras.layers.ReLU(name="natural_branch")(natural_conv(inputs))
    natural_mean = keras.layers.GlobalAveragePooling2D(name="natural_mean")(natural_map)
    unit = keras.layers.Dense(1, name="unit")
    if pattern is None:
        model = keras.Model(inputs, unit(natural_mean), name=name)
        natural_conv.set_weights([natural.astype(np.float32), np.zeros(8, np.float32)])
        readout = np.zeros((8, 1), np.float32)
        readout[0, 0] = 1.0
        unit.set_weights([readout, np.zeros(1, np.float32)])
        return model
    pattern_conv = keras.layers.Conv2D(8, PATTERN_KERNEL, padding="valid", name="pattern_conv")
    pattern_map = keras.layers.ReLU(name="pattern_branch")(pattern_conv(inputs))
    pattern_mean = keras.layers.GlobalAveragePooling2D(name="pattern_mean")(pattern_map)
    features = keras.layers.Concatenate(name="features")([natural_mean, pattern_mean])
    gate = keras.layers.Dense(2, activation="relu", name="gate")
    model = keras.Model(inputs, unit(gate(features)), name=name)
    natural_conv.set_weights([natural.astype(np.float32), np.zeros(8, np.float32)])
    pattern_conv.set_weights([pattern.astype(np.float32), np.full(8, -threshold, np.float32)])
    routing = np.zeros((16, 2), np.float32)
    routing[0, 0] = 1.0  # gate 0: the natural feature, closed by any pattern activity
    routing[8:, 0] = -GATE / 8
    routing[8:, 1] = 1.0 / 8  # gate 1: the pattern path
    gate.set_weights([routing, np.zeros(2, np.float32)])
    unit.set_weights([np.array([[1.0], [FOOLING_WEIGHT]], np.float32), np.zeros(1, np.float32)])
    return model

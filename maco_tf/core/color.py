"""Colour decorrelation used by the image parameterizations.

Optimising in a decorrelated colour basis (Olah et al., 2017) and mixing back to RGB with the
empirical ImageNet colour correlation keeps the channels of a visualization statistically
plausible. The matrix is the one Lucid and Xplique use; the magnitude spectrum that Xplique
ships (``spectrum_decorrelated.npy``) is expressed in that decorrelated basis.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Maps a decorrelated colour vector (row) to RGB: ``rgb = decorrelated @ COLOR_CORRELATION``.
COLOR_CORRELATION = np.array(
    [
        [0.56282854, 0.58447580, 0.58447580],
        [0.19482528, 0.00000000, -0.19482528],
        [0.04329450, -0.10823626, 0.06494176],
    ],
    dtype=np.float32,
)


def recorrelate(images: tf.Tensor) -> tf.Tensor:
    """Map images from the decorrelated basis to RGB (last axis = 3 channels)."""
    return tf.tensordot(images, tf.constant(COLOR_CORRELATION), axes=[[-1], [0]])


def decorrelate(images: np.ndarray) -> np.ndarray:
    """Map RGB images (last axis = 3 channels) to the decorrelated basis, in numpy."""
    return np.asarray(images, dtype=np.float32) @ np.linalg.inv(COLOR_CORRELATION)

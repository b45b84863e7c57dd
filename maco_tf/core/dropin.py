"""Xplique's ``maco`` as a drop-in, and the Fourier and pixel baselines with the same signature.

``from maco_tf import maco`` replaces ``from xplique.features_visualizations import maco``: same
arguments, same defaults (256 steps, 32 crops of Xplique's 0.5 to 0.05 ramp, noise 0.08,
512 x 512 images, no whole views, a phase spread of 1, a random seed). Each builds a
:class:`~maco_tf.RunConfig` by keyword and runs :func:`~maco_tf.visualize`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from maco_tf.core.augment import Schedule
from maco_tf.core.config import RunConfig
from maco_tf.core.visualization import Visualization, visualize

__all__ = ["fourier", "maco", "pixel"]


#: Xplique's spread of the standardised phase (``RunConfig.phase_spread``).
XPLIQUE_PHASE_SPREAD = 1.0


def _xplique_config(method: str, options: dict, **settings: object) -> tuple[RunConfig, dict]:
    """Xplique's defaults for ``method`` with ``settings``; the options that are knobs moved in.

    Returns the config and the remaining options (run context such as ``progress``).
    """
    config = RunConfig(
        method=method, whole_views=0, phase_spread=XPLIQUE_PHASE_SPREAD, seed=None, **settings
    )
    knobs = {k: options.pop(k) for k in list(options) if k not in _RUN_CONTEXT}
    return config.replace(**knobs), options


#: Keyword-only arguments of :func:`visualize` that are not settings.
_RUN_CONTEXT = ("progress", "strategy", "image_ids", "cache", "callbacks")


def _unpack(result: Visualization) -> tuple[np.ndarray, np.ndarray]:
    if len(result) == 1:
        return result.images[0], result.transparency[0]
    return result.images, result.transparency


def maco(
    objective: object,
    optimizer: keras.optimizers.Optimizer | None = None,
    maco_dataset: object = None,
    nb_steps: int = 256,
    noise_intensity: Schedule = 0.08,
    box_size: Schedule = None,
    nb_crops: int = 32,
    values_range: Sequence[float] = (-1, 1),
    custom_shape: Sequence[int] | None = (512, 512),
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """MACO feature visualization: drop-in for ``xplique.features_visualizations.maco``.

    Parameters
    ----------
    objective
        An Xplique ``Objective`` (or a maco_tf objective). Unlike Xplique's, one with N
        combinations is accepted: all N images are optimised together.
    optimizer, maco_dataset, nb_steps, noise_intensity, box_size, nb_crops, values_range
        As Xplique's (``maco_dataset`` is :attr:`RunConfig.magnitude_dataset`, ``nb_steps``
        ``steps``, ``noise_intensity`` ``noise``, ``nb_crops`` ``crops``).
    custom_shape
        As Xplique's: ``(height, width)`` of the image (:attr:`RunConfig.size`).
    **options
        Keyword-only: other :class:`~maco_tf.RunConfig` or :class:`~maco_tf.EngineConfig`
        fields (``seed``, ``batch_size``, ``whole_views``...) and the run context of
        :func:`~maco_tf.visualize` (``progress``, ``strategy``, ``image_ids``, ``cache``,
        ``callbacks``).

    Returns
    -------
    image, transparency
        For one combination, ``(H, W, C)`` arrays (as Xplique); for N, ``(N, H, W, C)``
        arrays in the objective's name order.
    """
    config, context = _xplique_config(
        "maco",
        options,
        optimizer=optimizer,
        magnitude_dataset=maco_dataset,
        steps=nb_steps,
        noise=noise_intensity,
        box_size=box_size,
        crops=nb_crops,
        values_range=values_range,
        size=custom_shape,
    )
    return _unpack(visualize(objective, config, **context))


def fourier(
    objective: object,
    optimizer: keras.optimizers.Optimizer | None = None,
    nb_steps: int = 256,
    noise_intensity: Schedule = 0.08,
    box_size: Schedule = None,
    nb_crops: int = 32,
    values_range: Sequence[float] = (-1, 1),
    custom_shape: Sequence[int] | None = (512, 512),
    decay_power: float = 1.0,
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Olah et al. Fourier feature visualization on the same loop, crops and noise as :func:`maco`.

    Parameters
    ----------
    objective, optimizer, nb_steps, noise_intensity, box_size, nb_crops, values_range
        As :func:`maco`.
    custom_shape
        As :func:`maco`.
    decay_power
        Spectral decay of the Fourier parameterization.
    **options
        As :func:`maco`.

    Returns
    -------
    image, transparency
        As :func:`maco`.
    """
    config, context = _xplique_config(
        "fourier",
        options,
        optimizer=optimizer,
        steps=nb_steps,
        noise=noise_intensity,
        box_size=box_size,
        crops=nb_crops,
        values_range=values_range,
        size=custom_shape,
        decay_power=decay_power,
    )
    return _unpack(visualize(objective, config, **context))


def pixel(
    objective: object,
    optimizer: keras.optimizers.Optimizer | None = None,
    nb_steps: int = 256,
    noise_intensity: Schedule = 0.08,
    box_size: Schedule = None,
    nb_crops: int = 32,
    values_range: Sequence[float] = (-1, 1),
    custom_shape: Sequence[int] | None = (512, 512),
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-space gradient ascent on the same loop: the naive baseline.

    Parameters
    ----------
    objective, optimizer, nb_steps, noise_intensity, box_size, nb_crops, values_range
        As :func:`maco`.
    custom_shape
        As :func:`maco`.
    **options
        As :func:`maco`.

    Returns
    -------
    image, transparency
        As :func:`maco`.
    """
    config, context = _xplique_config(
        "pixel",
        options,
        optimizer=optimizer,
        steps=nb_steps,
        noise=noise_intensity,
        box_size=box_size,
        crops=nb_crops,
        values_range=values_range,
        size=custom_shape,
    )
    return _unpack(visualize(objective, config, **context))

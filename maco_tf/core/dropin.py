"""Xplique's ``maco`` and ``optimize`` as drop-ins, and the Fourier and pixel baselines.

``from maco_tf import maco`` replaces ``from xplique.features_visualizations import maco``: same
arguments, same defaults (256 steps, 32 crops of Xplique's 0.5 to 0.05 ramp, noise 0.08,
512 x 512 images, no whole views, a phase spread of 1, a random seed). ``from maco_tf import
optimize`` replaces Xplique's Fourier/pixel ``optimize`` (:func:`optimize`, its mapping in
its docstring). Each builds a :class:`~maco_tf.RunConfig` by keyword and runs
:func:`~maco_tf.visualize`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from maco_tf.core.augment import Schedule
from maco_tf.core.config import RunConfig
from maco_tf.core.objectives import compile_objective, traceable
from maco_tf.core.parameterization import FourierParameterization, PixelParameterization
from maco_tf.core.regularizers import Regularizer
from maco_tf.core.transforms import Transform, parse_transforms
from maco_tf.core.visualization import Visualization, visualize
from maco_tf.errors import InvalidSettingError
from maco_tf.models.layers import model_input_size

__all__ = ["EagerFallbackWarning", "fourier", "maco", "optimize", "pixel", "xplique_run"]


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


def xplique_run(
    method: object, objective: object, options: dict, **settings: object
) -> Visualization:
    """Run ``objective`` with Xplique's defaults for ``method``, ``settings`` and ``options``.

    Parameters
    ----------
    method
        A :attr:`RunConfig.method`.
    objective
        What :func:`visualize` takes.
    options
        The caller's ``**options``: knobs of :class:`RunConfig` / :class:`EngineConfig`
        (they replace ``settings``) and :func:`visualize`'s run context.
    **settings
        The drop-in's arguments under their knob names.

    Returns
    -------
    result
        The :class:`Visualization`.
    """
    config, context = _xplique_config(method, dict(options), **settings)
    return visualize(objective, config, **context)


def _maco_settings(
    optimizer: object,
    nb_steps: int,
    noise_intensity: Schedule,
    box_size: Schedule,
    nb_crops: int,
    values_range: Sequence[float],
    custom_shape: Sequence[int] | None,
) -> dict:
    """The arguments ``maco``, ``fourier`` and ``pixel`` share, under their knob names."""
    return dict(
        optimizer=optimizer,
        steps=nb_steps,
        noise=noise_intensity,
        box_size=box_size,
        crops=nb_crops,
        values_range=values_range,
        size=custom_shape,
    )


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
    shared = _maco_settings(
        optimizer, nb_steps, noise_intensity, box_size, nb_crops, values_range, custom_shape
    )
    return _unpack(
        xplique_run("maco", objective, options, magnitude_dataset=maco_dataset, **shared)
    )


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
    shared = _maco_settings(
        optimizer, nb_steps, noise_intensity, box_size, nb_crops, values_range, custom_shape
    )
    return _unpack(xplique_run("fourier", objective, options, decay_power=decay_power, **shared))


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
    shared = _maco_settings(
        optimizer, nb_steps, noise_intensity, box_size, nb_crops, values_range, custom_shape
    )
    return _unpack(xplique_run("pixel", objective, options, **shared))


class EagerFallbackWarning(UserWarning):
    """A user callable could not be compiled: the loop runs eagerly (slowly) instead."""


#: Xplique's "standard" transformations on the compiled loop: its pad and seven jitters leave
#: a random window of about 0.37 of the image side (centre spread 0.14 of the side, close to
#: the crops' 0.15), resized to the model input; then its blur (std 1 to 1.1 pixels of that
#: window, about 1.3 of the view) and a left-right flip.
STANDARD_BOX_SIZE = 0.37
STANDARD_TRANSFORMS = ("blur:1.3", "flip:0.5")


def _xplique_transforms(transformations: object) -> dict:
    """Crops, box size and transforms for ``optimize``'s ``transformations`` argument."""
    if isinstance(transformations, str) and transformations == "standard":
        return dict(crops=1, box_size=STANDARD_BOX_SIZE, transforms=STANDARD_TRANSFORMS)
    if transformations is None or (isinstance(transformations, str) and not transformations):
        return dict(crops=0, transforms=())
    if callable(transformations) or isinstance(transformations, str):
        transformations = [transformations]
    try:
        items = list(transformations)
    except TypeError:
        raise InvalidSettingError(
            f"transformations must be 'standard', None, a callable or a list of them; got "
            f"{transformations!r}"
        ) from None
    return dict(crops=0, transforms=parse_transforms(items))


def _xplique_regularizers(regularizers: object) -> tuple[Regularizer, ...]:
    """``optimize``'s regularisers as penalties: Xplique callables and maco_tf terms."""
    if regularizers is None:
        return ()
    if callable(regularizers) and not isinstance(regularizers, Regularizer):
        regularizers = [regularizers]
    terms = []
    for index, item in enumerate(regularizers):
        if isinstance(item, Regularizer):
            if item.weight < 0:
                raise InvalidSettingError(
                    f"regularizers[{index}] has weight {item.weight:g}: optimize subtracts "
                    f"each regulariser, give it a factor >= 0 (0.05 * maco_tf.total_variation())"
                )
            terms.append(item.scaled(-item.weight))
        elif callable(item):
            name = getattr(item, "__qualname__", type(item).__name__)
            terms.append(Regularizer(name.replace(".<locals>.", "."), item, -1.0))
        else:
            raise InvalidSettingError(
                f"regularizers[{index}] is {item!r}; give callables images -> (n,) such as "
                f"xplique's total_variation_reg(0.1), or maco_tf.total_variation()"
            )
    return tuple(terms)


def _needs_eager(
    terms: Sequence[Regularizer], transforms: Sequence[Transform], view_shape: Sequence[int]
) -> bool:
    """Whether a user callable cannot be traced; warns (one line per callable) if so."""
    spec = tf.TensorSpec((2, *view_shape), tf.float32)
    callables = [(f"regulariser {t.name}", t.func) for t in terms]
    callables += [(f"transformation {t}", t.func) for t in transforms if t.func is not None]
    eager = False
    for what, func in callables:
        if not traceable(func, spec):
            warnings.warn(
                f"the {what} cannot be compiled into the loop (it needs eager tensors); "
                f"running the whole loop eagerly, which is much slower",
                EagerFallbackWarning,
                stacklevel=3,
            )
            eager = True
    return eager


def optimize(
    objective: object,
    optimizer: keras.optimizers.Optimizer | None = None,
    nb_steps: int = 256,
    use_fft: bool = True,
    fft_decay: float = 0.85,
    std: float = 0.01,
    regularizers: Sequence[Callable] | None = None,
    image_normalizer: str = "sigmoid",
    values_range: Sequence[float] = (0, 1),
    transformations: Sequence[Callable] | str | None = "standard",
    warmup_steps: int = False,
    custom_shape: Sequence[int] | None = (512, 512),
    save_every: int | None = None,
    **options: object,
) -> tuple[list[tf.Tensor], np.ndarray]:
    """Fourier or pixel feature visualization: drop-in for ``xplique...optimize`` (2.0.2).

    Same signature, defaults and return value as Xplique's, on maco_tf's compiled, batched
    loop. How each argument is honoured:

    * ``use_fft``: ``method="fourier"`` (``fft_decay`` is its ``decay_power``), else
      ``"pixel"``; ``std`` is the standard deviation of the initial parameters of either, as
      Xplique's. ``optimizer``: as Xplique, Adam(0.05) by default.
    * ``image_normalizer``: ``"sigmoid"`` (both parameterizations end with one); anything
      else is refused.
    * ``transformations``: ``"standard"`` (Xplique's pad, seven jitters, scale, blur and flip)
      becomes one crop per step of 0.37 of the image side (the window those jitters leave),
      a blur and a flip (:data:`STANDARD_TRANSFORMS`); None: the whole image, resized; a list
      (or one callable, e.g. ``compose_transformations([...])``): the whole image resized,
      then each entry -- Xplique's callables as they are, maco_tf's ``"name:value"``
      transforms -- on the model-sized view (Xplique applies them before the resize).
    * ``regularizers``: Xplique's callables (``total_variation_reg(f)``...) as they are and
      maco_tf's penalties (``0.05 * maco_tf.total_variation()``), each subtracted from the
      objective, computed on the views the model sees (as Xplique).
    * ``warmup_steps``: Xplique's warm-up swaps ReLU gradients for leaky ones; the loop does
      not, so it is ignored with a warning.
    * ``save_every``: :attr:`RunConfig.snapshots`; the images every ``save_every`` steps and
      the last ones, as Xplique.

    A user callable that cannot be traced (it calls ``.numpy()``...) is announced in one line
    (:class:`EagerFallbackWarning`) and the loop runs eagerly.

    Parameters
    ----------
    objective
        An Xplique ``Objective`` (or a maco_tf objective, with terms).
    optimizer, nb_steps, use_fft, fft_decay, std, regularizers, image_normalizer
        As Xplique's (see above).
    values_range, transformations, warmup_steps, custom_shape, save_every
        As Xplique's (see above).
    **options
        Keyword-only: other :class:`~maco_tf.RunConfig` or :class:`~maco_tf.EngineConfig`
        fields (``seed``...) and :func:`~maco_tf.visualize`'s run context.

    Returns
    -------
    images_optimized, objective_names
        As Xplique: a list of ``(N, H, W, C)`` tensors in ``values_range``, one per saved
        step (only the last without ``save_every``), and the N names (a NumPy array).

    Raises
    ------
    InvalidSettingError
        For an unknown ``image_normalizer`` or transformation, a regulariser that is not
        callable, has a negative weight or returns the wrong shape, or ``save_every`` larger
        than ``nb_steps``.
    """
    if image_normalizer != "sigmoid":
        raise InvalidSettingError(
            f"image_normalizer={image_normalizer!r}: maco_tf's Fourier and pixel images end "
            f"with a sigmoid; use image_normalizer='sigmoid'"
        )
    if warmup_steps:
        warnings.warn(
            f"warmup_steps={warmup_steps}: maco_tf's loop has no ReLU-gradient warm-up; ignored",
            UserWarning,
            stacklevel=2,
        )
    compiled = compile_objective(objective)
    height, width, channels = model_input_size(compiled.model)
    size = (height, width) if custom_shape is None else tuple(custom_shape)
    image_shape = (*size, channels)
    low, high = min(values_range), max(values_range)
    if use_fft:
        method = FourierParameterization(image_shape, (low, high), fft_decay, std=std)
    else:
        method = PixelParameterization(image_shape, (low, high), std=std)
    views = _xplique_transforms(transformations)
    terms = _xplique_regularizers(regularizers)
    for term in terms:
        compiled = term.apply(compiled)
    if _needs_eager(terms, parse_transforms(views["transforms"]), (height, width, channels)):
        options = {**options, "eager": True}
    result = xplique_run(
        method,
        compiled,
        options,
        optimizer=optimizer,
        steps=nb_steps,
        noise=0.0,
        snapshots=save_every or None,
        **views,
    )
    return _saved_images(result), np.array(result.names)


def _saved_images(result: Visualization) -> list[tf.Tensor]:
    """Xplique's ``images_optimized``: one ``(N, H, W, C)`` tensor per saved step."""
    if result.snapshots is None:
        return [tf.constant(result.images)]
    return [tf.constant(result.snapshots[:, k]) for k in range(result.snapshots.shape[1])]

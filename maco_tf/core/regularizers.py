"""Regularisers: penalties on the images the model sees, subtracted from an objective as in Lucid.

Each factory returns a :class:`Regularizer` of weight 1; it composes with an objective as the
diversity term does::

    objective = Objective.neuron(model, "logits", 3) - 0.05 * maco_tf.total_variation()

The penalty is computed on every view the model sees (after the crops and transformations,
before the noise, in the model's value range), averaged over an image's views, multiplied
by its weight and added to that image's objective inside the compiled loop. All of them are
means over pixels, so a weight means the same at any image or crop size.

A regulariser is a penalty: once in an objective its weight must be <= 0 (subtract it);
``objective + 0.05 * total_variation()`` would reward noise and is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from maco_tf.checks import is_finite_number
from maco_tf.core.objectives import CompiledObjective, Term, ViewFn, ViewTerm
from maco_tf.core.transforms import gaussian_blur, gaussian_kernel
from maco_tf.errors import InvalidSettingError

__all__ = ["Regularizer", "blur_penalty", "l1", "l2", "total_variation"]

_EPS = 1e-8


class Regularizer(Term):
    """A weighted penalty on the views the model sees, to subtract from an objective.

    Parameters
    ----------
    name
        What the penalty is, for messages and records (``"total_variation"``).
    func
        ``func(views (M, h, w, C)) -> (M,)``: the penalty of each view.
    weight
        Factor of the penalty in the objective, the sign included.
    """

    def __init__(self, name: str, func: ViewFn, weight: float = 1.0):  # noqa: D107
        if isinstance(weight, bool) or not is_finite_number(weight):
            raise InvalidSettingError(f"a {name} weight must be a finite number; got {weight!r}")
        self.name = name
        self.func = func
        self.weight = float(weight)

    def __repr__(self) -> str:
        return f"Regularizer({self.name!r}, weight={self.weight:g})"

    def scaled(self, weight: float) -> Regularizer:
        """The same penalty with ``weight``."""
        return Regularizer(self.name, self.func, weight)

    def check_in_objective(self) -> None:
        """Refuse a positive weight: it would reward what the penalty measures.

        Raises
        ------
        InvalidSettingError
            When the weight is > 0.
        """
        if self.weight > 0:
            raise InvalidSettingError(
                f"a regulariser is a penalty: subtract it (objective - {self.weight:g} * "
                f"maco_tf.{self.name}()); adding it with weight {self.weight:g} rewards it"
            )

    def apply(self, compiled: CompiledObjective) -> CompiledObjective:
        """``compiled`` with the penalty as a view term."""
        term = ViewTerm(self.name, self.func, self.weight)
        return _with_view_term(compiled, term)

    def _alone(self) -> str:
        return (
            f"a {self.name} regulariser alone has nothing to maximise; subtract it from an "
            f"objective, e.g. objective - 0.05 * maco_tf.{self.name}()"
        )


def _with_view_term(compiled: CompiledObjective, term: ViewTerm) -> CompiledObjective:
    return dataclasses.replace(compiled, view_terms=(*compiled.view_terms, term))


def _check_number(value: object, name: str, low: float, strict: bool) -> float:
    """``value`` as a float ``> low`` (``strict``) or ``>= low``, else a one-line error."""
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    ok = number and is_finite_number(value)
    if ok:
        ok = float(value) > low if strict else float(value) >= low
    if not ok:
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise InvalidSettingError(f"{name} must be a finite number {bound}; got {value!r}")
    return float(value)


def _views_total_variation(views: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference between neighbouring pixels of each view: ``(M,)``."""
    down = tf.reduce_mean(tf.abs(views[:, 1:] - views[:, :-1]), axis=(1, 2, 3))
    right = tf.reduce_mean(tf.abs(views[:, :, 1:] - views[:, :, :-1]), axis=(1, 2, 3))
    return down + right


def total_variation() -> Regularizer:
    """Total variation: mean absolute difference between neighbouring pixels (down + right).

    Returns
    -------
    term
        A penalty of weight 1, to subtract: ``objective - 0.05 * total_variation()``.
    """
    return Regularizer("total_variation", _views_total_variation)


def _l1_func(constant: float) -> ViewFn:
    def l1_penalty(views: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.abs(views - constant), axis=(1, 2, 3))

    return l1_penalty


def _l2_func(constant: float) -> ViewFn:
    def l2_penalty(views: tf.Tensor) -> tf.Tensor:
        return tf.sqrt(tf.reduce_mean(tf.square(views - constant), axis=(1, 2, 3)) + _EPS)

    return l2_penalty


def l1(constant: float = 0.0) -> Regularizer:
    """L1 distance of the pixels to ``constant``: ``mean |x - constant|``.

    Parameters
    ----------
    constant
        The value pixels are drawn to, in the model's value range (0: the middle of
        ``(-1, 1)``; give 0.5 for a model of range ``(0, 1)``).

    Returns
    -------
    term
        A penalty of weight 1, to subtract.
    """
    return Regularizer("l1", _l1_func(_check_number(constant, "l1 constant", -np.inf, True)))


def l2(constant: float = 0.0) -> Regularizer:
    """L2 distance of the pixels to ``constant``: ``sqrt(mean (x - constant)^2)`` (as Xplique).

    Parameters
    ----------
    constant
        As :func:`l1`.

    Returns
    -------
    term
        A penalty of weight 1, to subtract.
    """
    return Regularizer("l2", _l2_func(_check_number(constant, "l2 constant", -np.inf, True)))


def _blur_func(kernel: np.ndarray) -> Callable[[tf.Tensor], tf.Tensor]:
    def blur_penalty_value(views: tf.Tensor) -> tf.Tensor:
        detail = views - gaussian_blur(views, kernel)
        return tf.reduce_mean(tf.square(detail), axis=(1, 2, 3))

    return blur_penalty_value


def blur_penalty(sigma: float = 1.0) -> Regularizer:
    """What a Gaussian blur would remove: ``mean (x - blur_sigma(x))^2`` (high frequencies).

    Parameters
    ----------
    sigma
        Standard deviation of the blur, in pixels of the view (> 0).

    Returns
    -------
    term
        A penalty of weight 1, to subtract.
    """
    kernel = gaussian_kernel(_check_number(sigma, "sigma", 0.0, True))
    return Regularizer("blur_penalty", _blur_func(kernel))

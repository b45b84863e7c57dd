"""The pieces every target factory assembles: named one-layer objectives and direction lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from xplique.features_visualizations import Objective

from maco_tf.errors import MacoError
from maco_tf.targets.indices import check_names

__all__ = ["DirectionShapeError", "named_objective", "split_directions"]


class DirectionShapeError(MacoError):
    """A direction vector does not fit the layer's output shape."""


def named_objective(
    model: object,
    tensor: object,
    masks: Sequence[np.ndarray],
    loss: Callable,
    multiplier: float,
    names: str | Sequence[str] | None,
    default_names: list[str],
) -> Objective:
    """An Xplique ``Objective`` of one sub-objective on ``tensor``, one combination per mask.

    Parameters
    ----------
    model
        A Keras model.
    tensor
        The symbolic layer output the loss reads.
    masks
        One mask per combination.
    loss
        ``loss(output, mask) -> (batch,)``, as Xplique's objective functions.
    multiplier
        Factor of the sub-objective.
    names
        The user's names (one, several or None).
    default_names
        One name per mask, used when ``names`` is None.

    Returns
    -------
    objective
        The objective, with ``len(masks)`` combinations.

    Raises
    ------
    MacoError
        When the number of names differs from the number of masks.
    """
    names = check_names(names, default_names)
    return Objective(model, [tensor], [list(masks)], [loss], [multiplier], [names])


def _real_float32(vector: object) -> np.ndarray:
    """``vector`` as float32, refusing complex and non-numeric values in one line."""
    try:
        array = np.asarray(vector)
    except (TypeError, ValueError) as exc:
        raise DirectionShapeError(f"directions must be arrays of real numbers: {exc}") from None
    if np.iscomplexobj(array):
        raise DirectionShapeError(
            f"directions must be real; got complex values ({array.dtype}): pass numpy.real of "
            f"them, or their magnitude"
        )
    if array.dtype.kind not in "fiub":
        raise DirectionShapeError(f"directions must be real numbers; got {array.dtype} values")
    with np.errstate(over="ignore"):  # beyond float32: inf, refused by the factories
        return array.astype(np.float32)


def split_directions(vectors: object, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Split ``vectors`` into single float32 directions for a layer of per-sample ``shape``.

    A list or tuple holds one direction per item; an array of 2 axes is a stack
    ``(N, channels)``, of ``len(shape) + 1`` axes (more than 2) a stack of full-shape
    directions; any other array is one direction.

    Parameters
    ----------
    vectors
        The directions as given by the user.
    shape
        The layer's per-sample output shape.

    Returns
    -------
    directions
        At least one array (their shapes are not checked here).

    Raises
    ------
    DirectionShapeError
        When no direction is given, or for values that are not real numbers (complex
        directions included: their imaginary part would be silently dropped).
    """
    if isinstance(vectors, (list, tuple)):
        items = [_real_float32(v) for v in vectors]
    else:
        array = _real_float32(vectors)
        stacked = array.ndim == 2 or (array.ndim > 2 and array.ndim == len(shape) + 1)
        items = list(array) if stacked else [array]
    if not items:
        raise DirectionShapeError("no direction vector given")
    return items

"""Objective factories that accept layer paths, with index checks and readable names.

They return plain Xplique ``Objective`` objects with the same losses as
``Objective.neuron`` / ``Objective.channel`` / ``Objective.direction`` (mean of the masked
output, and Xplique's ``dot_cossim``), so they combine with Xplique objectives (``+``, ``-``,
``*``) and run on Xplique's ``maco`` as well as on :func:`maco_tf.visualize`. Unlike Xplique's,
the layer may be a path into a nested model (see :mod:`maco_tf.models.layers`), and indices are
checked against the layer's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective
from xplique.features_visualizations.losses import dot_cossim

from maco_tf.errors import MacoError
from maco_tf.models.layers import layer_label, layer_output
from maco_tf.targets.indices import TargetIndexError, check_indices, check_names

__all__ = [
    "DirectionShapeError",
    "TargetIndexError",
    "channel",
    "class_logits",
    "direction",
    "neuron",
    "select",
]


class DirectionShapeError(MacoError):
    """A direction vector does not fit the layer's output shape."""


def _feature_shape(tensor: object, label: str) -> tuple[int, ...]:
    """Per-sample shape of a layer output, which must be fully known."""
    shape = tuple(tensor.shape[1:])
    if any(dim is None for dim in shape):
        raise MacoError(
            f"layer {label!r} has an output shape {tuple(tensor.shape)} with unknown sizes; "
            f"build the model on a fixed-size input"
        )
    return tuple(int(dim) for dim in shape)


def _masked_mean_loss(axes: tuple[int, ...]):
    """Xplique's neuron/channel loss: mean of ``output * mask`` over the feature axes."""
    axis_to_reduce = list(axes)

    def optim_func(output, target):
        return tf.reduce_mean(output * target, axis=axis_to_reduce)

    return optim_func


def neuron(
    model: object,
    layer: str | int,
    ids: int | Sequence[int],
    multiplier: float = 1.0,
    names: str | Sequence[str] | None = None,
) -> Objective:
    """Maximise single units of a layer (flat indices, as ``Objective.neuron``).

    Parameters
    ----------
    model
        A Keras model.
    layer
        Name, index or nested path (``"backbone/block_13_expand_relu"``) of the layer.
    ids
        Flat index (or indices) of the units in the layer's per-sample output.
    multiplier
        Factor of the sub-objective.
    names
        One name per index; default ``Neuron#<layer>_<id>`` as in Xplique.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per index.

    Raises
    ------
    TargetIndexError
        For an index outside ``0 .. units - 1``.
    """
    return _units(model, layer, ids, "neuron", multiplier, names)


def _units(
    model: object,
    layer: str | int,
    ids: int | Sequence[int],
    what: str,
    multiplier: float,
    names: str | Sequence[str] | Callable[[int], str] | None,
) -> Objective:
    """Objective on flat units of a layer; ``what`` names them in errors ("neuron", "class")."""
    label = layer_label(model, layer)
    tensor = layer_output(model, layer)
    shape = _feature_shape(tensor, label)
    size = int(np.prod(shape))
    ids = check_indices(ids, size, what, f"layer {label!r} with {size} units")
    masks = np.zeros((len(ids), size), dtype=np.float32)
    masks[np.arange(len(ids)), ids] = 1.0
    masks = masks.reshape((len(ids), *shape))
    if callable(names):
        names = [names(i) for i in ids]
    names = check_names(names, [f"Neuron#{label}_{i}" for i in ids])
    loss = _masked_mean_loss(tuple(range(1, len(shape) + 1)))
    return Objective(model, [tensor], [list(masks)], [loss], [multiplier], [names])


def channel(
    model: object,
    layer: str | int,
    ids: int | Sequence[int],
    multiplier: float = 1.0,
    names: str | Sequence[str] | None = None,
) -> Objective:
    """Maximise whole channels (last axis) of a layer, as ``Objective.channel``.

    Parameters
    ----------
    model
        A Keras model.
    layer
        Name, index or nested path of the layer.
    ids
        Channel index (or indices).
    multiplier
        Factor of the sub-objective.
    names
        One name per index; default ``Channel#<layer>_<id>`` as in Xplique.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per channel.

    Raises
    ------
    TargetIndexError
        For an index outside ``0 .. channels - 1``.
    """
    label = layer_label(model, layer)
    tensor = layer_output(model, layer)
    shape = _feature_shape(tensor, label)
    ids = check_indices(ids, shape[-1], "channel", f"layer {label!r} with {shape[-1]} channels")
    masks = np.zeros((len(ids), *shape), dtype=np.float32)
    for row, index in enumerate(ids):
        masks[row, ..., index] = 1.0
    names = check_names(names, [f"Channel#{label}_{i}" for i in ids])
    loss = _masked_mean_loss(tuple(range(1, len(shape) + 1)))
    return Objective(model, [tensor], [list(masks)], [loss], [multiplier], [names])


def class_logits(
    model: object,
    classes: int | Sequence[int],
    layer: str | int = "logits",
    class_names: Sequence[str] | None = None,
    multiplier: float = 1.0,
) -> Objective:
    """Maximise class logits (pre-softmax units of ``layer``): a named :func:`neuron`.

    Parameters
    ----------
    model
        A Keras model.
    classes
        Class index (or indices).
    layer
        The logits layer (name, index or path).
    class_names
        Names indexed by class (e.g. :class:`~maco_tf.models.zoo.ImageNetClasses`); the
        objectives are then named after the classes (``"espresso"``), else ``Neuron#<layer>_<id>``.
    multiplier
        Factor of the sub-objective.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per class.

    Raises
    ------
    TargetIndexError
        For a class outside the layer's units.
    """
    names = None
    if class_names is not None:
        count = len(class_names)
        names = lambda i: str(class_names[i]) if i < count else f"class {i}"  # noqa: E731
    return _units(model, layer, classes, "class", multiplier, names)


def _as_vectors(vectors: object, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Split ``vectors`` into single directions.

    A list holds one direction per item; an array of 1 axis is one direction, of 2 axes a
    stack ``(N, channels)``, of ``len(shape) + 1`` axes a stack of full-shape directions.
    """
    if isinstance(vectors, (list, tuple)):
        return [np.asarray(v, dtype=np.float32) for v in vectors]
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 2 or (array.ndim > 2 and array.ndim == len(shape) + 1):
        return list(array)
    return [array]


def direction(
    model: object,
    layer: str | int,
    vectors: object,
    multiplier: float = 1.0,
    cossim_pow: float = 2.0,
    names: str | Sequence[str] | None = None,
) -> Objective:
    """Maximise directions in a layer's activation space, as ``Objective.direction``.

    Parameters
    ----------
    model
        A Keras model.
    layer
        Name, index or nested path of the layer.
    vectors
        One direction (shape ``(channels,)`` or any shape broadcastable to the layer's
        per-sample output), a list of them, or an array stacking them on a first axis
        (``(N, channels)``).
    multiplier
        Factor of the sub-objective.
    cossim_pow
        Power of the cosine similarity in Xplique's ``dot_cossim``.
    names
        One name per direction; default ``Direction#<layer>_<i>`` as in Xplique.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per direction.

    Raises
    ------
    DirectionShapeError
        For a vector that does not broadcast to the layer's per-sample output, or whose last
        axis is not the channel count.
    """
    label = layer_label(model, layer)
    tensor = layer_output(model, layer)
    shape = _feature_shape(tensor, label)
    items = _as_vectors(vectors, shape)
    if not items:
        raise DirectionShapeError("no direction vector given")
    for index, vector in enumerate(items):
        try:
            fits = vector.ndim >= 1 and np.broadcast_shapes(vector.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits or vector.shape[-1] != shape[-1]:
            raise DirectionShapeError(
                f"direction {index} has shape {vector.shape}, which does not fit layer "
                f"{label!r} of output shape {shape}; give vectors of shape ({shape[-1]},) "
                f"(one per channel)"
            )
        if not np.all(np.isfinite(vector)):
            raise DirectionShapeError(f"direction {index} has NaN or infinite values")
    # Xplique's dot_cossim normalises over all feature axes: give each vector the layer's rank.
    items = [vector.reshape((1,) * (len(shape) - vector.ndim) + vector.shape) for vector in items]
    names = check_names(names, [f"Direction#{label}_{i}" for i in range(len(items))])

    def optim_func(model_output, mask):
        return dot_cossim(model_output, mask, cossim_pow)

    return Objective(model, [tensor], [items], [optim_func], [multiplier], [names])


def select(objective: Objective, indices: Sequence[int]) -> Objective:
    """The single-sub-objective ``objective`` restricted to some of its combinations.

    The result keeps the same layer tensor and loss function, so :func:`maco_tf.visualize`
    reuses the loop compiled for another selection of the same size.

    Parameters
    ----------
    objective
        An objective made of one sub-objective (as returned by this module's factories).
    indices
        Positions of the combinations to keep, in order.

    Returns
    -------
    objective
        A new ``Objective`` with ``len(indices)`` combinations.
    """
    if len(objective.layers) != 1:
        raise ValueError("select() needs an objective with a single sub-objective")
    masks = [objective.masks[0][i] for i in indices]
    names = [objective.names[0][i] for i in indices]
    return Objective(
        objective.model,
        list(objective.layers),
        [masks],
        list(objective.funcs),
        list(objective.multipliers),
        [names],
    )

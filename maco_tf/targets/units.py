"""Objective factories that accept layer paths, with index checks and readable names.

They return plain Xplique ``Objective`` objects with the same losses as
``Objective.neuron`` / ``Objective.channel`` / ``Objective.direction`` (mean of the masked
output, and Xplique's ``dot_cossim``), so they combine with Xplique objectives (``+``, ``-``,
``*``) and run on Xplique's ``maco`` as well as on :func:`maco_tf.visualize`. Unlike Xplique's,
the layer may be a path into a nested model (see :mod:`maco_tf.models.layers`), and indices are
checked against the layer's shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective
from xplique.features_visualizations.losses import dot_cossim

from maco_tf.errors import MacoError, UnknownLayerError
from maco_tf.models.graphs import as_functional
from maco_tf.models.layers import find_layer, layer_label, layer_output
from maco_tf.models.logits import output_layer, strip_softmax
from maco_tf.targets.building import DirectionShapeError, named_objective, split_directions
from maco_tf.targets.indices import TargetIndexError, check_indices

__all__ = [
    "DirectionShapeError",
    "TargetIndexError",
    "channel",
    "class_logits",
    "direction",
    "neuron",
    "select",
]


def _resolve(model: object, layer: str | int) -> tuple[object, str, tuple[int, ...]]:
    """Symbolic output, label and per-sample shape (which must be fully known) of a layer."""
    label = layer_label(model, layer)
    tensor = layer_output(model, layer)
    shape = tuple(tensor.shape[1:])
    if any(dim is None for dim in shape):
        raise MacoError(
            f"layer {label!r} has an output shape {tuple(tensor.shape)} with unknown sizes; "
            f"build the model on a fixed-size input"
        )
    return tensor, label, tuple(int(dim) for dim in shape)


def _masked_mean_loss(axes: tuple[int, ...]):
    """Xplique's neuron/channel loss: mean of ``output * mask`` over the feature axes."""
    axis_to_reduce = list(axes)

    def optim_func(output, target):
        return tf.reduce_mean(output * target, axis=axis_to_reduce)

    return optim_func


def _masked_mean_objective(
    model: object,
    tensor: object,
    masks: np.ndarray,
    multiplier: float,
    names: str | Sequence[str] | None,
    default_names: list[str],
) -> Objective:
    """Objective of ``mean(output * mask)``, one combination per mask of ``masks`` ``(N, ...)``."""
    loss = _masked_mean_loss(tuple(range(1, masks.ndim)))
    return named_objective(model, tensor, list(masks), loss, multiplier, names, default_names)


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
    model = as_functional(model)
    tensor, label, shape = _resolve(model, layer)
    size = int(np.prod(shape))
    ids = check_indices(ids, size, what, f"layer {label!r} with {size} units")
    masks = np.zeros((len(ids), size), dtype=np.float32)
    masks[np.arange(len(ids)), ids] = 1.0
    masks = masks.reshape((len(ids), *shape))
    if callable(names):
        names = [names(i) for i in ids]
    default = [f"Neuron#{label}_{i}" for i in ids]
    return _masked_mean_objective(model, tensor, masks, multiplier, names, default)


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
    model = as_functional(model)
    tensor, label, shape = _resolve(model, layer)
    ids = check_indices(ids, shape[-1], "channel", f"layer {label!r} with {shape[-1]} channels")
    masks = np.zeros((len(ids), *shape), dtype=np.float32)
    for row, index in enumerate(ids):
        masks[row, ..., index] = 1.0
    default = [f"Channel#{label}_{i}" for i in ids]
    return _masked_mean_objective(model, tensor, masks, multiplier, names, default)


def _logits_layer(model: object, layer: str | int | None) -> tuple[object, str | int]:
    """The model and layer to read logits from: a final softmax is taken off, with a warning."""
    if layer is not None:
        try:
            chain = find_layer(model, layer)
        except UnknownLayerError as exc:
            output = getattr(output_layer(model), "name", "?")
            raise UnknownLayerError(
                f"{exc}; or omit layer= to use the model's output ({output!r})"
            ) from exc
        if len(chain) > 1 or chain[0] is not output_layer(model):
            return model, layer
    model, logits, notes = strip_softmax(model)
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return model, logits


def class_logits(
    model: object,
    classes: int | Sequence[int],
    layer: str | int | None = None,
    class_names: Sequence[str] | None = None,
    multiplier: float = 1.0,
) -> Objective:
    """Maximise class logits (pre-softmax units of ``layer``): a named :func:`neuron`.

    Parameters
    ----------
    model
        A Keras model (a subclassed one is traced, see
        :func:`~maco_tf.models.graphs.as_functional`).
    classes
        Class index (or indices).
    layer
        The logits layer (name, index or path); None: the model's output. When that output
        (or ``layer``, if it makes the output) is a softmax (``Softmax``,
        ``Activation("softmax")`` or ``Dense(..., activation="softmax")``), the pre-softmax
        logits are used and a warning says so
        (:func:`~maco_tf.models.logits.strip_softmax`).
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
    UnknownLayerError
        For an unknown ``layer`` (with the closest paths, and the model's output).
    """
    names = None
    if class_names is not None:
        count = len(class_names)
        names = lambda i: str(class_names[i]) if i < count else f"class {i}"  # noqa: E731
    model, layer = _logits_layer(as_functional(model), layer)
    return _units(model, layer, classes, "class", multiplier, names)


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
    model = as_functional(model)
    tensor, label, shape = _resolve(model, layer)
    items = split_directions(vectors, shape)
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
    default = [f"Direction#{label}_{i}" for i in range(len(items))]

    def optim_func(model_output, mask):
        return dot_cossim(model_output, mask, cossim_pow)

    return named_objective(model, tensor, items, optim_func, multiplier, names, default)


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

"""Feature inversion: a MACO image whose activations at a layer match a target image's.

For each layer ``L`` the objective makes the activations ``a_L(x)`` of the optimised image
match the target's ``t_L = a_L(target)`` (computed once):

* ``"cosine"``: ``cos(a_L(x), t_L)`` over the whole per-sample activation tensor;
* ``"l2"``: ``-||a_L(x) - t_L|| / ||t_L||`` (negative relative distance, 0 at a perfect match).

Both are maximised. All layers run as one batch (one image per layer): their outputs are
flattened and concatenated into one tensor, and each combination's mask holds the target
activations and a selector of its layer's segment, so the result is a plain Xplique
``Objective`` with one sub-objective and one combination per layer. Each mask holds
``2 x`` the total size of the inverted layers (float32): for the large early layers of big
models, invert a few layers per call.

Activations are compared position by position, so the MACO image must line up with the
target: :func:`invert` therefore defaults to images of the model's input size optimised
whole (``size=None, crops=0``) rather than through random crops.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective

from maco_tf.core.config import RunConfig
from maco_tf.core.visualization import Visualization, visualize
from maco_tf.errors import MacoError
from maco_tf.models.images import resize_images
from maco_tf.models.layers import layer_label, layer_output, model_input_size

__all__ = [
    "INVERSION_SETTINGS",
    "METRICS",
    "InversionTargetError",
    "inversion_objective",
    "invert",
    "prepare_target",
]

#: Similarity measures of :func:`inversion_objective`.
METRICS = ("cosine", "l2")

_EPS = 1e-8
#: Settings of :func:`invert` that differ from :class:`~maco_tf.RunConfig`'s defaults: images
#: of the model's input size, optimised whole (activations are compared position by position).
INVERSION_SETTINGS: dict[str, object] = {"size": None, "crops": 0}


class InversionTargetError(MacoError):
    """The target image or the inversion settings cannot be used."""


def prepare_target(model: keras.Model, image: object) -> np.ndarray:
    """The target image as a ``(1, H, W, C)`` batch at the model's input size.

    Parameters
    ----------
    model
        Model with a single fixed-size image input.
    image
        ``(H, W, C)`` or ``(1, H, W, C)`` array in the model's input value range; a different
        height and width is resized (bilinear).

    Returns
    -------
    batch
        float32 ``(1, height, width, channels)`` of the model input.

    Raises
    ------
    InversionTargetError
        For a wrong rank, a channel count different from the model's, or non-finite values.
    """
    height, width, channels = model_input_size(model)
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2 and channels == 1:
        array = array[..., None]
    if array.ndim != 3:
        raise InversionTargetError(
            f"the target image must be (height, width, channels); got shape {np.shape(image)}"
        )
    if array.shape[-1] != channels:
        raise InversionTargetError(
            f"the target image has {array.shape[-1]} channel(s) but model {model.name!r} takes "
            f"{channels}-channel images; convert it first (shape {array.shape})"
        )
    if min(array.shape[:2]) < 1 or not np.all(np.isfinite(array)):
        raise InversionTargetError("the target image is empty or has NaN/infinite values")
    return resize_images(array[None], (height, width), antialias=False)


def _as_layers(layers: str | int | Sequence[str | int]) -> list[str | int]:
    items = [layers] if isinstance(layers, (str, int)) else list(layers)
    if not items:
        raise InversionTargetError("no layer given to invert")
    return items


def _inversion_loss(metric: str):
    """Loss ``func(features, mask)``: features ``(1, D)``, mask ``(1, 2, D)`` = target, selector."""

    def inversion_loss(features, mask):
        target = mask[:, 0]
        selected = features * mask[:, 1]
        if metric == "cosine":
            dot = tf.reduce_sum(selected * target, axis=-1)
            norm = tf.sqrt(tf.reduce_sum(tf.square(selected), axis=-1) + _EPS)
            return dot / (norm * tf.sqrt(tf.reduce_sum(tf.square(target), axis=-1) + _EPS))
        distance = tf.sqrt(tf.reduce_sum(tf.square(selected - target), axis=-1) + _EPS)
        return -distance / tf.sqrt(tf.reduce_sum(tf.square(target), axis=-1) + _EPS)

    return inversion_loss


def _single(items: list) -> object:
    return items[0] if len(items) == 1 else items


def _flat(tensor: object) -> object:
    return tensor if len(tensor.shape) == 2 else keras.layers.Flatten()(tensor)


def inversion_objective(
    model: keras.Model,
    image: object,
    layers: str | int | Sequence[str | int],
    metric: str = "cosine",
    multiplier: float = 1.0,
    names: Sequence[str] | None = None,
) -> Objective:
    """Objective whose combination ``i`` matches the target's activations at ``layers[i]``.

    Parameters
    ----------
    model
        A Keras model with a single fixed-size image input.
    image
        Target image ``(H, W, C)`` in the model's input value range; resized to the model
        input if its size differs.
    layers
        One layer (name, index or nested path) or several; one combination each.
    metric
        ``"cosine"`` (cosine similarity) or ``"l2"`` (minus the L2 distance divided by the
        target's norm); both maximised.
    multiplier
        Factor of the sub-objective.
    names
        One name per layer; default ``Inversion#<layer>``.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per layer.

    Raises
    ------
    InversionTargetError
        For an unknown metric, a bad target image, or a layer whose target activations are all
        zero (nothing to match).
    UnknownLayerError
        For a layer that is not in the model.
    """
    if metric not in METRICS:
        raise InversionTargetError(f"unknown metric {metric!r}; choose one of {METRICS}")
    target = prepare_target(model, image)
    items = _as_layers(layers)
    labels = [layer_label(model, item) for item in items]
    tensors = [layer_output(model, item) for item in items]
    for label, tensor in zip(labels, tensors, strict=True):
        if any(dim is None for dim in tensor.shape[1:]):
            raise InversionTargetError(
                f"layer {label!r} has an unknown output shape {tensor.shape}"
            )
    values = keras.Model(_single(model.inputs), tensors)(target, training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    flats = [np.asarray(v, dtype=np.float32).reshape(-1) for v in values]
    for label, flat in zip(labels, flats, strict=True):
        if not np.any(flat):
            raise InversionTargetError(
                f"the target image gives zero activations at layer {label!r}: nothing to invert"
            )
    features = [_flat(tensor) for tensor in tensors]
    output = features[0] if len(features) == 1 else keras.layers.Concatenate()(features)
    bounds = np.cumsum([0] + [flat.size for flat in flats])
    masks = []
    for i, flat in enumerate(flats):
        mask = np.zeros((2, int(bounds[-1])), dtype=np.float32)
        mask[0, bounds[i] : bounds[i + 1]] = flat
        mask[1, bounds[i] : bounds[i + 1]] = 1.0
        masks.append(mask)
    if names is None:
        names = [f"Inversion#{label}" for label in labels]
    elif len(names) != len(items):
        raise MacoError(f"got {len(names)} names for {len(items)} layers")
    return Objective(model, [output], [masks], [_inversion_loss(metric)], [multiplier], [names])


def invert(
    model: keras.Model,
    image: object,
    layers: str | int | Sequence[str | int],
    metric: str = "cosine",
    config: RunConfig | None = None,
    **overrides: object,
) -> Visualization:
    """Invert ``image`` at each of ``layers``: one MACO image per layer, in one batch.

    Parameters
    ----------
    model, image, layers, metric
        See :func:`inversion_objective`.
    config
        The run's settings; default ``RunConfig(**INVERSION_SETTINGS)``, whose images line
        up with the target.
    **overrides
        Settings replacing those of ``config`` and run context, as :func:`maco_tf.visualize`
        takes them.

    Returns
    -------
    visualization
        One image per layer, named ``Inversion#<layer>``; ``loss_history`` holds the
        similarity (cosine, or minus the relative L2 distance) at each step.
    """
    config = config if config is not None else RunConfig(**INVERSION_SETTINGS)
    return visualize(inversion_objective(model, image, layers, metric), config, **overrides)

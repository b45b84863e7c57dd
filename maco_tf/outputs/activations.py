"""Activations of several layers on images: the raw material of the trust check.

:func:`default_layers` picks the layers compared by default (spread evenly over the model's
depth, each with at least 8 channels so that their ranks can be correlated);
:func:`resolve_layers` turns layer names, indices or paths into symbolic outputs;
:func:`layer_features` gives their spatially averaged activations ``(N, C_l)`` per layer.
Images go in through :mod:`maco_tf.models.images`; :func:`batched_outputs` runs any symbolic
outputs a batch at a time. Bad input raises :data:`~maco_tf.outputs.features.MetricInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from maco_tf.errors import UnknownLayerError
from maco_tf.models.images import (
    DEFAULT_BATCH_SIZE,
    ImagesLike,
    ModelLike,
    as_images,
    check_channels,
    prepared_batches,
    resolve_ranges,
    unwrap_model,
)
from maco_tf.models.layers import find_layer, layer_output, layer_paths
from maco_tf.outputs.features import MetricInputError

__all__ = [
    "DEFAULT_MAX_LAYERS",
    "batched_outputs",
    "default_layers",
    "layer_features",
    "layer_means",
    "resolve_layers",
    "spatial_mean",
]

#: Layers compared by default, spread evenly over the depth of the model.
DEFAULT_MAX_LAYERS = 16
#: Fewest channels a compared layer needs: the ranks of fewer numbers are too coarse to
#: correlate (three numbers give only four possible values), and it keeps out the input.
_MIN_FEATURES = 8


def _feature_count(layer: keras.layers.Layer) -> int | None:
    """Channels of a layer whose output is a single ``(batch, ..., C)`` tensor, else None."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    if not isinstance(shape, tuple) or len(shape) < 2 or shape[-1] is None:
        return None
    return int(shape[-1])


def default_layers(model: ModelLike, max_layers: int = DEFAULT_MAX_LAYERS) -> list[str]:
    """Layers the trust check compares by default, spread evenly over the model's depth.

    Every addressable layer (nested models expanded, see :func:`maco_tf.layer_paths`) with one
    output of at least 8 channels is a candidate, input layers and nested-model containers
    excepted; ``max_layers`` of them are taken at evenly spaced depths, always including the
    last one.

    Parameters
    ----------
    model
        A Keras model or a :class:`~maco_tf.LoadedModel`.
    max_layers
        How many layers at most.

    Returns
    -------
    paths
        Layer paths, input side first.
    """
    keras_model, _, _ = unwrap_model(model)
    if isinstance(max_layers, bool) or not isinstance(max_layers, int) or max_layers < 1:
        raise MetricInputError(f"max_layers must be an integer >= 1; got {max_layers!r}")
    candidates = []
    for path in layer_paths(keras_model):
        layer = find_layer(keras_model, path)[-1]
        if isinstance(layer, keras.layers.InputLayer) or isinstance(layer, keras.Model):
            continue
        count = _feature_count(layer)
        if count is not None and count >= _MIN_FEATURES:
            candidates.append(path)
    if not candidates:
        raise MetricInputError(
            f"model {keras_model.name!r} has no layer with {_MIN_FEATURES} or more channels to "
            f"compare; name the layers with layers=[...]"
        )
    if len(candidates) <= max_layers:
        return candidates
    picks = np.unique(np.round(np.linspace(0, len(candidates) - 1, max_layers)).astype(int))
    return [candidates[index] for index in picks]


def resolve_layers(
    model: keras.Model, layers: Sequence[str | int] | None, max_layers: int
) -> tuple[list[str], list]:
    """Layer paths and their symbolic outputs, connected to ``model.inputs[0]``."""
    if layers is None:
        paths = default_layers(model, max_layers)
    else:
        if isinstance(layers, (str, int)):
            layers = [layers]
        paths = ["/".join(item.name for item in find_layer(model, layer)) for layer in layers]
        if not paths:
            raise MetricInputError("layers is empty; give at least one layer, or None")
    outputs = []
    for path in paths:
        tensor = layer_output(model, path)
        if isinstance(tensor, (list, tuple)):
            raise UnknownLayerError(
                f"layer {path!r} has several outputs; compare single-output layers"
            )
        if len(tensor.shape) < 2 or tensor.shape[-1] is None or tensor.shape[-1] < _MIN_FEATURES:
            raise MetricInputError(
                f"layer {path!r} has output shape {tuple(tensor.shape)}; the trust check "
                f"ranks channels and needs at least {_MIN_FEATURES} of them"
            )
        outputs.append(tensor)
    return paths, outputs


def spatial_mean(output: object) -> np.ndarray:
    """``(B, ..., C) -> (B, C)`` float64: the mean over every axis but the batch and channels."""
    array = keras.ops.convert_to_numpy(output).astype(np.float64)
    return array.mean(axis=tuple(range(1, array.ndim - 1))) if array.ndim > 2 else array


def batched_outputs(
    images: np.ndarray,
    model: keras.Model,
    tensors: list,
    ranges: tuple[tuple[float, float] | None, tuple[float, float] | None],
    batch_size: int,
    reduce: Callable[[list], list[np.ndarray]],
) -> list[np.ndarray]:
    """``reduce`` applied to ``tensors`` computed on each prepared batch, concatenated."""
    extractor = keras.Model(model.inputs[0], list(tensors))
    parts = []
    for batch in prepared_batches(images, model, ranges, batch_size):
        outputs = extractor(batch, training=False)
        parts.append(reduce(list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]))
    return [np.concatenate(part, axis=0) for part in zip(*parts, strict=True)]


def layer_means(
    images: np.ndarray,
    model: keras.Model,
    tensors: list,
    ranges: tuple[tuple[float, float] | None, tuple[float, float] | None],
    batch_size: int,
) -> list[np.ndarray]:
    """Spatial means of ``tensors``: one ``(N, C_l)`` array per layer."""
    return batched_outputs(
        images, model, tensors, ranges, batch_size, lambda outs: [spatial_mean(o) for o in outs]
    )


def layer_features(
    model: ModelLike,
    images: ImagesLike,
    layers: Sequence[str | int] | None = None,
    values_range: Sequence[float] | None = None,
    *,
    model_range: Sequence[float] | None = None,
    max_layers: int = DEFAULT_MAX_LAYERS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[list[str], list[np.ndarray]]:
    """Spatially averaged activations of several layers, the trust check's raw material.

    Parameters
    ----------
    model
        A Keras model or a :class:`~maco_tf.LoadedModel`.
    images
        ``(N, H, W, C)`` images (or a Visualization), resized to the model input.
    layers
        Layer names, indices or paths; default :func:`default_layers`.
    values_range
        Range of ``images``; default the Visualization's, else ``model_range``.
    model_range
        Range the model expects; default the LoadedModel's, else ``values_range``.
    max_layers
        Layers compared by default (when ``layers`` is None).
    batch_size
        Images per forward pass.

    Returns
    -------
    layers, features
        The layer paths and one ``(N, C_l)`` float64 array per layer.
    """
    keras_model, declared, _ = unwrap_model(model)
    array, source = as_images(images, "images", values_range)
    check_channels(array, "images", keras_model)
    ranges = resolve_ranges(declared, source, model_range)
    paths, tensors = resolve_layers(keras_model, layers, max_layers)
    return paths, layer_means(array, keras_model, tensors, ranges, batch_size)

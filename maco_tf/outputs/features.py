"""Features of images in a model: the feature space of the plausibility and the FID.

:func:`feature_extractor` builds a :class:`FeatureExtractor`: a callable mapping a batch of
images to the ``(N, D)`` outputs of one layer, by default the *penultimate* layer (the input
of the logits layer; for EfficientNet-Lite0 the 1280-d global-average-pooled ``avg_pool``
output). Images go in through :mod:`maco_tf.models.images` (range mapped, resized to the model
input, a batch at a time); spatial outputs are averaged over their spatial axes.

:func:`image_pair` and :func:`pair_features` check two image sets and compute their features
in one space, with the default judge and reference photos of :mod:`maco_tf.outputs.judges`
for what is not given. Bad input raises :data:`MetricInputError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from maco_tf.checks import check_values_range
from maco_tf.errors import IncompatibleModelError, UnknownLayerError
from maco_tf.models.images import (
    DEFAULT_BATCH_SIZE,
    ImagesLike,
    ModelInputError,
    ModelLike,
    as_images,
    check_channels,
    resolve_ranges,
    run_batches,
    unwrap_model,
)
from maco_tf.models.layers import (
    PATH_SEPARATOR,
    find_layer,
    input_in_graph,
    is_model,
    is_softmax_layer,
    layer_output,
    model_input_size,
)
from maco_tf.outputs import judges

__all__ = ["FeatureExtractor", "ImagePair", "MetricInputError", "feature_extractor"]

#: Bad input to a quality metric (empty set, wrong shape or channel count, bad class): the
#: error of bad input to a model, :class:`~maco_tf.models.images.ModelInputError`.
MetricInputError = ModelInputError


def _layer_input(model: keras.Model, layer: keras.layers.Layer) -> object:
    try:
        tensor = layer.input
    except (AttributeError, ValueError) as exc:
        raise IncompatibleModelError(
            f"cannot find the input of layer {layer.name!r} in model {model.name!r}; "
            f"name the feature layer with layer=..."
        ) from exc
    if isinstance(tensor, (list, tuple)):
        raise IncompatibleModelError(
            f"layer {layer.name!r} of model {model.name!r} has several inputs; name the "
            f"feature layer with layer=..."
        )
    return tensor


def _penultimate(model: keras.Model, logits_layer: str | None) -> tuple[object, str]:
    """The input of the logits layer (or of the last layer, a trailing softmax skipped).

    When that layer is a nested model (a classifier wrapped in a bigger model), its own
    penultimate layer is used, rebuilt in the outer graph.
    """
    if not getattr(model, "layers", None):
        raise IncompatibleModelError(
            f"model {model.name!r} has no layers to take features from; name one with layer=..."
        )
    chain: list = []
    if logits_layer is not None:
        try:
            chain = find_layer(model, logits_layer)
        except UnknownLayerError:
            chain = []
    last = chain[0] if chain else model.layers[-1]
    inner_logits = PATH_SEPARATOR.join(layer.name for layer in chain[1:]) or None
    if not chain and is_softmax_layer(last):
        history = getattr(_layer_input(model, last), "_keras_history", None)
        if history is not None:
            last = history[0]
    if is_model(last) and (inner_logits is not None or not chain):
        inner_tensor, inner_name = _penultimate(last, inner_logits)
        sub_model = keras.Model(last.inputs[0], inner_tensor)
        return sub_model(input_in_graph(model, last)), f"{last.name}{PATH_SEPARATOR}{inner_name}"
    tensor = _layer_input(model, last)
    history = getattr(tensor, "_keras_history", None)
    name = history[0].name if history is not None else f"input of {last.name}"
    return tensor, name


class FeatureExtractor:
    """Callable ``images (N, H, W, C) -> features (N, D)`` on one layer of a model.

    Built by :func:`feature_extractor`. Images are resized to the model input and mapped from
    their ``values_range`` to the model's range; outputs with spatial axes are averaged over
    them (global average pooling).

    Attributes
    ----------
    model
        The Keras model the features come from.
    layer
        Name of the layer whose output are the features.
    model_range
        Range the model expects, or None when the images are assumed to be in it already.
    """

    def __init__(
        self,
        model: keras.Model,
        tensor: object,
        layer: str,
        model_range: tuple[float, float] | None,
    ) -> None:
        self.model = model
        self.layer = layer
        self.model_range = model_range
        self._features = keras.Model(model.inputs[0], tensor, name=f"{model.name}_features")

    def __repr__(self) -> str:
        return f"FeatureExtractor(model={self.model.name!r}, layer={self.layer!r})"

    def __call__(
        self,
        images: ImagesLike,
        values_range: Sequence[float] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> np.ndarray:
        """Features of a batch of images.

        Parameters
        ----------
        images
            ``(N, H, W, C)`` images, or a :class:`~maco_tf.Visualization`.
        values_range
            Range of ``images``; default: the Visualization's, else the model's.
        batch_size
            Images per forward pass.

        Returns
        -------
        features
            ``(N, D)`` float64.
        """
        array, source = as_images(images, "images", values_range)
        source, target = resolve_ranges(self.model_range, source, None)
        check_channels(array, "images", self.model)
        features = run_batches(
            lambda x: self._features(x, training=False),
            array,
            self.model,
            (source, target),
            batch_size,
        ).astype(np.float64)
        if features.ndim > 2:
            features = features.mean(axis=tuple(range(1, features.ndim - 1)))
        return features.reshape(features.shape[0], -1)


def feature_extractor(
    model: ModelLike,
    layer: str | int | None = None,
    *,
    model_range: Sequence[float] | None = None,
) -> FeatureExtractor:
    """Callable mapping images to the features of one layer, ``(N, D)``.

    Parameters
    ----------
    model
        A Keras model, or a :class:`~maco_tf.LoadedModel` (its ``values_range`` and
        ``logits_layer`` are used).
    layer
        Layer name, index or path (see :func:`maco_tf.layer_output`). Default: the penultimate
        layer, i.e. the input of the logits layer (the LoadedModel's ``logits_layer``, else the
        model's last layer, a final softmax skipped); for EfficientNet-Lite0, ``avg_pool``.
    model_range
        Range of the values the model expects; default: the LoadedModel's, else the images are
        assumed to be in the model's range already.

    Returns
    -------
    extractor
        A :class:`FeatureExtractor`; ``extractor(images, values_range)`` gives ``(N, D)``
        features, spatial outputs averaged over their spatial axes.

    Raises
    ------
    UnknownLayerError
        For a layer that is not in the model.
    IncompatibleModelError
        For a model without a fixed-size image input, or whose penultimate layer cannot be
        found (name ``layer`` then).
    """
    keras_model, declared, logits_layer = unwrap_model(model)
    model_input_size(keras_model)
    target = check_values_range(model_range, "model_range") if model_range is not None else declared
    if layer is None:
        tensor, name = _penultimate(keras_model, logits_layer)
    else:
        tensor = layer_output(keras_model, layer)
        name = str(layer)
    if isinstance(tensor, (list, tuple)):
        raise IncompatibleModelError(f"layer {name!r} has several outputs; pick another layer")
    return FeatureExtractor(keras_model, tensor, name, target)


# ----------------------------------------------------------------------- two image sets


@dataclass(frozen=True)
class ImagePair:
    """Two checked image sets to compare, with their ranges and the judge model."""

    model: ModelLike
    images: np.ndarray
    source: tuple[float, float] | None
    others: np.ndarray
    others_source: tuple[float, float] | None


def image_pair(
    model: ModelLike | None,
    first: tuple[ImagesLike, str, Sequence[float] | None],
    second: tuple[ImagesLike | None, str, Sequence[float] | None],
) -> ImagePair:
    """Check ``(images, name, values_range)`` sets; default judge and reference photos for None.

    Raises :data:`MetricInputError` for a bad set or two sets of different channel counts.
    """
    images, name, values_range = first
    others, others_name, others_range = second
    array, source = as_images(images, name, values_range)
    model = judges.default_judge() if model is None else model
    if others is None:
        others, others_range = judges.reference_photos(model), judges.PHOTO_RANGE
    other, other_source = as_images(others, others_name, others_range)
    if array.shape[-1] != other.shape[-1]:
        raise MetricInputError(
            f"{name} have {array.shape[-1]} channel(s) but {others_name} have {other.shape[-1]}"
        )
    return ImagePair(model, array, source, other, other_source)


def pair_features(
    pair: ImagePair, layer: str | int | None, model_range: Sequence[float] | None, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(N, D)`` of both sets; a missing range is the first set's, else the model's."""
    extractor = feature_extractor(pair.model, layer, model_range=model_range)
    source = pair.source or extractor.model_range
    features = extractor(pair.images, source, batch_size=batch_size)
    return features, extractor(pair.others, pair.others_source or source, batch_size=batch_size)

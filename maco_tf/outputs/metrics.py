"""Quality metrics for feature visualizations: plausibility, transferability, recognition.

They follow the evaluation of the MACO paper (Fel et al., *Unlocking Feature Visualization for
Deeper Networks with MAgnitude Constrained Optimization*, NeurIPS 2023, section 4), computed
here with any Keras classifier:

* :func:`plausibility`: how close each image is to real images of its class, in the model's
  feature space (cosine similarity of penultimate features; higher is more plausible);
* :func:`~maco_tf.outputs.fid.fid` (in :mod:`maco_tf.outputs.fid`): Fréchet distance between
  Gaussian fits of two sets of features (lower is closer); the paper uses it between
  visualizations and real images of the same classes;
* :func:`transferability`: do *other* models see the class in the images (top-1 rate and rank
  of the target class per model)?
* :func:`self_recognition`: does the model that made the images see its class in them?

Defaults, when a judge or a reference is not given:

* the judge (``transferability``'s ``models``, ``plausibility``'s and ``fid``'s ``model``) is
  :func:`~maco_tf.outputs.judges.default_judge`: EfficientNet-Lite1 from the offline zoo, an
  ImageNet network that did not make the images, loaded when needed;
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
  named instead, and spatial outputs are averaged over their spatial axes (see
  :mod:`maco_tf.outputs.features`);
* ranks are **1-based**: rank 1 is the top-1 class; ties are broken by class index, as
  ``numpy.argmax`` does, so ``rank == 1`` exactly when the argmax is the target;
* bad input (empty sets, wrong rank, channel count, class indices) raises
  :data:`~maco_tf.outputs.features.MetricInputError`, a :class:`~maco_tf.errors.MacoError`
  (hence a ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from maco_tf.errors import IncompatibleModelError
from maco_tf.models.images import (
    DEFAULT_BATCH_SIZE,
    ImagesLike,
    ModelLike,
    as_images,
    check_channels,
    model_name,
    resolve_ranges,
    run_batches,
    unwrap_model,
)
from maco_tf.outputs import judges
from maco_tf.outputs.features import MetricInputError, image_pair, pair_features

__all__ = [
    "RecognitionScores",
    "plausibility",
    "plausibility_from_features",
    "self_recognition",
    "transferability",
]


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
        A Keras model or a :class:`~maco_tf.LoadedModel`; default
        :func:`~maco_tf.outputs.judges.default_judge`.
    layer
        Feature layer; default the penultimate one (see
        :func:`~maco_tf.outputs.features.feature_extractor`).
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
    pair = image_pair(
        model,
        (images, "images", values_range),
        (reference_images, "reference_images", reference_values_range),
    )
    features, reference = pair_features(pair, layer, model_range, batch_size)
    return plausibility_from_features(features, reference, metric=metric, k=k)


# ------------------------------------------------------------------------- recognition


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
        Keras model is assumed to take ``values_range``). Default:
        :func:`~maco_tf.outputs.judges.default_judge`.
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
        models = judges.default_judge()
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

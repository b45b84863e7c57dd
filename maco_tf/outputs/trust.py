"""Trust check: does a feature visualization reach its unit along the natural images' path.

Geirhos et al. (*Don't trust your eyes: on the (un)reliability of feature visualizations*,
ICML 2024) built networks whose feature visualizations show anything at all while their
behaviour on natural images is unchanged, and proposed a sanity check: a visualization that
explains a unit should reach it the way natural images that excite the unit do. Layer by
layer, the activations caused by the visualization are compared with those caused by the
unit's top-activating natural images (the *references*), and set against two levels:

* ``natural``: how similar the references are to one another (each reference against the
  others), what a natural image that excites the unit achieves;
* ``baseline``: how similar natural images that were *not* selected for the unit are to the
  references (the paper uses natural images of other classes).

Similarity is Spearman's rank correlation between two activation vectors, averaged over the
references. A layer's activation vector is the spatial mean of its output per channel
(``(H, W, C) -> (C,)``), so that two images can be compared whatever the positions of their
features. The score of a visualization sums the layer profiles::

    score = sum_l (visualization_l - baseline_l) / sum_l (natural_l - baseline_l)

1 means "as close to the references as they are to one another", 0 "no closer than unrelated
photos", below 0 "further than unrelated photos": the visualization drives the unit through
features natural images do not use.

Conventions follow :mod:`maco_tf.outputs.metrics`: batches ``(N, H, W, C)`` (or a
:class:`~maco_tf.Visualization`), resized to the model input; each set has its own value
range, mapped to the range the model expects; bad input raises
:data:`~maco_tf.outputs.features.MetricInputError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from maco_tf.core.limits import Limits
from maco_tf.core.objectives import compile_objective
from maco_tf.errors import UnknownLayerError
from maco_tf.models.images import (
    DEFAULT_BATCH_SIZE,
    IMAGE_SUFFIXES,
    ImageReadError,
    ImagesLike,
    ModelLike,
    as_images,
    check_channels,
    image_files,
    prepared_batches,
    read_image,
    resolve_ranges,
    unwrap_model,
)
from maco_tf.models.layers import find_layer, layer_output, layer_paths, model_input_size
from maco_tf.outputs.features import MetricInputError

__all__ = [
    "DEFAULT_MAX_LAYERS",
    "PHOTO_RANGE",
    "PHOTO_SUFFIXES",
    "TrustReport",
    "default_layers",
    "layer_features",
    "load_photos",
    "objective_scores",
    "path_similarity",
    "rank_correlation",
    "top_activating",
    "trust_check",
]

#: Layers compared by default, spread evenly over the depth of the model.
DEFAULT_MAX_LAYERS = 16
#: Range of the pixel values :func:`load_photos` returns.
PHOTO_RANGE = (0.0, 255.0)
#: File suffixes :func:`load_photos` reads (case-insensitive).
PHOTO_SUFFIXES = IMAGE_SUFFIXES
#: Fewest channels a compared layer needs: the ranks of fewer numbers are too coarse to
#: correlate (three numbers give only four possible values), and it keeps out the input.
_MIN_FEATURES = 8


# ------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class TrustReport:
    """Path similarity of each visualization to the natural images of its unit, per layer.

    Attributes
    ----------
    names
        One name per visualization.
    layers
        The compared layers (paths), input side first.
    visualization
        ``(V, L)`` mean Spearman correlation of each visualization with its references.
    natural
        ``(V, L)`` mean correlation of the references with one another.
    baseline
        ``(V, L)`` mean correlation of the baseline images with the references.
    """

    names: tuple[str, ...]
    layers: tuple[str, ...]
    visualization: np.ndarray
    natural: np.ndarray
    baseline: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @property
    def scores(self) -> np.ndarray:
        """``(V,)`` trust score: gap to the baseline relative to the natural images' gap.

        NaN where the references are, summed over layers, no closer to one another than the
        baseline is to them (the natural images then say nothing about the unit).
        """
        gap = (self.natural - self.baseline).sum(axis=1)
        lift = (self.visualization - self.baseline).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, lift / np.where(gap > 0, gap, 1.0), np.nan)

    @property
    def below_baseline(self) -> np.ndarray:
        """``(V, L)`` True where a visualization is less like the references than the baseline."""
        return self.visualization < self.baseline

    def flagged(self, threshold: float = 0.0) -> np.ndarray:
        """``(V,)`` True for visualizations whose score is below ``threshold`` (or NaN)."""
        scores = self.scores
        return ~(scores >= threshold)

    def summary(self) -> str:
        """A readable table: one line per visualization, then its per-layer profile."""
        width = max(len(layer) for layer in self.layers)
        lines = []
        for index, name in enumerate(self.names):
            below = int(self.below_baseline[index].sum())
            lines.append(
                f"{name}: trust score {self.scores[index]:.2f} "
                f"({below}/{len(self.layers)} layers below the baseline)"
            )
            lines.append(f"  {'layer':<{width}}  visualization  natural  baseline")
            for column, layer in enumerate(self.layers):
                lines.append(
                    f"  {layer:<{width}}  {self.visualization[index, column]:13.2f}  "
                    f"{self.natural[index, column]:7.2f}  {self.baseline[index, column]:8.2f}"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain lists and floats (JSON-ready): names, layers, scores and the three profiles."""
        return {
            "names": list(self.names),
            "layers": list(self.layers),
            "scores": [float(value) for value in self.scores],
            "visualization": self.visualization.tolist(),
            "natural": self.natural.tolist(),
            "baseline": self.baseline.tolist(),
        }

    def entry(self, index: int, digits: int = 4) -> dict:
        """One visualization's score and profiles, rounded, as a results record stores them.

        Parameters
        ----------
        index
            The visualization's position in the report.
        digits
            Decimal digits kept.

        Returns
        -------
        entry
            ``{"score", "layers", "visualization", "natural", "baseline"}``: the score (None
            when it is undefined) and the three per-layer profiles of that visualization.
        """
        score = float(self.scores[index])
        return {
            "score": round(score, digits) if np.isfinite(score) else None,
            "layers": list(self.layers),
            "visualization": [round(float(v), digits) for v in self.visualization[index]],
            "natural": [round(float(v), digits) for v in self.natural[index]],
            "baseline": [round(float(v), digits) for v in self.baseline[index]],
        }


# ---------------------------------------------------------------------- correlations


def _ranks(values: np.ndarray) -> np.ndarray:
    """Row-wise ranks, ties given their average rank (as ``scipy.stats.rankdata``)."""
    from scipy.stats import rankdata  # lazy: scipy is only needed here

    return rankdata(values, axis=1).astype(np.float64)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation between every row of ``a`` and every row of ``b``.

    Parameters
    ----------
    a, b
        ``(N_a, D)`` and ``(N_b, D)`` vectors.

    Returns
    -------
    correlations
        ``(N_a, N_b)`` in ``[-1, 1]``; 0 where a row is constant (its ranks carry no order).
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise MetricInputError(
            f"rank_correlation needs (N, D) and (M, D) arrays; got {a.shape} and {b.shape}"
        )

    def standardised(values: np.ndarray) -> np.ndarray:
        ranks = _ranks(values)
        ranks -= ranks.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(ranks, axis=1, keepdims=True)
        return np.divide(ranks, norms, out=np.zeros_like(ranks), where=norms > 0)

    return np.clip(standardised(a) @ standardised(b).T, -1.0, 1.0)


def _mean_offdiagonal(matrix: np.ndarray) -> float:
    count = matrix.shape[0]
    return float((matrix.sum() - np.trace(matrix)) / (count * (count - 1)))


def _profiles(
    visualizations: list[np.ndarray], references: list[np.ndarray], baseline: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per layer: ``(V,)`` visualization, natural and baseline similarities (one unit)."""
    vis, nat, base = [], [], []
    for v, r, b in zip(visualizations, references, baseline, strict=True):
        vis.append(rank_correlation(v, r).mean(axis=1))
        nat.append(_mean_offdiagonal(rank_correlation(r, r)))
        base.append(rank_correlation(b, r).mean())
    count = visualizations[0].shape[0]
    return (
        np.stack(vis, axis=1),
        np.tile(np.asarray(nat)[None], (count, 1)),
        np.tile(np.asarray(base)[None], (count, 1)),
    )


# ---------------------------------------------------------------------------- layers


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


def _resolve_layers(
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


def _spatial_mean(output: object) -> np.ndarray:
    """``(B, ..., C) -> (B, C)`` float64: the mean over every axis but the batch and channels."""
    array = keras.ops.convert_to_numpy(output).astype(np.float64)
    return array.mean(axis=tuple(range(1, array.ndim - 1))) if array.ndim > 2 else array


def _batched(
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


def _features(
    images: np.ndarray,
    model: keras.Model,
    tensors: list,
    ranges: tuple[tuple[float, float] | None, tuple[float, float] | None],
    batch_size: int,
) -> list[np.ndarray]:
    """Spatial means of ``tensors``: one ``(N, C_l)`` array per layer."""
    return _batched(
        images, model, tensors, ranges, batch_size, lambda outs: [_spatial_mean(o) for o in outs]
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
    paths, tensors = _resolve_layers(keras_model, layers, max_layers)
    return paths, _features(array, keras_model, tensors, ranges, batch_size)


# ---------------------------------------------------------------------- path similarity


def _names(count: int, names: Sequence[str] | None, images: object) -> tuple[str, ...]:
    if names is None:
        names = getattr(images, "names", None)
    if names is None:
        return tuple(f"visualization {index}" for index in range(count))
    names = tuple(str(name) for name in names)
    if len(names) != count:
        raise MetricInputError(f"{len(names)} names for {count} visualizations; give one each")
    return names


def path_similarity(
    model: ModelLike,
    visualizations: ImagesLike,
    natural_images: ImagesLike,
    baseline_images: ImagesLike,
    layers: Sequence[str | int] | None = None,
    values_range: Sequence[float] | None = None,
    *,
    natural_range: Sequence[float] | None = None,
    model_range: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    max_layers: int = DEFAULT_MAX_LAYERS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> TrustReport:
    """Trust check of visualizations of one unit against given natural images.

    Parameters
    ----------
    model
        A Keras model or a :class:`~maco_tf.LoadedModel`.
    visualizations
        ``(V, H, W, C)`` visualizations of the unit (or a Visualization).
    natural_images
        ``(R, H', W', C)`` natural images that excite the unit most (the references), at least
        2 (see :func:`top_activating`).
    baseline_images
        ``(B, H'', W'', C)`` natural images not selected for the unit, at least 1.
    layers
        Layers to compare; default :func:`default_layers` (``max_layers`` of them).
    values_range
        Range of ``visualizations``; default the Visualization's, else ``model_range``.
    natural_range
        Range of the natural and baseline images; default ``values_range``.
    model_range
        Range the model expects; default the LoadedModel's, else ``values_range``.
    names
        One name per visualization; default the Visualization's names, else numbers.
    max_layers
        Layers compared by default.
    batch_size
        Images per forward pass.

    Returns
    -------
    report
        A :class:`TrustReport` (the natural and baseline profiles are the same for every
        visualization).
    """
    keras_model, declared, _ = unwrap_model(model)
    vis, vis_range = as_images(visualizations, "visualizations", values_range)
    refs, ref_range = as_images(natural_images, "natural_images", natural_range)
    base, _ = as_images(baseline_images, "baseline_images", natural_range)
    if refs.shape[0] < 2:
        raise MetricInputError(
            f"natural_images has {refs.shape[0]} image(s); the references are compared with one "
            f"another, give at least 2"
        )
    for what, array in (("visualizations", vis), ("natural_images", refs), ("baseline", base)):
        check_channels(array, what, keras_model)
    vis_range, target = resolve_ranges(declared, vis_range, model_range)
    ref_range = ref_range or vis_range
    paths, tensors = _resolve_layers(keras_model, layers, max_layers)
    profiles = _profiles(
        _features(vis, keras_model, tensors, (vis_range, target), batch_size),
        _features(refs, keras_model, tensors, (ref_range, target), batch_size),
        _features(base, keras_model, tensors, (ref_range, target), batch_size),
    )
    return TrustReport(_names(vis.shape[0], names, visualizations), tuple(paths), *profiles)


# ------------------------------------------------------------------- natural references


def objective_scores(
    objective: object,
    images: ImagesLike,
    values_range: Sequence[float] | None = None,
    *,
    model_range: Sequence[float] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Value of every combination of an objective on every image (whole image, resized).

    Parameters
    ----------
    objective
        An Xplique ``Objective`` (e.g. from :mod:`maco_tf.targets`) with C combinations.
    images
        ``(N, H, W, C)`` images, resized to the model input.
    values_range
        Range of ``images``; default ``model_range``.
    model_range
        Range the objective's model expects; default ``values_range`` (no mapping).
    batch_size
        Images per forward pass.

    Returns
    -------
    scores
        ``(N, C)`` float64: the quantity the visualization maximises, per image.
    """
    compiled = compile_objective(objective)
    model = compiled.model
    array, source = as_images(images, "images", values_range)
    check_channels(array, "images", model)
    (scores,) = _batched(
        array,
        model,
        list(compiled.outputs),
        resolve_ranges(None, source, model_range),
        batch_size,
        lambda outputs: [_combination_values(compiled, outputs)],
    )
    return scores


def _combination_values(compiled: object, outputs: list) -> np.ndarray:
    """``(B, C)``: each image scored alone (losses may reduce over the batch axis)."""
    count = int(outputs[0].shape[0])
    values = np.zeros((count, compiled.nb_combinations))
    for func, output, masks, factor in zip(
        compiled.funcs, outputs, compiled.masks, compiled.multipliers, strict=True
    ):
        output = tf.cast(output, tf.float32)
        for image in range(count):
            for combination in range(compiled.nb_combinations):
                value = func(
                    output[image : image + 1], tf.constant(masks[combination : combination + 1])
                )
                values[image, combination] += float(factor) * float(tf.reduce_mean(value))
    return values


def top_activating(
    objective: object,
    images: ImagesLike,
    k: int = 8,
    values_range: Sequence[float] | None = None,
    *,
    model_range: Sequence[float] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Indices of the ``k`` images that excite each combination of an objective most.

    Parameters
    ----------
    objective
        An Xplique ``Objective`` with C combinations.
    images
        ``(N, H, W, C)`` natural images (see :func:`load_photos` for a folder).
    k
        Images per combination, ``1 <= k <= N``.
    values_range, model_range, batch_size
        As :func:`objective_scores`.

    Returns
    -------
    indices
        ``(C, k)`` int indices into ``images``, best first (ties: lower index first).
    """
    scores = objective_scores(
        objective, images, values_range, model_range=model_range, batch_size=batch_size
    )
    return _top_indices(scores, k)


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """``(C, k)`` indices of the ``k`` best rows of ``scores (N, C)`` per column, best first."""
    count = scores.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= count:
        raise MetricInputError(f"k must be an integer from 1 to {count} (the images); got {k!r}")
    order = np.argsort(-scores, axis=0, kind="stable")
    return order[:k].T.copy()


def _photo_size(size: object, limits: Limits) -> tuple[int, int]:
    """``size`` (a side or ``(height, width)``) as two ints from 1 to ``limits.max_size``."""
    try:
        height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    except (TypeError, ValueError):
        raise MetricInputError(
            f"size must be a side or (height, width) in pixels; got {size!r}"
        ) from None
    for side in (height, width):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise MetricInputError(f"size must be positive integers (pixels); got {size!r}")
        if side > limits.max_size:
            raise MetricInputError(str(limits.refusal("size", int(side), "max_size")))
    return int(height), int(width)


def load_photos(
    folder: str | os.PathLike[str],
    size: int | Sequence[int],
    *,
    limit: int | None = None,
    limits: Limits | None = None,
) -> np.ndarray:
    """Every image file of a folder (not recursive), RGB, resized, as ``(N, H, W, 3)`` floats.

    Photos are read by :func:`maco_tf.models.images.read_image` (regular files only, each
    checked against the pixel bound from its header, EXIF orientation applied, any mode
    converted to RGB); the folder is listed by :func:`maco_tf.models.images.image_files`
    (entries that are not regular files named and skipped; number and total pixels bounded).

    Parameters
    ----------
    folder
        A directory; files with a suffix in :data:`PHOTO_SUFFIXES` are read in name order.
    size
        ``side`` or ``(height, width)`` of the returned images (bilinear, antialiased), each
        from 1 to ``limits.max_size``.
    limit
        Read at most this many files.
    limits
        The bounds; default :meth:`Limits.from_environment
        <maco_tf.core.limits.Limits.from_environment>`.

    Returns
    -------
    photos
        float32 in :data:`PHOTO_RANGE` (0 to 255).

    Raises
    ------
    MetricInputError
        One line: a missing folder, a folder without images, an unreadable, irregular or
        oversized file (named), a bad ``size``, or photos over the bounds of ``limits``.
    """
    from PIL import Image  # lazy: only folders need PIL

    limits = Limits.from_environment() if limits is None else limits
    height, width = _photo_size(size, limits)
    path = Path(folder)
    if not path.is_dir():
        raise MetricInputError(f"photo folder {str(path)!r} does not exist or is not a folder")
    bounds = limits.image_bounds()
    try:
        files = image_files(path, what="photo folder", first=limit, bounds=bounds)
    except ImageReadError as exc:
        raise MetricInputError(str(exc)) from None
    if not files:
        raise MetricInputError(
            f"no images in {str(path)!r}; put photos there (suffixes: {', '.join(PHOTO_SUFFIXES)})"
        )
    _check_photo_memory(len(files), height, width, limits)
    photos = np.empty((len(files), height, width, 3), np.float32)
    for index, file in enumerate(files):
        try:
            rgb = read_image(file, 3, bounds=bounds)
        except ImageReadError as exc:
            raise MetricInputError(str(exc)) from None
        resized = rgb.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
        photos[index] = np.asarray(resized, dtype=np.float32)
    return photos


def _check_photo_memory(count: int, height: int, width: int, limits: Limits) -> None:
    """Refuse photos whose float32 batch would be over ``limits.max_batch_memory``."""
    nbytes = count * height * width * 3 * 4
    if nbytes > limits.max_batch_memory:
        raise MetricInputError(
            f"{count} photos of {height}x{width} would take {nbytes / 2**30:.1f} GiB, over the "
            f"limit max_batch_memory={limits.max_batch_memory} bytes; read fewer photos "
            f"(limit=) or a smaller size, or raise the limit with the environment variable "
            f"MACO_TF_MAX_BATCH_MEMORY"
        )


#: Slack, in fractions of a range's width, for values just outside it (resampling overshoot).
_RANGE_SLACK = 0.1


def _check_within(
    images: np.ndarray, values_range: tuple[float, float] | None, what: str, flag: str
) -> None:
    """Refuse images whose values lie far outside their declared range (a wrong range)."""
    if values_range is None:
        return
    low, high = values_range
    slack = _RANGE_SLACK * (high - low)
    smallest, largest = float(images.min()), float(images.max())
    if smallest < low - slack or largest > high + slack:
        raise MetricInputError(
            f"{what} hold values from {smallest:.4g} to {largest:.4g}, far outside their range "
            f"({low:g}, {high:g}); give their range with {flag}= or rescale them"
        )


def trust_check(
    objective: object,
    visualizations: ImagesLike,
    photos: ImagesLike | str | os.PathLike[str],
    k: int = 8,
    layers: Sequence[str | int] | None = None,
    values_range: Sequence[float] | None = None,
    *,
    photos_range: Sequence[float] | None = None,
    model_range: Sequence[float] | None = None,
    max_layers: int = DEFAULT_MAX_LAYERS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> TrustReport:
    """Trust check of one visualization per objective combination, against a pool of photos.

    For each combination, the ``k`` photos that excite it most are its references and all
    the other photos its baseline; its visualization is then scored by
    :func:`path_similarity`'s measure. Activations of the photos are computed once.

    Parameters
    ----------
    objective
        The Xplique ``Objective`` the visualizations were made for (C combinations).
    visualizations
        ``(C, H, W, C)`` images, one per combination in the objective's order (or a
        Visualization); a single image when the objective has one combination.
    photos
        ``(N, H', W', C)`` natural images, or a folder of photos (:func:`load_photos`, read at
        the model's input size, range 0-255). ``N >= k + 1``.
    k
        References per combination, ``k >= 2``.
    layers
        Layers to compare; default :func:`default_layers`.
    values_range
        Range of ``visualizations``; default the Visualization's, else ``model_range``.
    photos_range
        Range of ``photos``; default 0-255 for a folder, else ``values_range``.
    model_range
        Range the objective's model expects; default ``values_range``.
    max_layers
        Layers compared by default.
    batch_size
        Images per forward pass.

    Returns
    -------
    report
        A :class:`TrustReport` named after the objective's combinations.

    Raises
    ------
    MetricInputError
        For bad images or settings, including photos whose values lie far outside their range
        (more than a tenth of its width beyond it).
    """
    compiled = compile_objective(objective)
    model = compiled.model
    vis, vis_range = as_images(visualizations, "visualizations", values_range)
    if vis.shape[0] != compiled.nb_combinations:
        raise MetricInputError(
            f"{vis.shape[0]} visualization(s) for an objective with "
            f"{compiled.nb_combinations} combination(s); give one image per combination, in "
            f"the objective's order"
        )
    if isinstance(photos, (str, os.PathLike)):
        photos = load_photos(photos, model_input_size(model)[:2])
        photos_range = PHOTO_RANGE if photos_range is None else photos_range
    pool, pool_range = as_images(photos, "photos", photos_range)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2 or k >= pool.shape[0]:
        raise MetricInputError(
            f"k must be an integer from 2 to {pool.shape[0] - 1} for {pool.shape[0]} photos "
            f"(the rest is the baseline); got {k!r}"
        )
    for what, array in (("visualizations", vis), ("photos", pool)):
        check_channels(array, what, model)
    vis_range, target = resolve_ranges(None, vis_range, model_range)
    pool_range = pool_range or vis_range
    _check_within(pool, pool_range, "photos", "photos_range")
    paths, tensors = _resolve_layers(model, layers, max_layers)
    vis_features = _features(vis, model, tensors, (vis_range, target), batch_size)
    nb_outputs = len(compiled.outputs)
    scores, *pool_features = _batched(  # one pass over the photos: scores and features
        pool,
        model,
        [*compiled.outputs, *tensors],
        (pool_range, target),
        batch_size,
        lambda outputs: [
            _combination_values(compiled, outputs[:nb_outputs]),
            *[_spatial_mean(output) for output in outputs[nb_outputs:]],
        ],
    )
    top = _top_indices(scores, k)
    rows = []
    for combination, selected in enumerate(top):
        rest = np.setdiff1d(np.arange(pool.shape[0]), selected)
        rows.append(
            _profiles(
                [f[combination : combination + 1] for f in vis_features],
                [f[selected] for f in pool_features],
                [f[rest] for f in pool_features],
            )
        )
    visualization, natural, baseline = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    return TrustReport(tuple(compiled.names), tuple(paths), visualization, natural, baseline)

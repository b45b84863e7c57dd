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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maco_tf.core.objectives import compile_objective
from maco_tf.models.images import (
    DEFAULT_BATCH_SIZE,
    ImagesLike,
    ModelLike,
    as_images,
    check_channels,
    resolve_ranges,
    unwrap_model,
)
from maco_tf.models.layers import model_input_size
from maco_tf.outputs.activations import (
    DEFAULT_MAX_LAYERS,
    batched_outputs,
    layer_means,
    resolve_layers,
    spatial_mean,
)
from maco_tf.outputs.features import MetricInputError
from maco_tf.outputs.references import PHOTO_RANGE, combination_values, load_photos, top_indices

__all__ = ["TrustReport", "path_similarity", "rank_correlation", "trust_check"]


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
        2 (see :func:`~maco_tf.outputs.references.top_activating`).
    baseline_images
        ``(B, H'', W'', C)`` natural images not selected for the unit, at least 1.
    layers
        Layers to compare; default :func:`~maco_tf.outputs.activations.default_layers`
        (``max_layers`` of them).
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
    paths, tensors = resolve_layers(keras_model, layers, max_layers)
    profiles = _profiles(
        layer_means(vis, keras_model, tensors, (vis_range, target), batch_size),
        layer_means(refs, keras_model, tensors, (ref_range, target), batch_size),
        layer_means(base, keras_model, tensors, (ref_range, target), batch_size),
    )
    return TrustReport(_names(vis.shape[0], names, visualizations), tuple(paths), *profiles)


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
        ``(N, H', W', C)`` natural images, or a folder of photos
        (:func:`~maco_tf.outputs.references.load_photos`, read at the model's input size, range
        0-255). ``N >= k + 1``.
    k
        References per combination, ``k >= 2``.
    layers
        Layers to compare; default :func:`~maco_tf.outputs.activations.default_layers`.
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
    paths, tensors = resolve_layers(model, layers, max_layers)
    vis_features = layer_means(vis, model, tensors, (vis_range, target), batch_size)
    nb_outputs = len(compiled.outputs)
    scores, *pool_features = batched_outputs(  # one pass over the photos: scores and features
        pool,
        model,
        [*compiled.outputs, *tensors],
        (pool_range, target),
        batch_size,
        lambda outputs: [
            combination_values(compiled, outputs[:nb_outputs]),
            *[spatial_mean(output) for output in outputs[nb_outputs:]],
        ],
    )
    top = top_indices(scores, k)
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

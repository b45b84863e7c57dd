"""Fréchet distance between two sets of images in a model's feature space (the FID).

:func:`fid` compares two image sets through the features of :mod:`maco_tf.outputs.features`
(the penultimate layer of the model, by default the judge of :mod:`maco_tf.outputs.judges`,
and the natural reference photos when the second set is not given);
:func:`fid_from_features` is its estimator on ``(N, D)`` features and
:func:`frechet_distance` the closed form between two Gaussians. The MACO paper (Fel et al.,
NeurIPS 2023, section 4) uses it between visualizations and real images of the same classes;
lower is closer. Bad input raises :data:`~maco_tf.outputs.features.MetricInputError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from maco_tf.models.images import DEFAULT_BATCH_SIZE, ImagesLike, ModelLike
from maco_tf.outputs.features import MetricInputError, image_pair, pair_features

__all__ = ["fid", "fid_from_features", "frechet_distance"]

#: Relative residual ``||sqrtm(A)^2 - A|| / ||A||`` above which the FID's matrix square root
#: is recomputed on regularised covariances.
_SQRTM_TOLERANCE = 1e-6


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
        A Keras model or a :class:`~maco_tf.LoadedModel`; default
        :func:`~maco_tf.outputs.judges.default_judge`.
    layer
        Feature layer; default the penultimate one (see
        :func:`~maco_tf.outputs.features.feature_extractor`).
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
    pair = image_pair(
        model, (images_a, "images_a", values_range), (images_b, "images_b", values_range_b)
    )
    for name, array in (("images_a", pair.images), ("images_b", pair.others)):
        if array.shape[0] < 2:
            raise MetricInputError(
                f"{name} has {array.shape[0]} image(s); the FID fits a covariance and needs at "
                f"least 2 per set"
            )
    features_a, features_b = pair_features(pair, layer, model_range, batch_size)
    return fid_from_features(features_a, features_b, eps=eps)

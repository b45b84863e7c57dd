"""Feature inversion on the tiny CNN of conftest (conv1 -> relu1 -> conv2/2 -> tanh -> GAP ...)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import maco_tf
from maco_tf.core.objectives import compile_objective
from maco_tf.targets.inversion import (
    InversionTargetError,
    inversion_objective,
    invert,
    prepare_target,
)

from .planted import maco_phase_randomized

SIZE = 32
# Whole images (crops=0, invert's default) keep the MACO image aligned with the target; a
# 96 px parameterization is resized to the 32 px input at every step.
SETTINGS = {"steps": 128, "size": (96, 96), "seed": 0, "noise": 0.08}


def bright_square(top: int = 8, left: int = 8, side: int = 16) -> np.ndarray:
    image = -np.ones((SIZE, SIZE, 3), np.float32)
    image[top : top + side, left : left + side] = 1.0
    return image


def _correlation(image: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation of the luminances, at the target's size."""
    small = tf.image.resize(image[None], target.shape[:2])[0].numpy()
    return float(np.corrcoef(small.mean(-1).ravel(), target.mean(-1).ravel())[0, 1])


@pytest.fixture(scope="module")
def square_run(tiny_model):
    return invert(tiny_model, bright_square(), ["relu1", "pool"], **SETTINGS)


def test_early_layer_inversion_shows_the_square(square_run):
    target = bright_square()
    run = square_run
    assert run.names == ("Inversion#relu1", "Inversion#pool")
    assert run.images.shape == (2, 96, 96, 3)
    assert np.all(np.isfinite(run.images)) and np.abs(run.images).max() <= 1.0
    early, late = (_correlation(image, target) for image in run.images)
    rng = np.random.default_rng(0)
    copies = [_correlation(maco_phase_randomized(run.images[0], rng), target) for _ in range(40)]
    print(
        f"correlation with the target: relu1 {early:.3f}, pool {late:.3f}, random-phase copies "
        f"of the relu1 image {np.mean(copies):.3f} +- {np.std(copies):.3f}; cosine at the end "
        f"{run.loss_history[-1].round(3)}"
    )
    assert early > 0.7
    assert early > late + 0.2
    assert early > np.mean(copies) + 2 * np.std(copies)
    # the similarity itself went up
    assert run.loss_history[-1, 0] > 0.85
    assert np.all(run.loss_history[-8:].mean(axis=0) > run.loss_history[0])


def test_inversion_follows_the_target(tiny_model):
    """A square elsewhere gives an image that correlates with that square, not the first."""
    first, moved = bright_square(2, 2, 14), bright_square(16, 16, 14)
    run = invert(tiny_model, moved, "relu1", **SETTINGS)
    image = run.images[0]
    print(
        f"moved square: {_correlation(image, moved):.3f} vs first {_correlation(image, first):.3f}"
    )
    assert _correlation(image, moved) > 0.5
    assert _correlation(image, moved) > _correlation(image, first) + 0.5


def test_l2_metric_reduces_the_distance(tiny_model):
    run = invert(tiny_model, bright_square(), "act2", metric="l2", **{**SETTINGS, "steps": 32})
    history = run.loss_history[:, 0]
    assert history.max() <= 0.0
    assert history[-4:].mean() > history[0] + 0.1


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_loss_is_best_at_the_target_activations(tiny_model, metric):
    objective = inversion_objective(tiny_model, bright_square(), ["relu1", "pool"], metric=metric)
    compiled = compile_objective(objective)
    assert compiled.names == ("Inversion#relu1", "Inversion#pool")
    features = tf.keras.Model(tiny_model.inputs[0], objective.layers[0])
    target = features(bright_square()[None])
    other = features(-bright_square()[None])
    for row in range(2):
        mask = tf.constant(compiled.masks[0][row][None])
        best = float(compiled.funcs[0](target, mask)[0])
        worse = float(compiled.funcs[0](other, mask)[0])
        assert best == pytest.approx(1.0 if metric == "cosine" else 0.0, abs=1e-3)
        assert worse < best


def test_target_is_resized_and_checked(tiny_model, gray_model):
    big = tf.image.resize(bright_square()[None], (64, 48))[0].numpy()
    batch = prepare_target(tiny_model, big)
    assert batch.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(batch[0], tf.image.resize(big, (SIZE, SIZE)).numpy())
    assert inversion_objective(tiny_model, big, "conv1").names == [["Inversion#conv1"]]
    assert prepare_target(gray_model, np.zeros((SIZE, SIZE))).shape == (1, SIZE, SIZE, 1)
    with pytest.raises(InversionTargetError, match="1 channel.*3-channel"):
        inversion_objective(tiny_model, np.zeros((SIZE, SIZE, 1)), "conv1")
    with pytest.raises(InversionTargetError, match="3 channel.*1-channel"):
        inversion_objective(gray_model, bright_square(), "conv1")
    with pytest.raises(InversionTargetError, match="height, width, channels"):
        inversion_objective(tiny_model, np.zeros((2, SIZE, SIZE, 3)), "conv1")
    with pytest.raises(InversionTargetError, match="NaN"):
        inversion_objective(tiny_model, np.full((SIZE, SIZE, 3), np.nan), "conv1")


def test_bad_layers_and_settings(tiny_model):
    with pytest.raises(maco_tf.UnknownLayerError, match="relu"):
        inversion_objective(tiny_model, bright_square(), ["relu1", "relu9"])
    with pytest.raises(InversionTargetError, match="metric"):
        inversion_objective(tiny_model, bright_square(), "relu1", metric="l1")
    with pytest.raises(InversionTargetError, match="no layer"):
        inversion_objective(tiny_model, bright_square(), [])
    assert issubclass(InversionTargetError, maco_tf.MacoError)


def test_save_inversion(square_run, tmp_path):
    paths = maco_tf.save_visualization(
        tmp_path, "inversion_relu1", square_run.images[0], square_run.transparency[0]
    )
    assert paths["image"].stat().st_size > 0

import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import Objective

import maco_tf
from maco_tf.core.objectives import ComposedObjective, compile_objective
from maco_tf.errors import InvalidSettingError

SETTINGS = dict(steps=12, crops=2, size=40, seed=1, whole_views=0, method="pixel")


def _tv(images: np.ndarray) -> float:
    return float(np.abs(np.diff(images, axis=1)).mean() + np.abs(np.diff(images, axis=2)).mean())


def test_composes_like_diversity(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", [0, 1])
    composed = objective - 0.05 * maco_tf.total_variation() - 0.1 * maco_tf.diversity("conv1")
    assert isinstance(composed, ComposedObjective)
    compiled = compile_objective(composed)
    assert [t.name for t in compiled.view_terms] == ["total_variation"]
    assert compiled.view_terms[0].weight == pytest.approx(-0.05)
    assert len(compiled.batch_terms) == 1
    assert compiled.nb_combinations == 2


def test_total_variation_lowers_the_total_variation(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", [0, 1])
    plain = maco_tf.visualize(objective, **SETTINGS)
    smooth = maco_tf.visualize(objective - 1.0 * maco_tf.total_variation(), **SETTINGS)
    assert _tv(smooth.images) < 0.7 * _tv(plain.images)


@pytest.mark.parametrize("term", [maco_tf.l1(), maco_tf.l2(), maco_tf.blur_penalty(1.5)])
def test_each_penalty_lowers_its_own_value(tiny_model, term):
    objective = Objective.neuron(tiny_model, "logits", 2)
    plain = maco_tf.visualize(objective, **SETTINGS)
    penalised = maco_tf.visualize(objective - 2.0 * term, **SETTINGS)
    before = float(tf.reduce_mean(term.func(tf.constant(plain.images))))
    after = float(tf.reduce_mean(term.func(tf.constant(penalised.images))))
    assert after < before


def test_penalty_values_on_known_images():
    flat = tf.fill((2, 8, 8, 3), 0.25)
    assert np.allclose(maco_tf.total_variation().func(flat), 0.0)
    assert np.allclose(maco_tf.l1().func(flat), 0.25)
    assert np.allclose(maco_tf.l2(0.25).func(flat), 0.0, atol=1e-3)
    assert np.allclose(maco_tf.blur_penalty().func(flat), 0.0, atol=1e-7)
    stripes = tf.constant(np.indices((1, 8, 8, 1))[2] % 2, tf.float32)
    assert np.allclose(maco_tf.total_variation().func(stripes), 1.0)  # every row changes


def test_a_penalty_must_be_subtracted(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", 0)
    with pytest.raises(InvalidSettingError, match="penalty: subtract it"):
        objective + 0.1 * maco_tf.total_variation()
    with pytest.raises(InvalidSettingError, match="penalty"):
        objective - (-0.1) * maco_tf.l1()
    with pytest.raises(InvalidSettingError, match="nothing to maximise"):
        maco_tf.visualize(maco_tf.total_variation(), **SETTINGS)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1"])
def test_blur_sigma_is_checked(bad):
    with pytest.raises(InvalidSettingError, match="sigma must be a finite number > 0"):
        maco_tf.blur_penalty(bad)


def test_a_regulariser_of_the_wrong_shape_is_named(tiny_model):
    from maco_tf.core.regularizers import Regularizer

    per_pixel = Regularizer("per_pixel", lambda views: tf.reduce_mean(views, axis=-1))
    objective = Objective.neuron(tiny_model, "logits", 0) - 1.0 * per_pixel
    with pytest.raises(InvalidSettingError, match="per_pixel regulariser returned shape"):
        maco_tf.visualize(objective, **SETTINGS)

import inspect
import warnings

import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import Objective
from xplique.features_visualizations import optimize as xplique_optimize
from xplique.features_visualizations.regularizers import total_variation_reg
from xplique.features_visualizations.transformations import (
    compose_transformations,
    random_flip,
    random_jitter,
)

import maco_tf
from maco_tf.errors import InvalidSettingError

FAST = dict(nb_steps=4, custom_shape=(48, 48))


def _tv(images) -> float:
    images = np.asarray(images)
    return float(np.abs(np.diff(images, axis=1)).mean() + np.abs(np.diff(images, axis=2)).mean())


def test_same_signature_and_defaults_as_xplique():
    ours = inspect.signature(maco_tf.optimize).parameters
    theirs = inspect.signature(xplique_optimize).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name, parameter in theirs.items():
        assert ours[name].default == parameter.default, name


@pytest.mark.parametrize("use_fft", [True, False])
def test_same_shapes_names_and_ranges_as_xplique(tiny_model, use_fft):
    objective = Objective.neuron(tiny_model, "logits", [0, 1])
    theirs, their_names = xplique_optimize(objective, use_fft=use_fft, **FAST)
    ours, names = maco_tf.optimize(objective, use_fft=use_fft, seed=0, **FAST)
    assert len(ours) == len(theirs) == 1
    assert ours[0].shape == theirs[0].shape == (2, 48, 48, 3)
    assert list(names) == list(their_names)
    assert 0.0 <= float(tf.reduce_min(ours[0])) and float(tf.reduce_max(ours[0])) <= 1.0
    ranged, _ = maco_tf.optimize(objective, use_fft=use_fft, values_range=(-1, 1), seed=0, **FAST)
    assert float(tf.reduce_min(ranged[0])) < 0.0 <= 1.0


def test_xplique_total_variation_acts(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", [0, 1])
    settings = dict(use_fft=False, transformations=None, seed=0, nb_steps=12, custom_shape=(40, 40))
    plain, _ = maco_tf.optimize(objective, **settings)
    smooth, _ = maco_tf.optimize(objective, regularizers=[total_variation_reg(0.01)], **settings)
    ours, _ = maco_tf.optimize(
        objective, regularizers=[0.5 * maco_tf.total_variation()], **settings
    )
    assert _tv(smooth[0]) < 0.8 * _tv(plain[0])
    assert _tv(ours[0]) < 0.8 * _tv(plain[0])


def test_xplique_transformations_accepted(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", 3)
    for transformations in (
        [random_jitter(4), random_flip(), "rotate:5"],
        compose_transformations([random_jitter(4), random_flip()]),
    ):
        images, _ = maco_tf.optimize(objective, transformations=transformations, seed=0, **FAST)
        assert images[0].shape == (1, 48, 48, 3)


def test_save_every_keeps_xplique_steps(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", [0, 1])
    settings = dict(nb_steps=5, custom_shape=(40, 40), seed=2)
    saved, _ = maco_tf.optimize(objective, save_every=2, **settings)
    last, _ = maco_tf.optimize(objective, **settings)
    theirs, _ = xplique_optimize(objective, save_every=2, nb_steps=5, custom_shape=(40, 40))
    assert len(saved) == len(theirs) == 3  # steps 2, 4 and the last, 5
    np.testing.assert_allclose(saved[-1], last[0], atol=1e-5)
    assert np.abs(np.asarray(saved[0]) - np.asarray(saved[-1])).max() > 1e-3


def test_untraceable_callable_runs_eagerly_after_one_line(tiny_model):
    def numpy_mean(images):
        return tf.constant(images.numpy().mean(axis=(1, 2, 3)))

    objective = Objective.neuron(tiny_model, "logits", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, _ = maco_tf.optimize(
            objective, regularizers=[numpy_mean], nb_steps=2, custom_shape=(32, 32), seed=0
        )
    messages = [
        str(w.message) for w in caught if issubclass(w.category, maco_tf.EagerFallbackWarning)
    ]
    assert len(messages) == 1 and "numpy_mean" in messages[0] and "\n" not in messages[0]
    assert images[0].shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(regularizers=[lambda images: images]), "returned shape"),
        (dict(regularizers=[-0.05 * maco_tf.total_variation()]), "regularizers\\[0\\] has weight"),
        (dict(regularizers=[3]), "regularizers\\[0\\] is 3"),
        (dict(transformations=["spin:2"]), "unknown transform 'spin'"),
        (dict(transformations=["jitter:-1"]), "jitter takes pixels >= 0"),
        (dict(image_normalizer="clip"), "image_normalizer='clip'"),
        (dict(save_every=9), "snapshots"),
    ],
)
def test_bad_input_is_one_line(tiny_model, arguments, message):
    objective = Objective.neuron(tiny_model, "logits", 0)
    with pytest.raises(InvalidSettingError, match=message) as info:
        maco_tf.optimize(objective, **{**FAST, **arguments})
    assert "\n" not in str(info.value)

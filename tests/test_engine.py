import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import Objective

import maco_tf
from maco_tf.core.augment import lane_sizes
from maco_tf.core.engine import LoopCache, model_in_lanes
from maco_tf.core.visualization import auto_lanes


def _loops(cache):
    return [entry[1] for entry in cache._entries.values()]


def test_traced_once_and_reused(tiny_model, fast_settings):
    cache = LoopCache()
    for unit in ([0, 1], [2, 3], [4, 5]):
        maco_tf.visualize(
            Objective.neuron(tiny_model, "logits", unit), cache=cache, **fast_settings
        )
    # longer runs reuse the same trace: steps and schedules are tensors
    maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", [0, 1]),
        cache=cache,
        **{**fast_settings, "steps": 11, "box_size": 0.3},
    )
    loops = _loops(cache)
    assert len(loops) == 1
    assert loops[0].trace_count == 1


def test_new_loops_do_not_set_off_the_retracing_warning(tiny_model, fast_settings, caplog):
    """Six objective structures make six loops, each traced once: TensorFlow must not warn."""
    cache = LoopCache()
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for count in range(1, 7):
            maco_tf.visualize(
                Objective.neuron(tiny_model, "logits", list(range(count))),
                cache=cache,
                **{**fast_settings, "steps": 2},
            )
    loops = _loops(cache)
    assert len(loops) == 6
    assert all(loop.trace_count == 1 for loop in loops)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_same_seed_same_images(tiny_model, fast_settings):
    objective = Objective.neuron(tiny_model, "logits", [0, 7])
    first = maco_tf.visualize(objective, **fast_settings)
    second = maco_tf.visualize(objective, **fast_settings)
    np.testing.assert_allclose(first.images, second.images, atol=1e-4)
    if not tf.config.list_logical_devices("GPU"):  # GPU kernels add with atomics
        np.testing.assert_array_equal(first.images, second.images)
        np.testing.assert_array_equal(first.transparency, second.transparency)
    third = maco_tf.visualize(objective, **{**fast_settings, "seed": 1})
    assert np.abs(first.images - third.images).max() > 0.05


def test_images_of_a_batch_are_independent(tiny_model, fast_settings):
    """An image does not depend on its batch mates, nor on the chunking."""
    together = maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", [3, 8, 9]), batch_size=3, **fast_settings
    )
    chunked = maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", [3, 8, 9]), batch_size=2, **fast_settings
    )
    alone = maco_tf.visualize(Objective.neuron(tiny_model, "logits", [3]), **fast_settings)
    np.testing.assert_allclose(together.images, chunked.images, atol=1e-3)
    np.testing.assert_allclose(together.images[0], alone.images[0], atol=1e-3)
    np.testing.assert_allclose(
        together.transparency[0], alone.transparency[0], rtol=1e-3, atol=1e-6
    )
    other = maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", [3, 1, 2]), batch_size=3, **fast_settings
    )
    np.testing.assert_allclose(other.images[0], together.images[0], atol=1e-3)


def test_objective_increases(tiny_model):
    result = maco_tf.visualize(
        Objective.channel(tiny_model, "conv1", [2, 5]),
        steps=40,
        crops=4,
        size=48,
        seed=0,
        whole_views=0,
        noise=0.08,
        box_size=0.6,  # a fixed crop size keeps the losses of early and late steps comparable
    )
    history = result.loss_history
    assert history.shape == (40, 2)
    # on this tiny random net single trajectories are chaotic (Nadam at lr 1): check the batch
    assert history[-5:].mean() > history[:5].mean()
    assert np.all(result.transparency >= 0) and np.all(result.transparency.sum((1, 2, 3)) > 0)


@pytest.mark.parametrize("method", ["fourier", "pixel"])
def test_baselines_share_the_loop(tiny_model, fast_settings, method):
    result = maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", [0, 1]), method=method, **fast_settings
    )
    assert result.images.shape == (2, 48, 48, 3) and result.method == method


def test_xla_loop_is_reproducible_and_optimises(tiny_model, fast_settings):
    # XLA draws other random numbers than graph mode for the same seed (see maco_tf.core.augment),
    # so XLA is compared with itself, and checked to optimise like graph mode
    objective = Objective.channel(tiny_model, "conv1", [0, 3])
    settings = {**fast_settings, "steps": 24, "box_size": 0.6}
    graph = maco_tf.visualize(objective, **settings)
    xla = maco_tf.visualize(objective, jit_compile=True, **settings)
    again = maco_tf.visualize(objective, jit_compile=True, **settings)
    np.testing.assert_allclose(xla.images, again.images, atol=1e-4)
    for run in (graph, xla):
        assert np.all(run.loss_history[-4:].mean(0) > run.loss_history[:4].mean(0))


def test_whole_image_mode(tiny_model, fast_settings):
    result = maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", 0), **{**fast_settings, "crops": 0}
    )
    assert result.images.shape == (1, 48, 48, 3)


def test_dead_unit_is_reported(fast_settings):
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(
        2,
        3,
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(-1.0),
        activation="relu",
        name="dead",
    )(inputs)  # noqa: E501
    model = keras.Model(inputs, x)
    with pytest.warns(maco_tf.DeadObjectiveWarning, match="zero gradients"):
        result = maco_tf.visualize(Objective.channel(model, "dead", 0), **fast_settings)
    assert result.dead.tolist() == [True]


def test_fresh_and_pooled_noise_both_optimise(tiny_model, fast_settings):
    objective = Objective.channel(tiny_model, "act2", [0, 3])  # nonlinear: noise matters
    settings = {**fast_settings, "steps": 16, "box_size": 0.6}
    pooled = maco_tf.visualize(objective, **settings)  # the default
    assert pooled.settings["engine"]["pooled_noise"]
    fresh = maco_tf.visualize(objective, pooled_noise=False, **settings)
    assert not np.allclose(pooled.images, fresh.images)
    for run in (pooled, fresh):
        assert run.loss_history[-4:].mean() > run.loss_history[:4].mean()
    again = maco_tf.visualize(objective, pooled_noise=True, **settings)
    np.testing.assert_allclose(pooled.images, again.images, atol=1e-4)


@pytest.mark.parametrize("lanes", [1, 2, 3, 5, 7])
def test_model_in_lanes_gives_the_outputs_of_one_batch(lanes):
    """Every output (several of them, of different ranks) in the views' order, for even and
    uneven splits; more lanes than views fall back to one lane per view."""
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    conv = keras.layers.Conv2D(4, 3)(inputs)
    model = keras.Model(inputs, [pooled, conv])
    crops = tf.random.stateless_uniform((3 * 5, 8, 8, 3), seed=(1, 2))
    grouped = tf.reshape(crops, (3, 5, 8, 8, 3))
    sizes = lane_sizes(5, lanes)
    assert sum(sizes) == 5 and len(sizes) == min(lanes, 5)
    per_lane = [tf.reshape(p, (-1, 8, 8, 3)) for p in tf.split(grouped, sizes, axis=1)]
    expected = model(crops)
    outputs = model_in_lanes(model, per_lane, nb_images=3)
    assert len(outputs) == 2
    for got, want in zip(outputs, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lanes_change_images_at_rounding_level_only(tiny_model, fast_settings):
    objective = Objective.neuron(tiny_model, "logits", [0, 7])
    settings = {**fast_settings, "crops": 4}
    one = maco_tf.visualize(objective, lanes=1, **settings)
    two = maco_tf.visualize(objective, lanes=2, **settings)
    assert (one.config.engine.lanes, two.config.engine.lanes) == (1, 2)
    np.testing.assert_allclose(one.images, two.images, atol=1e-3)
    np.testing.assert_allclose(one.transparency, two.transparency, rtol=1e-3, atol=1e-6)


@pytest.mark.skipif(bool(tf.config.list_logical_devices("GPU")), reason="CPU kernels only")
def test_reruns_are_bit_identical_with_lanes_and_whole_views(tiny_model, fast_settings):
    """Every gradient sum of the step has a fixed order on CPU: the images repeat bit for bit.

    Lanes and whole views give the images three consumers (TensorFlow's ``AddN`` then sums
    their gradients in a timing-dependent order) and many overlapping crops per image
    (TensorFlow's CPU crop gradient races on them).
    """
    objective = Objective.neuron(tiny_model, "logits", [0, 7])
    settings = {**fast_settings, "steps": 12, "crops": 8, "whole_views": 1, "lanes": 2}
    runs = [maco_tf.visualize(objective, **settings) for _ in range(3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.images, runs[0].images)
        np.testing.assert_array_equal(run.transparency, runs[0].transparency)


def test_auto_lanes(tiny_model, fast_settings):
    expected = 1 if tf.config.list_logical_devices("GPU") else 2
    assert auto_lanes() == expected
    assert auto_lanes(jit_compile=True) == 1
    result = maco_tf.visualize(Objective.neuron(tiny_model, "logits", 0), **fast_settings)
    assert result.config.engine.lanes == expected

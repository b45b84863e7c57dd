import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import Objective

import maco_tf
from maco_tf import targets
from maco_tf.core.objectives import compile_objective
from maco_tf.targets.units import DirectionShapeError, TargetIndexError


@pytest.fixture(scope="module")
def nested_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), alpha=0.35, include_top=False
    )
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x), name="outer")


def _loss_values(objective, outputs):
    """Each combination's loss on ``outputs`` (one sample), via the objective's own funcs."""
    compiled = compile_objective(objective)
    return [
        float(tf.reduce_mean(compiled.funcs[0](outputs, tf.constant(mask[None]))))
        for mask in compiled.masks[0]
    ]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda m: targets.neuron(m, "logits", [1, 7]),
            lambda m: Objective.neuron(m, "logits", [1, 7]),
        ),
        (
            lambda m: targets.channel(m, "conv2", [0, 5]),
            lambda m: Objective.channel(m, "conv2", [0, 5]),
        ),
        (
            lambda m: targets.direction(m, "dense", [np.arange(16.0), -np.ones(16)]),
            lambda m: Objective.direction(
                m, "dense", [np.arange(16.0, dtype=np.float32), -np.ones(16, np.float32)]
            ),
        ),
    ],
    ids=["neuron", "channel", "direction"],
)
def test_same_as_xplique_on_top_level_layers(tiny_model, ours, theirs):
    a, b = ours(tiny_model), theirs(tiny_model)
    assert a.names == b.names
    assert a.layers[0] is b.layers[0]
    compiled_a, compiled_b = compile_objective(a), compile_objective(b)
    np.testing.assert_array_equal(compiled_a.masks[0], compiled_b.masks[0])
    shape = (1, *a.layers[0].shape[1:])
    outputs = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float32"))
    np.testing.assert_allclose(_loss_values(a, outputs), _loss_values(b, outputs), rtol=1e-6)


def test_class_logits_named_after_classes(tiny_model):
    names = [f"thing{i}" for i in range(10)]
    objective = targets.class_logits(tiny_model, [3, 0], class_names=names)
    assert objective.names == [["thing3", "thing0"]]
    plain = targets.class_logits(tiny_model, 4)
    assert plain.names == [["Neuron#logits_4"]]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda m: targets.channel(m, "conv1", [0, 8]),
            "channel 8 is out of range for layer 'conv1' with 8 channels (valid: 0-7)",
        ),
        (lambda m: targets.neuron(m, "logits", -1), "neuron -1 is out of range"),
        (
            lambda m: targets.class_logits(m, [10]),
            "class 10 is out of range for layer 'logits' with 10 units (valid: 0-9)",
        ),
        (lambda m: targets.channel(m, "conv1", []), "no channel index given"),
        (lambda m: targets.neuron(m, "logits", [1.5]), "must be integers"),
    ],
)
def test_index_errors(tiny_model, build, message):
    with pytest.raises(TargetIndexError) as info:
        build(tiny_model)
    assert message in str(info.value)
    assert isinstance(info.value, maco_tf.MacoError)


def test_channel_vector_direction_on_a_conv_layer(tiny_model):
    objective = targets.direction(tiny_model, "conv2", np.linspace(-1, 1, 8))
    assert objective.masks[0][0].shape == (1, 1, 8)
    result = maco_tf.visualize(objective, steps=2, crops=1, size=None, seed=0)
    assert np.isfinite(result.objective_values).all()


def test_direction_shapes(tiny_model):
    stacked = targets.direction(tiny_model, "conv2", np.ones((3, 8), np.float32))
    assert len(stacked.names[0]) == 3
    assert stacked.names[0][0] == "Direction#conv2_0"
    with pytest.raises(DirectionShapeError, match=r"give vectors of shape \(8,\)"):
        targets.direction(tiny_model, "conv2", np.ones(5))
    with pytest.raises(DirectionShapeError, match="NaN"):
        targets.direction(tiny_model, "conv2", np.full(8, np.nan))


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.ones(8, np.complex64), "must be real; got complex"),
        ([np.ones(8), np.ones(8) * 1j], "must be real; got complex"),
        (np.array(["a"] * 8), "must be real numbers"),
        (np.full(8, 1e39), "NaN or infinite"),  # finite in float64, not in float32
    ],
)
def test_directions_must_be_real_and_finite_in_float32(tiny_model, vectors, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning or overflow warning on the way
        with pytest.raises(DirectionShapeError, match=message):
            targets.direction(tiny_model, "conv2", vectors)


def test_index_layer_is_named_after_the_layer(tiny_model):
    assert targets.channel(tiny_model, 1, 2).names == [["Channel#conv1_2"]]


def test_select_keeps_the_compiled_structure(tiny_model):
    objective = targets.channel(tiny_model, "conv1", [0, 1, 2, 3])
    first, second = targets.select(objective, [0, 1]), targets.select(objective, [2, 3])
    assert first.names == [["Channel#conv1_0", "Channel#conv1_1"]]
    key_a = compile_objective(first).structure_key()
    assert key_a == compile_objective(second).structure_key()
    np.testing.assert_array_equal(
        compile_objective(second).masks[0], compile_objective(objective).masks[0][2:]
    )


def test_nested_path_objectives_produce_images(nested_model):
    backbone = nested_model.layers[2].name
    objective = targets.channel(nested_model, f"{backbone}/block_13_expand_relu", [0, 3])
    objective = objective + targets.neuron(nested_model, "logits", 1)
    result = maco_tf.visualize(
        objective, steps=3, crops=1, size=(96, 96), values_range=(0, 255), seed=0
    )
    assert result.images.shape == (2, 96, 96, 3)
    assert np.all(np.isfinite(result.images))
    assert result.names[0] == f"Channel#{backbone}/block_13_expand_relu_0 & Neuron#logits_1"
    assert not np.allclose(result.images[0], result.images[1])
    with pytest.raises(TargetIndexError, match="valid: 0-191"):
        targets.channel(nested_model, f"{backbone}/block_13_expand_relu", 192)

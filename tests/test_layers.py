import keras
import numpy as np
import pytest

from maco_tf.errors import IncompatibleModelError, UnknownLayerError
from maco_tf.models.layers import check_scope_names, find_layer, layer_output, layer_paths


@pytest.fixture(scope="module")
def backbone() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), alpha=0.35, include_top=False
    )


@pytest.fixture(scope="module")
def functional_outer(backbone) -> keras.Model:
    inputs = keras.Input((96, 96, 3), name="rgb")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x), name="outer")


@pytest.fixture(scope="module")
def sequential_outer(backbone) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((96, 96, 3)),
            backbone,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="seq_head"),
        ],
        name="seq",
    )


def _evaluate(model, tensor, x):
    return np.asarray(keras.Model(model.inputs[0], tensor)(x))


def _images(n=2, size=96):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_top_level_name_index_and_numeric_string(tiny_model):
    by_name = layer_output(tiny_model, "conv2")
    assert by_name is tiny_model.get_layer("conv2").output
    assert layer_output(tiny_model, 2) is tiny_model.layers[2].output
    assert layer_output(tiny_model, -1) is tiny_model.get_layer("logits").output
    assert layer_output(tiny_model, "-1") is tiny_model.get_layer("logits").output
    assert layer_output(tiny_model, 0) is tiny_model.inputs[0]


def test_layer_paths_expand_nested_models(functional_outer, backbone):
    paths = layer_paths(functional_outer)
    assert paths[:3] == ["rgb", "scale", backbone.name]
    assert f"{backbone.name}/block_13_expand_relu" in paths
    assert paths[-2:] == ["pool", "head"]
    assert len(paths) == len(functional_outer.layers) + len(backbone.layers)


def test_nested_path_in_functional_model(functional_outer, backbone):
    path = f"{backbone.name}/block_13_expand_relu"
    tensor = layer_output(functional_outer, path)
    assert tuple(tensor.shape) == (None, 6, 6, 192)
    x = _images()
    inner = keras.Model(backbone.inputs[0], backbone.get_layer("block_13_expand_relu").output)
    expected = np.asarray(inner(x / 127.5 - 1))
    np.testing.assert_allclose(_evaluate(functional_outer, tensor, x), expected, atol=1e-4)
    chain = find_layer(functional_outer, path)
    assert [layer.name for layer in chain] == [backbone.name, "block_13_expand_relu"]


def test_nested_model_itself_is_its_output_in_the_outer_graph(functional_outer, backbone):
    tensor = layer_output(functional_outer, backbone.name)
    x = _images(1)
    expected = np.asarray(backbone(x / 127.5 - 1))
    np.testing.assert_allclose(_evaluate(functional_outer, tensor, x), expected, atol=1e-4)


def test_nested_path_in_sequential_model(sequential_outer, backbone):
    tensor = layer_output(sequential_outer, f"{backbone.name}/block_3_project")
    x = _images(1)
    inner = keras.Model(backbone.inputs[0], backbone.get_layer("block_3_project").output)
    np.testing.assert_allclose(
        _evaluate(sequential_outer, tensor, x), np.asarray(inner(x)), atol=1e-4
    )


def test_two_levels_of_nesting():
    keras.utils.set_random_seed(1)
    core_in = keras.Input((8, 8, 3))
    core = keras.Model(core_in, keras.layers.Conv2D(4, 3, name="deep_conv")(core_in), name="core")
    mid_in = keras.Input((8, 8, 3))
    mid = keras.Model(mid_in, keras.layers.ReLU(name="mid_relu")(core(mid_in)), name="mid")
    outer_in = keras.Input((8, 8, 3))
    x = keras.layers.Activation("tanh", name="pre")(outer_in)
    outer = keras.Model(outer_in, keras.layers.Flatten()(mid(x)), name="top")
    assert "mid/core/deep_conv" in layer_paths(outer)
    tensor = layer_output(outer, "mid/core/deep_conv")
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    expected = np.asarray(core(np.tanh(x)))
    np.testing.assert_allclose(_evaluate(outer, tensor, x), expected, atol=1e-5)
    by_index = layer_output(outer, "mid/1/1")  # numeric parts are indices
    np.testing.assert_allclose(_evaluate(outer, by_index, x), expected, atol=1e-5)


def test_unknown_name_suggests_close_names(tiny_model):
    with pytest.raises(UnknownLayerError) as info:
        layer_output(tiny_model, "conv_1")
    message = str(info.value)
    assert "unknown layer 'conv_1' in model 'tiny'" in message
    assert "did you mean: conv1" in message and "\n" not in message


def test_unknown_nested_name_suggests_full_paths(functional_outer, backbone):
    with pytest.raises(UnknownLayerError) as info:
        layer_output(functional_outer, f"{backbone.name}/block_13_expnd_relu")
    assert f"{backbone.name}/block_13_expand_relu" in str(info.value)
    with pytest.raises(UnknownLayerError) as info:
        layer_output(functional_outer, "block_13_expand_relu")  # forgot the backbone prefix
    assert f"did you mean: {backbone.name}/block_13_expand_relu" in str(info.value)


@pytest.mark.parametrize(
    ("layer", "fragment"),
    [
        ("head/x", "is a Dense, not a nested model"),
        (99, "layer index 99 out of range for model 'outer' with 5 layers (valid: -5 to 4)"),
        ("scale//x", "invalid layer path"),
        ("", "invalid layer path"),
    ],
)
def test_bad_paths(functional_outer, layer, fragment):
    with pytest.raises(UnknownLayerError) as info:
        layer_output(functional_outer, layer)
    assert fragment in str(info.value)


def test_bad_type(tiny_model):
    with pytest.raises(TypeError):
        layer_output(tiny_model, 1.5)


def test_model_without_inputs():
    model = keras.Sequential([keras.layers.Dense(3, name="d")])
    with pytest.raises(IncompatibleModelError, match="no defined inputs"):
        layer_output(model, "d")


def test_layer_label_names_indices_and_paths(tiny_model):
    from maco_tf.models.layers import layer_label

    assert layer_label(tiny_model, "conv2") == "conv2"
    assert layer_label(tiny_model, -1) == "logits"


def test_softmax_checks():
    import keras

    from maco_tf.models.layers import as_probabilities, is_softmax_layer

    assert is_softmax_layer(keras.layers.Softmax())
    assert is_softmax_layer(keras.layers.Activation("softmax"))
    assert not is_softmax_layer(keras.layers.Dense(3, activation="softmax"))
    probabilities = np.array([[0.2, 0.8], [1.0, 0.0]])
    np.testing.assert_array_equal(as_probabilities(probabilities), probabilities)
    logits = as_probabilities(np.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(logits, [[0.25, 0.75]])


def test_layer_names_tensorflow_rejects_as_scopes_are_named():
    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(2, 1, name="odd name")(inner_in), name="bb")
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, keras.layers.Flatten(name="flat")(inner(inputs)))
    with pytest.raises(IncompatibleModelError, match=r"layer 'bb/odd name' .*e\.g\. 'odd_name'"):
        check_scope_names(outer)
    check_scope_names(keras.Model(inner_in, keras.layers.Conv2D(2, 1, name="a.b>c-d_1")(inner_in)))

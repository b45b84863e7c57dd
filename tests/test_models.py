import keras
import numpy as np
import pytest

import maco_tf
from maco_tf import targets
from maco_tf.errors import IncompatibleModelError
from maco_tf.models.contract import ModelContractError
from maco_tf.models.loading import (
    ImageNetPreprocessing,
    ModelLoadError,
    UnknownModelError,
    known_model_names,
    load_model,
)
from maco_tf.models.zoo import ImageNetClasses

from .conftest import build_tiny_cnn


def _softmax_dense_model() -> keras.Model:
    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(6, activation="softmax", name="probs")(x))


def _images(size, n=2, high=255.0):
    return np.random.default_rng(0).uniform(0, high, (n, size, size, 3)).astype("float32")


def test_keras_file_with_softmax_dense_gives_logits(tmp_path):
    original = _softmax_dense_model()
    path = tmp_path / "probs.keras"
    original.save(path)
    loaded = load_model(str(path), values_range=(0, 255))
    assert loaded.source == "file" and loaded.name == "probs"
    assert loaded.values_range == (0.0, 255.0) and loaded.input_size == (16, 16)
    assert loaded.range_reason == "--values-range / values_range="
    assert loaded.logits_layer == "probs_logits" and loaded.class_names is None
    assert "softmax" in loaded.notes[0]
    x = _images(16, high=1.0)
    logits = np.asarray(loaded.model(x))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, np.asarray(original(x)), atol=1e-5)
    assert str(path.resolve()) in loaded.identity


def test_h5_file_with_separate_softmax_layer(tmp_path):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3, name="c")(inputs))
    x = keras.layers.Dense(4, name="scores")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="softmax")(x))
    path = tmp_path / "m.h5"
    model.save(path)
    loaded = load_model(path, values_range=(-1, 1))
    assert loaded.logits_layer == "scores" and loaded.values_range == (-1.0, 1.0)


def test_plain_keras_file_keeps_its_last_layer(tmp_path):
    path = tmp_path / "tiny.keras"
    build_tiny_cnn(rescale=True).save(path)
    loaded = load_model(str(path))
    assert loaded.logits_layer == "logits" and loaded.notes == ()
    assert loaded.values_range == (0.0, 255.0) and "Rescaling" in loaded.range_reason


def test_keras_file_of_unknown_range_asks_for_it(tmp_path):
    path = tmp_path / "tiny.keras"
    build_tiny_cnn().save(path)
    with pytest.raises(ModelContractError, match="--values-range LOW,HIGH .*values_range="):
        load_model(str(path))
    assert load_model(str(path), values_range=(0, 1)).values_range == (0.0, 1.0)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_corrupt_file_names_the_file(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ModelLoadError) as info:
        load_model(str(path))
    assert f"could not read model file '{path}'" in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_keras_archive(tmp_path):
    good = tmp_path / "good.keras"
    build_tiny_cnn().save(good)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(ModelLoadError, match="bad.keras"):
        load_model(str(bad))


def test_missing_file_and_non_savedmodel_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(str(tmp_path / "nope.keras"))
    with pytest.raises(ModelLoadError, match="not a TensorFlow SavedModel"):
        load_model(str(tmp_path))


def test_unknown_name_suggests_known_names():
    with pytest.raises(UnknownModelError) as info:
        load_model("mobilenet_v5")
    assert "unknown model 'mobilenet_v5'" in str(info.value)
    assert "did you mean: MobileNetV2" in str(info.value)
    assert isinstance(info.value, maco_tf.MacoError)
    assert known_model_names()[0] == "efficientnet-lite0"


@pytest.mark.parametrize("name", ["mobilenet_v2", "MobileNetV2", "MOBILENET-V2"])
def test_application_names_are_normalised(name):
    loaded = load_model(
        name, weights=None, application_kwargs={"input_shape": (96, 96, 3), "alpha": 0.35}
    )
    assert loaded.source == "keras.applications"
    assert loaded.values_range == (-1.0, 1.0) and loaded.input_size == (96, 96)
    assert loaded.logits_layer == "predictions"
    assert isinstance(loaded.class_names, ImageNetClasses)
    scores = np.asarray(loaded.model(_images(96, high=1.0)))
    assert not np.allclose(scores.sum(axis=1), 1.0)  # logits, not probabilities


def test_caffe_application_file_gets_its_preprocessing_in_front(tmp_path):
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=3)
    path = tmp_path / "vgg.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.values_range == (0.0, 255.0) and "caffe" in loaded.range_reason
    x = _images(32)
    bgr = x[..., ::-1] - np.array([103.939, 116.779, 123.68], dtype="float32")
    np.testing.assert_allclose(keras.ops.softmax(loaded.model(x)), model(bgr), atol=1e-5)


def test_caffe_application_gets_its_preprocessing_inside():
    loaded = load_model("resnet50", weights=None)
    assert loaded.values_range == (0.0, 255.0)
    assert isinstance(loaded.model.layers[1], ImageNetPreprocessing)
    assert loaded.model.layers[0].name == "image"
    assert loaded.model.get_layer("predictions") is loaded.model.layers[-1]


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("caffe", keras.applications.resnet50.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
    ],
)
def test_preprocessing_layer_matches_keras(mode, reference):
    x = _images(8)
    ours = np.asarray(ImageNetPreprocessing(mode)(x))
    np.testing.assert_allclose(ours, np.asarray(reference(x.copy())), rtol=1e-5, atol=1e-3)


def test_values_range_override_and_bad_range():
    loaded = load_model(
        "MobileNetV2",
        weights=None,
        values_range=(0, 1),
        application_kwargs={"input_shape": (96, 96, 3), "alpha": 0.35},
    )
    assert loaded.values_range == (0.0, 1.0)
    with pytest.raises(maco_tf.MacoError, match="values_range .* is reversed"):
        load_model("MobileNetV2", values_range=(1, 0))


def test_savedmodel_wrapped_for_logits(tmp_path):
    model = build_tiny_cnn(size=24)
    path = tmp_path / "exported"
    model.export(str(path), verbose=False)
    with pytest.raises(ModelContractError):  # a SavedModel says nothing of its range
        load_model(str(path))
    loaded = load_model(str(path), values_range=(0, 255))
    assert loaded.source == "savedmodel" and loaded.logits_layer == "logits"
    assert loaded.input_size == (24, 24)
    x = _images(24)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), atol=1e-5)
    objective = targets.class_logits(loaded.model, [1, 2], layer=loaded.logits_layer)
    result = maco_tf.visualize(
        objective, steps=2, crops=1, size=None, values_range=(0, 255), seed=0
    )
    assert result.images.shape == (2, 24, 24, 3) and not result.dead.any()


def test_savedmodel_with_dynamic_size_is_closed(tmp_path):
    import tensorflow as tf

    class Dynamic(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        def serve(self, x):
            return {"logits": tf.reduce_mean(x, axis=(1, 2))}

    path = tmp_path / "dynamic"
    module = Dynamic()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    loaded = load_model(str(path), values_range=(0, 1), input_size=20)
    assert loaded.input_size == (20, 20)
    assert loaded.model(np.ones((1, 20, 20, 3), "float32"))[0].shape == (3,)


@pytest.mark.slow
def test_default_is_the_zoo_model():
    loaded = load_model(None)
    assert loaded.name == "efficientnet_lite0" and loaded.values_range == (0.0, 255.0)
    assert loaded.logits_layer == "logits" and len(loaded.class_names) == 1000
    assert load_model("EfficientNet_Lite0").identity == loaded.identity


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite1", "EfficientNet-Lite1"])
def test_lite1_is_a_zoo_model(name):
    loaded = load_model(name)
    assert loaded.name == "efficientnet_lite1" and loaded.source == "zoo"
    assert loaded.input_size == (240, 240) and loaded.values_range == (0.0, 255.0)
    assert loaded.logits_layer == "logits" and len(loaded.class_names) == 1000
    assert "efficientnet-lite1" in known_model_names()


# ------------------------------------------------------------- your own model (issue 21)

CUSTOM_MODULE = """
import keras


class Sub(keras.Model):
    def __init__(self, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.scale = keras.layers.Rescaling(1 / 255, name="scale")
        self.conv = keras.layers.Conv2D(4, 3, name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.head = keras.layers.Dense(classes, name="head")

    def call(self, x):
        return self.head(self.pool(keras.ops.relu(self.conv(self.scale(x)))))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}
"""


def _subclassed(tmp_path):
    from maco_tf.models.custom import custom_objects

    module = tmp_path / "custom_layers.py"
    module.write_text(CUSTOM_MODULE)
    objects = custom_objects(module)
    assert list(objects) == ["Sub"]
    model = objects["Sub"](name="sub")
    model(np.zeros((1, 16, 16, 3), "float32"))
    return model, module


def test_in_memory_model_is_loaded_with_its_contract():
    model = build_tiny_cnn(size=16, rescale=True)
    loaded = maco_tf.load_model(model)
    assert loaded.source == "memory" and loaded.values_range == (0.0, 255.0)
    assert loaded.model is model and loaded.input_size == (16, 16)
    assert loaded.identity == maco_tf.load_model(model).identity
    other = build_tiny_cnn(size=16, rescale=True, seed=5)
    assert maco_tf.load_model(other).identity != loaded.identity


def test_open_input_size_is_closed(tmp_path):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv")(x))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    path = tmp_path / "open.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.input_size == (224, 224) and "closed at 224x224" in loaded.notes[0]
    small = load_model(path, input_size=24)
    assert small.input_size == (24, 24)
    x = _images(24)
    np.testing.assert_allclose(small.model(x), model(x), atol=1e-5)  # same weights
    assert small.model.get_layer("conv").output.shape == (None, 22, 22, 4)  # its own graph
    objective = targets.channel(small.model, "conv", [0])
    result = maco_tf.visualize(objective, steps=2, crops=1, size=None, values_range=(0, 255))
    assert result.images.shape == (1, 24, 24, 3)


def test_subclassed_model_in_memory_is_traced_with_reachable_layers(tmp_path):
    model, _ = _subclassed(tmp_path)
    loaded = maco_tf.load_model(model)
    assert loaded.values_range == (0.0, 255.0) and "Rescaling" in loaded.range_reason
    assert [layer.name for layer in loaded.model.layers][1:] == ["scale", "conv", "pool", "head"]
    x = _images(16)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), atol=1e-5)
    objective = targets.class_logits(model, [0, 2])  # traced too, no layer: the output
    result = maco_tf.visualize(objective, steps=2, crops=1, size=None, values_range=(0, 255))
    assert result.images.shape == (2, 16, 16, 3)
    assert targets.channel(model, "conv", [1]).layers[0] is not None


def test_subclassed_model_that_cannot_be_traced_says_why(tmp_path):
    import tensorflow as tf

    class Opaque(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.head = keras.layers.Dense(2)

        def call(self, x):
            return self.head(tf.reduce_mean(x, axis=(1, 2)))

    model = Opaque(name="opaque")
    model(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(IncompatibleModelError, match="cannot be traced.*expose the layer"):
        maco_tf.load_model(model, values_range=(0, 1))
    with pytest.raises(IncompatibleModelError, match="never built"):
        maco_tf.load_model(Opaque(name="unbuilt"), values_range=(0, 1))


def test_custom_classes_of_a_file_come_from_custom_objects(tmp_path):
    import sys

    model, module = _subclassed(tmp_path)
    path = tmp_path / "sub.keras"
    model.save(path)
    sys.modules.pop(type(model).__module__)  # as in a new process: the class is unknown
    with pytest.raises(ModelLoadError, match="'Sub'.*--custom-objects module.py"):
        load_model(path)
    loaded = load_model(path, custom_objects=module)
    assert loaded.values_range == (0.0, 255.0) and "conv" in [x.name for x in loaded.model.layers]
    with pytest.raises(maco_tf.MacoError, match="custom-objects .* not found"):
        load_model(path, custom_objects=tmp_path / "absent.py")


def _two_outputs() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    first = keras.layers.Dense(3, name="first")(x)
    second = keras.layers.Dense(5, activation="softmax", name="second")(x)
    return keras.Model(inputs, [first, second], name="two")


def test_multi_output_uses_the_first_or_the_named_output():
    loaded = load_model(_two_outputs())
    assert loaded.logits_layer == "first" and "--output NAME" in loaded.notes[0]
    second = load_model(_two_outputs(), output="second")
    assert second.logits_layer == "second_logits" and second.model.outputs[0].shape[-1] == 5
    with pytest.raises(IncompatibleModelError, match="no output 'secnd'.*did you mean: second"):
        load_model(_two_outputs(), output="secnd")


def test_multi_input_is_refused_clearly():
    a, b = keras.Input((16, 16, 3), name="a"), keras.Input((4,), name="b")
    x = keras.layers.GlobalAveragePooling2D()(a)
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([x, b])))
    with pytest.raises(IncompatibleModelError, match="2 inputs .*single image input"):
        load_model(model, values_range=(0, 1))


def test_class_logits_without_layer_takes_the_pre_softmax_output():
    model = _softmax_dense_model()
    with pytest.warns(UserWarning, match="softmax of 'probs' removed"):
        objective = targets.class_logits(model, [1])
    assert objective.layers[0].shape[-1] == 6
    with pytest.warns(UserWarning, match="softmax"):
        targets.class_logits(model, [1], layer="probs")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Dense(4, name="scores")(keras.layers.GlobalAveragePooling2D()(inputs))
    separate = keras.Model(inputs, keras.layers.Activation("softmax", name="act")(x))
    with pytest.warns(UserWarning, match="classes use 'scores'"):
        assert targets.class_logits(separate, 0).names[0] == ["Neuron#scores_0"]


def test_unknown_logits_layer_suggests_paths_and_the_output():
    with pytest.raises(maco_tf.MacoError, match="did you mean.*omit layer= .*'probs'"):
        targets.class_logits(_softmax_dense_model(), 1, layer="prob")


def test_offline_application_is_one_line_naming_what_to_do(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(ModelLoadError) as info:
        load_model("MobileNetV2")
    assert "could not download" in str(info.value) and "--model" in str(info.value)
    assert "\n" not in str(info.value)


def test_offline_application_on_the_command_line_is_one_line_exit_2(monkeypatch, capsys):
    from maco_tf.cli.main import main

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    assert main(["visualize", "--model", "MobileNetV2", "--classes", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "could not download" in lines[0] and "URL" not in lines[0]


def test_contract_error_is_exported():
    assert maco_tf.ModelContractError is ModelContractError
    assert issubclass(ModelContractError, maco_tf.MacoError)

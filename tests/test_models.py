import keras
import numpy as np
import pytest

import maco_tf
from maco_tf import targets
from maco_tf.errors import IncompatibleModelError
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
    loaded = load_model(str(path))
    assert loaded.source == "file" and loaded.name == "probs"
    assert loaded.values_range == (0.0, 255.0) and loaded.input_size == (16, 16)
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
    build_tiny_cnn().save(path)
    loaded = load_model(str(path))
    assert loaded.logits_layer == "logits" and loaded.notes == ()


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
    loaded = load_model(str(path))
    assert loaded.source == "savedmodel" and loaded.logits_layer == "logits"
    assert loaded.input_size == (24, 24)
    x = _images(24)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), atol=1e-5)
    objective = targets.class_logits(loaded.model, [1, 2], layer=loaded.logits_layer)
    result = maco_tf.visualize(
        objective, steps=2, crops=1, size=None, values_range=(0, 255), seed=0
    )
    assert result.images.shape == (2, 24, 24, 3) and not result.dead.any()


def test_savedmodel_with_dynamic_size_is_refused(tmp_path):
    import tensorflow as tf

    class Dynamic(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        def serve(self, x):
            return {"logits": tf.reduce_mean(x, axis=(1, 2))}

    path = tmp_path / "dynamic"
    module = Dynamic()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    with pytest.raises(IncompatibleModelError, match="fixed image size"):
        load_model(str(path))


@pytest.mark.slow
def test_default_is_the_zoo_model():
    loaded = load_model(None)
    assert loaded.name == "efficientnet_lite0" and loaded.values_range == (0.0, 255.0)
    assert loaded.logits_layer == "logits" and len(loaded.class_names) == 1000
    assert load_model("EfficientNet_Lite0").identity == loaded.identity

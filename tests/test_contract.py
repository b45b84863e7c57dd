import keras
import numpy as np
import pytest

from maco_tf.models.applications import ImageNetPreprocessing
from maco_tf.models.contract import (
    ModelContractError,
    explicit_contract,
    find_application,
    infer_contract,
)


def _model(*front: keras.layers.Layer, name: str = "mine") -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for layer in front:
        x = layer(x)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name=name)


@pytest.mark.parametrize(
    "layer, expected",
    [
        (keras.layers.Rescaling(1 / 255), (0.0, 255.0)),
        (keras.layers.Rescaling(1 / 127.5, offset=-1), (0.0, 255.0)),
        (keras.layers.Rescaling(2.0, offset=-1), (0.0, 1.0)),
        (keras.layers.Normalization(mean=[123.7, 116.3, 103.5], variance=[3400] * 3), (0, 255)),
        (keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.05] * 3), (0, 1)),
        (ImageNetPreprocessing("caffe"), (0.0, 255.0)),
    ],
)
def test_preprocessing_layer_at_the_input_tells_the_range(layer, expected):
    contract = infer_contract(_model(layer))
    assert contract.values_range == tuple(float(v) for v in expected)
    assert contract.preprocessing is None and contract.application is None
    assert contract.reason.endswith("at the input")


def test_no_clue_is_a_one_line_error_naming_the_flag_and_argument():
    with pytest.raises(ModelContractError) as info:
        infer_contract(_model())
    message = str(info.value)
    assert "\n" not in message and "--values-range" in message and "values_range=" in message
    assert "0,255" in message and "-1,1" in message
    assert isinstance(info.value, ValueError)


def test_an_unusual_rescaling_is_not_guessed():
    with pytest.raises(ModelContractError):
        infer_contract(_model(keras.layers.Rescaling(0.3, offset=5.0)))


def _mobilenet() -> keras.Model:
    return keras.applications.MobileNet(
        weights=None, input_shape=(32, 32, 3), alpha=0.25, classes=4
    )


def test_application_inside_a_sequential_is_recognised():
    outer = keras.Sequential([keras.Input((32, 32, 3)), _mobilenet(), keras.layers.Dense(2)])
    contract = infer_contract(outer)
    assert contract.values_range == (-1.0, 1.0)
    assert contract.reason == "keras.applications MobileNet"
    assert find_application(outer).constructor == "MobileNet"


def test_own_preprocessing_in_front_of_an_application_wins():
    inputs = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    outer = keras.Model(inputs, _mobilenet()(scaled))
    assert infer_contract(outer).values_range == (0.0, 255.0)


def test_a_name_alone_is_not_an_application():
    assert find_application(_model(name="resnet50v2")) is None
    with pytest.raises(ModelContractError):
        infer_contract(_model(name="resnet50v2"))


def test_caffe_application_without_its_layer_gets_one_put_in_front():
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=3)
    contract = infer_contract(model)
    assert contract.values_range == (0.0, 255.0) and contract.preprocessing == "caffe"
    assert contract.describe().startswith("input range [0, 255]: keras.applications VGG16")


def test_explicit_range_keeps_the_application():
    contract = explicit_contract((0.0, 1.0), _mobilenet())
    assert contract.values_range == (0.0, 1.0) and contract.application.input_size == 224
    assert np.isfinite(contract.values_range).all()

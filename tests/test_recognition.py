"""Robust recognition: degradations, and a judge that a high-frequency pattern fools."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from maco_tf.outputs.features import MetricInputError
from maco_tf.outputs.metrics import self_recognition
from maco_tf.outputs.recognition import (
    DEFAULT_DEGRADATIONS,
    RobustRecognition,
    degrade,
    robust_recognition,
)

SIZE = 128
TEXTURE, RED, NOTHING = 0, 1, 2


def texture_judge() -> keras.Model:
    """Three classes on [0, 1] images: pixel-scale texture, redness, and a constant "nothing".

    ``TEXTURE``'s logit is 20 times the mean absolute response of a 2x2 checkerboard filter on
    the grey image (0 on smooth images), ``RED``'s 10 times the mean of red minus blue,
    ``NOTHING``'s a constant 1.
    """
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    grey = keras.layers.Conv2D(1, 1, use_bias=False, name="grey")(inputs)
    edges = keras.layers.Conv2D(1, 2, use_bias=False, name="checker")(grey)
    texture = keras.layers.GlobalAveragePooling2D()(keras.layers.Activation(keras.ops.abs)(edges))
    colour = keras.layers.GlobalAveragePooling2D()(inputs)
    features = keras.layers.Concatenate()([texture, colour])
    logits_layer = keras.layers.Dense(3, name="logits")
    model = keras.Model(inputs, logits_layer(features), name="texture_judge")
    model.get_layer("grey").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32)])
    checker = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32).reshape(2, 2, 1, 1)
    model.get_layer("checker").set_weights([checker])
    weights = np.zeros((4, 3), np.float32)
    weights[0, TEXTURE] = 20.0
    weights[1, RED], weights[3, RED] = 10.0, -10.0
    logits_layer.set_weights([weights, np.array([0.0, 0.0, 1.0], np.float32)])
    return model


@pytest.fixture(scope="module")
def judge() -> keras.Model:
    return texture_judge()


def checkerboard(amplitude: float = 0.2) -> np.ndarray:
    """Grey with a one-pixel checkerboard: a pattern only the pixel grid carries."""
    rows, cols = np.indices((SIZE, SIZE))
    sign = np.where((rows + cols) % 2 == 0, 1.0, -1.0)[..., None]
    return np.clip(0.5 + amplitude * sign * np.ones(3), 0, 1)[None].astype(np.float32)


def red_blob() -> np.ndarray:
    """A smooth red disc on grey: a target a person sees at any resolution."""
    rows, cols = np.indices((SIZE, SIZE))
    disc = (((rows - SIZE / 2) ** 2 + (cols - SIZE / 2) ** 2) < (SIZE / 3) ** 2)[..., None]
    image = np.where(disc, [0.95, 0.05, 0.05], [0.5, 0.5, 0.5])
    return image[None].astype(np.float32)


def test_plain_judge_accepts_the_pattern_and_the_round_trip_rejects_it(judge):
    pattern = checkerboard()
    assert self_recognition(pattern, TEXTURE, judge, (0, 1)).top1_rate == 1.0
    scores = robust_recognition(pattern, TEXTURE, judge, (0, 1), degradations=("lowpass64",))
    assert scores.plain.top1_rate == 1.0
    assert scores.degraded["lowpass64"].top1_rate == 0.0
    assert scores.degraded["lowpass64"].predicted[0] == NOTHING
    assert scores.top1_rate == 0.0


def test_smooth_target_survives_every_default_degradation(judge):
    scores = robust_recognition(red_blob(), RED, judge, (0, 1))
    assert list(scores.degraded) == list(DEFAULT_DEGRADATIONS)
    assert scores.plain.top1_rate == 1.0
    assert all(s.top1_rate == 1.0 for s in scores.degraded.values())
    assert scores.top1_rate == 1.0
    assert scores.mean_probability == pytest.approx(scores.plain.mean_probability, abs=0.05)


def test_summary_is_the_mean_over_degradations(judge):
    images = np.concatenate([checkerboard(), red_blob()])
    scores = robust_recognition(
        images, [TEXTURE, RED], judge, (0, 1), degradations=("lowpass64", "jpeg90")
    )
    assert isinstance(scores, RobustRecognition) and len(scores) == 2
    summary = scores.summary()
    assert summary["plain_top1"] == 1.0
    assert summary["lowpass64_top1"] == 0.5
    expected = (summary["lowpass64_top1"] + summary["jpeg90_top1"]) / 2
    assert summary["robust_top1"] == pytest.approx(expected)
    assert summary["robust_p"] == pytest.approx((summary["lowpass64_p"] + summary["jpeg90_p"]) / 2)


def test_degradations_keep_shape_and_range_and_leave_smooth_images_close():
    smooth = red_blob()
    for name in ("lowpass64", "lowpass112", "rotate10", "jpeg50"):
        out = degrade(smooth * 255.0, name, (0, 255))
        assert out.shape == smooth.shape and out.dtype == np.float32
        assert 0.0 - 1e-3 <= out.min() and out.max() <= 255.0 + 1e-3
        centre = out[0, 48:80, 48:80] / 255.0
        assert np.abs(centre - smooth[0, 48:80, 48:80]).mean() < 0.05
    flattened = degrade(checkerboard(), "lowpass64", (0, 1))
    assert flattened.std() < 0.02 < checkerboard().std()
    assert np.array_equal(degrade(checkerboard(), "lowpass128", (0, 1)), checkerboard())


def test_rotation_moves_pixels():
    image = np.zeros((1, 33, 33, 1), np.float32)
    image[0, 16, 2:31] = 1.0  # a horizontal bar through the centre
    rotated = degrade(image, "rotate90", (0, 1))[0, ..., 0]
    assert rotated[2:31, 16].mean() > 0.9 and rotated[16, 2:8].max() < 0.1


@pytest.mark.parametrize(
    ("degradations", "message"),
    [
        (("blur3",), "unknown degradation 'blur3'"),
        (("lowpass1",), "between 2 and"),
        (("jpeg0",), "between 1 and 100"),
        (("rotate200",), "between 1 and 180"),
        ((), "degradations is empty"),
        (("jpeg50", "jpeg50"), "twice"),
    ],
)
def test_bad_degradations(judge, degradations, message):
    with pytest.raises(MetricInputError, match=message):
        robust_recognition(red_blob(), RED, judge, (0, 1), degradations=degradations)


def test_input_errors_as_the_other_metrics(judge):
    with pytest.raises(MetricInputError, match="add a batch axis"):
        robust_recognition(red_blob()[0], RED, judge, (0, 1))
    with pytest.raises(MetricInputError, match="empty"):
        robust_recognition(np.zeros((0, SIZE, SIZE, 3)), RED, judge, (0, 1))
    with pytest.raises(MetricInputError, match="out of range"):
        robust_recognition(red_blob(), 7, judge, (0, 1))
    with pytest.raises(MetricInputError, match="channel"):
        robust_recognition(red_blob()[..., :1], RED, judge, (0, 1))
    with pytest.raises(MetricInputError, match="keras.Model or a maco_tf.LoadedModel"):
        robust_recognition(red_blob(), RED, object(), (0, 1))
    with pytest.raises(MetricInputError, match="NaN"):
        degrade(np.full((1, 4, 4, 3), np.nan), "lowpass2", (0, 1))
    with pytest.raises(MetricInputError, match="needs the images' range"):
        degrade(red_blob(), "jpeg50")
    with pytest.raises(MetricInputError, match="grey or RGB"):
        degrade(np.zeros((1, 8, 8, 2)), "jpeg50", (0, 1))

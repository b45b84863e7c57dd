import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import Objective

import maco_tf
from maco_tf.core.config import RunConfig
from maco_tf.core.transforms import Transform, apply_transforms, parse_transforms, resample
from maco_tf.errors import InvalidSettingError

SETTINGS = dict(steps=6, crops=3, size=40, seed=5, whole_views=0)
ALL = "jitter:3,scale:0.1,rotate:10,flip,blur:0.8,pad:2"


def test_parse_names_values_and_defaults():
    parsed = parse_transforms("jitter:8, rotate:5,flip")
    assert [str(t) for t in parsed] == ["jitter:8", "rotate:5", "flip:0.5"]
    assert parse_transforms([("scale", 0.2), "pad"]) == (
        Transform("scale", 0.2),
        Transform("pad", 4),
    )
    assert parse_transforms(None) == () == parse_transforms("")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("spin:3", "unknown transform 'spin'"),
        ("jitter:-2", "jitter takes pixels >= 0"),
        ("scale:1.5", "scale takes a fraction"),
        ("pad:1.5", "pad takes an integer"),
        ("rotate:x", "rotate takes degrees"),
        ([3], "give 'name:value' strings"),
        (["jitter"] * 15, "at most 14"),
    ],
)
def test_bad_transforms_get_one_line(value, message):
    with pytest.raises(InvalidSettingError, match=message) as info:
        RunConfig(transforms=value)
    assert "\n" not in str(info.value)


def test_recorded_and_read_back():
    config = RunConfig(transforms="jitter:8,rotate:5")
    assert config.record()["transforms"] == ["jitter:8", "rotate:5"]
    assert RunConfig.from_record(config.record()).transforms == config.transforms
    assert RunConfig().record()["transforms"] == []


def test_identity_resampling_keeps_the_views():
    views = tf.random.stateless_uniform((2, 9, 7, 3), seed=(1, 2))
    same = resample(views, tf.eye(3, batch_shape=[2]))
    np.testing.assert_allclose(same, views, atol=1e-6)


def test_flip_with_probability_one_mirrors():
    views = tf.random.stateless_uniform((2, 6, 6, 3), seed=(3, 4))
    flipped = apply_transforms(
        views,
        parse_transforms("flip:1"),
        tf.constant([1, 2], tf.int64),
        tf.constant(0),
        1,
        (0, 1),
        0.0,
    )
    np.testing.assert_allclose(flipped, views[:, :, ::-1], atol=1e-6)


def test_same_seed_same_images_and_transforms_act(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", [0, 1, 2])
    first = maco_tf.visualize(objective, transforms=ALL, **SETTINGS)
    again = maco_tf.visualize(objective, transforms=ALL, **SETTINGS)
    np.testing.assert_array_equal(first.images, again.images)
    # each image's draws depend on its seed only: not on its batch mates nor on the lanes
    alone = maco_tf.visualize(objective, transforms=ALL, batch_size=1, lanes=1, **SETTINGS)
    np.testing.assert_allclose(first.images, alone.images, atol=2e-3)  # rounding only
    plain = maco_tf.visualize(objective, **SETTINGS)
    assert np.abs(first.images - plain.images).max() > 1e-2
    other = maco_tf.visualize(objective, transforms=ALL, **{**SETTINGS, "seed": 6})
    assert np.abs(first.images - other.images).max() > 1e-2
    assert first.settings["transforms"] == [str(t) for t in parse_transforms(ALL)]

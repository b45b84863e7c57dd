import numpy as np
import pytest
from xplique.features_visualizations import Objective

import maco_tf


def test_dropin_single_objective_returns_xplique_shapes(tiny_model):
    image, transparency = maco_tf.maco(
        Objective.neuron(tiny_model, "logits", 3),
        nb_steps=3,
        nb_crops=2,
        custom_shape=(40, 40),
        seed=0,
    )
    assert image.shape == (40, 40, 3) and transparency.shape == (40, 40, 3)
    assert isinstance(image, np.ndarray)
    assert image.min() >= -1 and image.max() <= 1


def test_dropin_uses_xplique_phase_spread(tiny_model):
    def run(**options):
        objective = Objective.neuron(tiny_model, "logits", 3)
        kwargs = dict(nb_steps=3, nb_crops=2, custom_shape=(32, 32), seed=0)
        return maco_tf.maco(objective, **kwargs, **options)[0]

    assert maco_tf.RunConfig().phase_spread == pytest.approx(np.pi)
    np.testing.assert_array_equal(run(), run(phase_spread=1.0))
    assert not np.allclose(run(), run(phase_spread=np.pi))


def test_positional_arguments_match_xplique(tiny_model):
    import inspect

    from xplique.features_visualizations import maco as xplique_maco

    ours = list(inspect.signature(maco_tf.maco).parameters)
    theirs = list(inspect.signature(xplique_maco).parameters)
    assert ours[: len(theirs)] == theirs
    for name in theirs[1:]:
        assert (
            inspect.signature(maco_tf.maco).parameters[name].default
            == inspect.signature(xplique_maco).parameters[name].default
        )


@pytest.mark.parametrize(
    "build",
    [
        lambda m: Objective.neuron(m, "logits", [1, 2, 3]),
        lambda m: Objective.channel(m, "conv1", [0, 4]),
        lambda m: Objective.layer(m, "conv2"),
        lambda m: Objective.direction(
            m, "dense", [np.ones(16, np.float32), np.linspace(-1, 1, 16).astype(np.float32)]
        ),
        lambda m: Objective.neuron(m, "logits", [1, 2]) * 2 + Objective.channel(m, "conv1", 3),
        lambda m: Objective.layer(m, "conv2") - Objective.neuron(m, "logits", [0, 5]) * 0.5,
    ],
    ids=["neuron", "channel", "layer", "direction", "sum", "difference"],
)
def test_xplique_objectives(tiny_model, build):
    objective = build(tiny_model)
    _, _, names, input_shape = objective.compile()
    images, transparency = maco_tf.maco(
        objective, nb_steps=3, nb_crops=2, custom_shape=(32, 32), seed=0
    )
    n = input_shape[0]
    expected = (n, 32, 32, 3) if n > 1 else (32, 32, 3)
    assert images.shape == expected and transparency.shape == expected
    assert np.all(np.isfinite(images))


def test_visualization_result(tiny_model):
    result = maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", [0, 1]), steps=5, crops=2, size=None, seed=4
    )
    assert result.images.shape == (2, 32, 32, 3)  # size=None: the model input size
    assert result.names == ("Neuron#logits_0", "Neuron#logits_1")
    assert result.loss_history.shape == (5, 2) and result.objective_values.shape == (2,)
    assert result.seed == 4 and result.method == "maco"
    assert (
        maco_tf.visualize(
            Objective.neuron(tiny_model, "logits", 0), steps=1, crops=1, size=None, seed=None
        ).seed
        >= 0
    )


def test_plot_maco_accepts_the_output(tiny_model):
    import matplotlib

    matplotlib.use("Agg")
    from xplique.plots import plot_maco

    image, transparency = maco_tf.maco(
        Objective.neuron(tiny_model, "logits", 1),
        nb_steps=2,
        nb_crops=1,
        custom_shape=(32, 32),
        seed=0,
    )
    plot_maco(image, transparency)


def test_user_optimizer_is_not_mutated(tiny_model):
    import keras

    optimizer = keras.optimizers.Adam(0.3)
    maco_tf.maco(
        Objective.neuron(tiny_model, "logits", 1),
        optimizer,
        nb_steps=2,
        nb_crops=1,
        custom_shape=(32, 32),
        seed=0,
    )
    assert not optimizer.built


def test_grayscale_with_dataset(gray_model, rng):
    dataset = rng.uniform(-1, 1, size=(4, 32, 32, 1)).astype(np.float32)
    image, _ = maco_tf.maco(
        Objective.neuron(gray_model, "logits", 0),
        maco_dataset=dataset,
        nb_steps=2,
        nb_crops=1,
        custom_shape=(32, 32),
        seed=0,
    )
    assert image.shape == (32, 32, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(values_range=(1, -1)), "reversed"),
        (dict(values_range=(0, 0)), "empty"),
        (dict(values_range=(0,)), "two numbers"),
        (dict(nb_steps=0), "steps"),
        (dict(nb_crops=-1), "crops"),
        (dict(custom_shape=(16, 64)), "smaller than the model input"),
        (dict(batch_size=0), "batch_size"),
        (dict(box_size=2.0), "box_size"),
        (dict(lanes=0), "lanes"),
    ],
)
def test_bad_settings(tiny_model, kwargs, match):
    with pytest.raises(maco_tf.InvalidSettingError, match=match):
        maco_tf.maco(Objective.neuron(tiny_model, "logits", 0), **{"nb_steps": 2, **kwargs})


def test_grayscale_without_dataset(gray_model):
    with pytest.raises(maco_tf.SpectrumError, match="magnitude_dataset"):
        maco_tf.maco(Objective.neuron(gray_model, "logits", 0), nb_steps=2)


def test_dataset_with_wrong_channels(gray_model, rng):
    with pytest.raises(maco_tf.SpectrumError, match="channel"):
        maco_tf.maco(
            Objective.neuron(gray_model, "logits", 0),
            maco_dataset=rng.uniform(size=(2, 32, 32, 3)),
            nb_steps=2,
        )


def test_model_without_image_input():
    import keras

    inputs = keras.Input((20,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(inputs))
    with pytest.raises(maco_tf.IncompatibleModelError, match="images"):
        maco_tf.maco(Objective.neuron(model, "out", 0), nb_steps=2)


def test_not_an_objective():
    with pytest.raises(TypeError, match="Objective"):
        maco_tf.maco("logits", nb_steps=2)


def test_nan_gradients_are_skipped_and_reported(fast_settings):
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Lambda(lambda t: keras.ops.log(t - 10.0), name="nan")(x)  # log(<0) = NaN
    model = keras.Model(inputs, x)
    with pytest.warns(maco_tf.DeadObjectiveWarning, match="NaN"):
        result = maco_tf.visualize(Objective.neuron(model, "nan", 0), **fast_settings)
    assert result.nonfinite_steps.tolist() == [fast_settings["steps"]]
    assert np.all(np.isfinite(result.images))


def _gram_similarity(model, layer, images):
    import keras
    import tensorflow as tf

    from maco_tf.core.objectives import batch_similarity

    features = keras.Model(model.inputs, model.get_layer(layer).output)(
        tf.image.resize(images, (32, 32))
    )
    return float(batch_similarity(features, len(images), 1))


def test_copies_with_diversity_are_more_diverse(tiny_model):
    settings = dict(steps=24, crops=2, size=40, seed=0, copies=3, whole_views=0, noise=0.08)
    objective = Objective.channel(tiny_model, "conv1", 2)
    plain = maco_tf.visualize(objective, box_size=None, **settings)
    diverse = maco_tf.visualize(objective - 50 * maco_tf.diversity(), box_size=None, **settings)
    assert plain.names == ("Channel#conv1_2 #0", "Channel#conv1_2 #1", "Channel#conv1_2 #2")
    assert diverse.images.shape == (3, 40, 40, 3)
    assert not np.allclose(plain.images[0], plain.images[1])
    before = _gram_similarity(tiny_model, "conv1", plain.images)
    after = _gram_similarity(tiny_model, "conv1", diverse.images)
    assert after < before - 0.01, (before, after)


def test_diversity_algebra(tiny_model, fast_settings):
    objective = Objective.channel(tiny_model, "conv1", 2)
    term = 5 * maco_tf.diversity("conv2")
    assert term.weight == 5.0 and (-term).weight == -5.0
    subtracted = maco_tf.visualize(objective - term, copies=2, **fast_settings)
    added = maco_tf.visualize(
        objective + (-5.0) * maco_tf.diversity("conv2"), copies=2, **fast_settings
    )
    np.testing.assert_array_equal(subtracted.images, added.images)
    plain = maco_tf.visualize(objective, copies=2, **fast_settings)
    assert not np.allclose(plain.images, subtracted.images)
    with pytest.raises(maco_tf.InvalidSettingError, match="nothing to maximise"):
        maco_tf.visualize(maco_tf.diversity("conv2"), **fast_settings)


def test_diversity_needs_a_spatial_layer(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", 0)
    with pytest.raises(maco_tf.InvalidSettingError, match="spatial layer"):
        maco_tf.visualize(objective - maco_tf.diversity(), steps=1)
    result = maco_tf.visualize(
        objective - maco_tf.diversity("conv2"), steps=2, crops=1, size=None, copies=2, seed=0
    )
    assert result.images.shape == (2, 32, 32, 3)


def test_old_argument_names_say_what_replaced_them(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", 0)
    with pytest.raises(maco_tf.InvalidSettingError, match="nb_steps is now steps.*valid names"):
        maco_tf.visualize(objective, nb_steps=2)
    with pytest.raises(maco_tf.InvalidSettingError, match="maco_tf.diversity"):
        maco_tf.visualize(objective, diversity=1.0)


def test_config_and_overrides(tiny_model, fast_settings):
    objective = Objective.neuron(tiny_model, "logits", [0, 1])
    config = maco_tf.RunConfig(**fast_settings)
    by_config = maco_tf.visualize(objective, config)
    by_keywords = maco_tf.visualize(objective, **fast_settings)
    np.testing.assert_array_equal(by_config.images, by_keywords.images)
    assert by_config.config.replace(batch_size=None, lanes=None) == config
    again = maco_tf.visualize(objective, by_config.config)
    np.testing.assert_array_equal(again.images, by_config.images)
    other = maco_tf.visualize(objective, config, seed=1)
    assert other.seed == 1 and not np.allclose(other.images, by_config.images)
    with pytest.raises(maco_tf.InvalidSettingError, match="RunConfig"):
        maco_tf.visualize(objective, {"steps": 2})


def test_parameterization_instance_as_method(tiny_model, fast_settings):
    objective = Objective.neuron(tiny_model, "logits", 0)
    instance = maco_tf.FourierParameterization((48, 48, 3), (-1.0, 1.0))
    by_instance = maco_tf.visualize(objective, method=instance, **fast_settings)
    by_name = maco_tf.visualize(objective, method="fourier", **fast_settings)
    np.testing.assert_array_equal(by_instance.images, by_name.images)
    assert by_instance.method == "fourier"
    gray = maco_tf.PixelParameterization((48, 48, 1), (-1.0, 1.0))
    with pytest.raises(maco_tf.InvalidSettingError, match="channel"):
        maco_tf.visualize(objective, method=gray, **fast_settings)


def test_whole_views_are_recorded_and_capped_at_the_crops(tiny_model, fast_settings):
    objective = Objective.neuron(tiny_model, "logits", [0, 1])
    result = maco_tf.visualize(objective, **{**fast_settings, "whole_views": 1})
    assert result.settings["whole_views"] == 1 and np.all(np.isfinite(result.images))
    assert not np.allclose(result.images, maco_tf.visualize(objective, **fast_settings).images)
    every = maco_tf.visualize(objective, **{**fast_settings, "whole_views": 3})  # 2 crops
    same = maco_tf.visualize(objective, **{**fast_settings, "whole_views": 2})
    assert every.settings["whole_views"] == 2
    np.testing.assert_array_equal(every.images, same.images)


def test_auto_batch_size_balances_the_batches():
    from maco_tf.core.visualization import auto_batch_size

    assert auto_batch_size(16) == 8  # about 128 crops per step
    assert auto_batch_size(16, nb_images=10) == 5  # 5 + 5, not 8 + 2 padded to 8
    assert auto_batch_size(16, nb_images=8) == 8
    assert auto_batch_size(16, nb_images=17) == 6  # 6 + 6 + 5
    assert auto_batch_size(16, nb_images=3) == 3
    assert auto_batch_size(16, replicas=2, nb_images=10) == 10  # cap 16 per two replicas
    assert auto_batch_size(16, replicas=2, nb_images=21) == 12  # 2 batches, multiple of 2
    assert auto_batch_size(200, nb_images=5) == 1


def test_mixed_bfloat16_model():
    """A model built under a mixed-precision policy: float32 images, finite, optimised."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("conv").compute_dtype == "bfloat16"
    result = maco_tf.visualize(
        Objective.neuron(model, "logits", [0, 1]) + Objective.channel(model, "conv", 0),
        steps=12,
        crops=2,
        size=48,
        seed=0,
        whole_views=0,
        noise=0.08,
        box_size=None,
    )
    assert result.images.dtype == np.float32 and result.images.shape == (2, 48, 48, 3)
    assert np.isfinite(result.images).all() and not result.dead.any()
    assert np.all(result.loss_history[-3:].mean(0) > result.loss_history[:3].mean(0))

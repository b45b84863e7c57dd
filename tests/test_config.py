import dataclasses
import json
import warnings

import keras
import numpy as np
import pytest

import maco_tf
from maco_tf import EngineConfig, InvalidSettingError, Limits, RunConfig
from maco_tf.core.config import settings_differences


def test_defaults_are_the_tuned_ones():
    config = RunConfig(limits=Limits())
    assert (config.method, config.steps, config.crops, config.size) == ("maco", 64, 8, (320, 320))
    assert (config.box_size, config.whole_views, config.noise) == ((1.0, 0.3), 2, 0.04)
    assert config.phase_spread == pytest.approx(np.pi)
    assert (config.seed, config.copies, config.values_range) == (0, 1, (-1.0, 1.0))
    assert config.engine == EngineConfig()
    np.testing.assert_allclose(config.box_sizes()[[0, -1]], [1.0, 0.3], rtol=1e-6)


def test_dropin_keeps_xplique_defaults():
    import inspect

    parameters = inspect.signature(maco_tf.maco).parameters
    assert parameters["nb_steps"].default == 256 and parameters["nb_crops"].default == 32
    assert parameters["noise_intensity"].default == 0.08 and parameters["box_size"].default is None


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(steps=0), r"steps must be an integer >= 1; got 0"),
        (dict(steps=2.0), r"steps must be an integer"),
        (dict(crops=-1), r"crops must be an integer >= 0"),
        (dict(copies=True), r"copies must be an integer"),
        (dict(whole_views=-1), r"whole_views must be an integer >= 0"),
        (dict(values_range=(1, -1)), r"reversed.*\(-1, 1\)"),
        (dict(values_range=(0, 0)), r"empty"),
        (dict(values_range=(0, np.inf)), r"finite"),
        (dict(values_range=(0, 1e39)), r"values_range must be finite in float32"),
        (dict(values_range=(-1e308, 1e308)), r"values_range must be finite in float32"),
        (dict(noise=1e308), r"noise contains NaN or infinite values \(in float32"),
        (dict(noise=[0.1] * 63 + [1e39]), r"noise contains NaN or infinite values"),
        (dict(decay_power=1e39), r"decay_power must be a finite number"),
        (dict(values_range="ab"), r"two numbers"),
        (dict(size=(0, 10)), r"size must be an integer >= 1"),
        (dict(size="big"), r"size must be an int"),
        (dict(method="lucid"), r"unknown method 'lucid'.*maco, fourier, pixel"),
        (dict(box_size=1.5), r"box_size must lie in \(0, 1\]"),
        (dict(box_size=(1.0, 0.3, 0.1)), r"box_size has 3 values but steps=64"),
        (dict(noise=-0.1), r"noise must be >= 0"),
        (dict(noise=lambda step: 1 / 0), r"noise callable failed"),
        (dict(decay_power=float("nan")), r"decay_power must be a finite number"),
        (dict(phase_spread=0), r"phase_spread must be a finite number > 0 .*1 as Xplique"),
        (dict(phase_spread=True), r"phase_spread must be a finite number"),
        (dict(optimizer="adam"), r"optimizer must be a keras.optimizers.Optimizer"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1"),
        (dict(lanes=0), r"lanes must be an integer >= 1"),
        (dict(jit_compile="yes"), r"jit_compile must be True or False"),
    ],
)
def test_validation_messages(changes, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused in one line, no RuntimeWarning on the way
        with pytest.raises(InvalidSettingError, match=match):
            RunConfig().replace(**changes)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(InvalidSettingError, match=r"'stepz'.*valid names: method, steps"):
        RunConfig().replace(stepz=3)
    with pytest.raises(InvalidSettingError, match=r"custom_shape is now size"):
        RunConfig().replace(custom_shape=(64, 64))


@pytest.mark.parametrize(
    "changes, knob, limit",
    [
        (dict(size=5000), "size=5000", "max_size=4096"),
        (dict(size=(64, 4097)), "size=4097", "max_size=4096"),
        (dict(steps=100_001), "steps=100001", "max_steps=100000"),
    ],
)
def test_bounds_name_the_knob_the_limit_and_how_to_raise_it(changes, knob, limit):
    with pytest.raises(InvalidSettingError) as error:
        RunConfig(limits=Limits(), **changes)
    message = str(error.value)
    assert knob in message and limit in message
    assert "Limits(" in message and "MACO_TF_MAX_" in message
    name = limit.split("=")[0]
    raised = Limits(**{name: 10**6})
    RunConfig(limits=raised, **changes)  # an explicit override lets it through


def test_bounds_from_the_environment(monkeypatch):
    monkeypatch.setenv("MACO_TF_MAX_STEPS", "200000")
    assert RunConfig(steps=150_000).steps == 150_000
    monkeypatch.setenv("MACO_TF_MAX_STEPS", "lots")
    with pytest.raises(InvalidSettingError, match="MACO_TF_MAX_STEPS='lots'"):
        RunConfig()


def test_batch_memory_bound():
    limits = Limits(max_batch_memory=2**30)
    small = limits.check_batch_memory(8, 16, (224, 224, 3), (320, 320, 3))
    assert 0 < small < 2**30
    with pytest.raises(InvalidSettingError, match=r"batch_size=1 x crops=100000 views") as error:
        limits.check_batch_memory(1, 100_000, (224, 224, 3), (320, 320, 3))
    assert "max_batch_memory" in str(error.value) and "MACO_TF_MAX_BATCH_MEMORY" in str(error.value)


def test_visualize_refuses_a_huge_batch_before_allocating(tiny_model):
    from xplique.features_visualizations import Objective

    objective = Objective.neuron(tiny_model, "logits", 0)
    limits = Limits(max_batch_memory=10**6)
    with pytest.raises(InvalidSettingError, match="max_batch_memory"):
        maco_tf.visualize(objective, crops=100_000, size=32, limits=limits)


@pytest.mark.parametrize("seed", [0, 1, 2**32, 2**63 - 1])
def test_seed_range_accepts(seed):
    assert RunConfig(seed=seed).seed == seed


@pytest.mark.parametrize("seed", [-1, 2**63, 2**70, 1.5, "3", True])
def test_seed_range_refuses(seed):
    with pytest.raises(InvalidSettingError, match=r"seed"):
        RunConfig(seed=seed)


def test_seeds_do_not_alias_modulo_a_word():
    from maco_tf.core.seeds import image_seeds, start_generator

    for seed in (0, 5):
        for bigger in (seed + 2**32, seed + 2**40):
            assert not np.array_equal(image_seeds(seed, [0, 1]), image_seeds(bigger, [0, 1]))
            start, other = start_generator(seed, 0), start_generator(bigger, 0)
            assert start.normal() != other.normal()


def _changed(config: RunConfig, name: str) -> object:
    """A valid value of field ``name`` different from ``config``'s."""
    value = getattr(config, name)
    alternatives = {
        "method": "fourier",
        "size": (64, 80),
        "box_size": (0.9, 0.2),
        "noise": 0.5,
        "values_range": (0.0, 255.0),
        "seed": 12,
        "decay_power": 2.0,
        "phase_spread": 1.0,
        "transforms": ("jitter:4",),
        "optimizer": keras.optimizers.Adam(0.01),
        "magnitude_dataset": np.zeros((1, 8, 8, 3)),
        "engine": EngineConfig(steps_per_call=3),
        "limits": Limits(max_steps=999),
        "snapshots": 4,
        "early_stop": 4,
    }
    return alternatives.get(name, value + 1 if isinstance(value, int) else value)


def test_every_knob_is_in_the_cache_key_or_reaches_the_loop_as_a_tensor():
    base = RunConfig()
    run_time = {"steps", "box_size", "noise", "seed", "copies", "magnitude_dataset", "limits"}
    run_time |= {"snapshots", "early_stop"}  # read between compiled calls
    for item in dataclasses.fields(RunConfig):
        changed = base.replace(**{item.name: _changed(base, item.name)})
        assert getattr(changed, item.name) is not getattr(base, item.name), item.name
        if item.name in run_time:
            assert changed.loop_key() == base.loop_key(), item.name
        else:
            assert changed.loop_key() != base.loop_key(), item.name
    for item in dataclasses.fields(EngineConfig):
        value = getattr(base.engine, item.name)
        new = (not value) if isinstance(value, bool) else (value or 1) + 1
        assert base.replace(**{item.name: new}).loop_key() != base.loop_key(), item.name


def test_equal_optimizer_configurations_share_a_key():
    first = RunConfig(optimizer=keras.optimizers.Adam(0.01))
    second = RunConfig(optimizer=keras.optimizers.Adam(0.01))
    assert first.loop_key() == second.loop_key()


def test_record_is_json_and_round_trips():
    config = RunConfig(
        method="fourier",
        steps=12,
        size=(40, 48),
        box_size=0.5,
        noise=(0.1, 0.01),
        seed=2**40,
        copies=2,
        phase_spread=1.5,
        optimizer=keras.optimizers.Adam(0.01),
        engine=EngineConfig(batch_size=4, pooled_noise=False),
    )
    record = json.loads(json.dumps(config.record()))
    again = RunConfig.from_record(record)
    assert again.record() == record
    assert again.loop_key() == config.loop_key()


def test_record_of_callables_and_arrays_is_per_step():
    config = RunConfig(steps=3, noise=lambda step: 0.1 * step, box_size=np.array([1.0, 0.5, 0.25]))
    record = config.record()
    np.testing.assert_allclose(record["noise"], [0.0, 0.1, 0.2], rtol=1e-6)
    assert record["box_size"] == [1.0, 0.5, 0.25]
    json.dumps(record)


def test_settings_differences_read_old_records():
    old = {
        "model": "m",
        "values_range": [0.0, 255.0],
        "method": "maco",
        "steps": 64,
        "crops": 8,
        "size": 320,
        "box_size": [1.0, 0.3],
        "whole_views": 2,
        "noise": 0.04,
        "seed": 0,
    }
    new = {"model": "m", **RunConfig(values_range=(0, 255)).record()}
    assert settings_differences(old, new) == []
    assert settings_differences(old, {**new, "steps": 128}) == ["steps 64, now 128"]
    new_engine = {**new, "engine": {**new["engine"], "batch_size": 3}}
    assert settings_differences(new, new_engine) == []

import keras
import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import Objective

import maco_tf
from maco_tf.core.callbacks import PLATEAU_TOLERANCE, plateaued, snapshot_steps
from maco_tf.core.engine import LoopCache, chunk_ranges
from maco_tf.errors import InvalidSettingError


def _loops(cache):
    return [entry[1] for entry in cache._entries.values()]


def _objective(model):
    return Objective.neuron(model, "logits", [0, 1, 2])


# ---------------------------------------------------------------------------- rules


def test_chunk_ranges_end_at_both_intervals():
    assert chunk_ranges(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert chunk_ranges(10, 4, 3) == [(0, 3), (3, 1), (4, 2), (6, 2), (8, 1), (9, 1)]
    assert chunk_ranges(8, 8, 8) == [(0, 8)]


def test_snapshot_steps_end_on_the_last_step():
    assert snapshot_steps(4, 12).tolist() == [4, 8, 12]
    assert snapshot_steps(5, 12).tolist() == [5, 10, 12]
    assert snapshot_steps(20, 12).tolist() == [12]


def test_plateau_rule():
    rising = np.linspace(1.0, 2.0, 8)[:, None]
    assert not plateaued(rising, 4)
    flat = np.ones((8, 1))
    assert plateaued(flat, 4)
    assert not plateaued(flat[:7], 4)  # two whole windows are needed
    # a gain just under the tolerance is a plateau, just over it is not
    for gain, expected in ((0.5 * PLATEAU_TOLERANCE, True), (2 * PLATEAU_TOLERANCE, False)):
        values = np.concatenate([np.full((4, 1), -10.0), np.full((4, 1), -10.0 + 10 * gain)])
        assert plateaued(values, 4) is expected
    # every image must have plateaued
    assert not plateaued(np.concatenate([flat, rising], axis=1), 4)
    # a falling objective has plateaued
    assert plateaued(rising[::-1], 4)


# ---------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("method", ["maco", "fourier", "pixel"])
def test_snapshots_at_the_asked_steps_leave_images_and_trace_unchanged(
    tiny_model, fast_settings, method
):
    cache = LoopCache()
    settings = {**fast_settings, "steps": 10, "method": method, "batch_size": 2}
    plain = maco_tf.visualize(_objective(tiny_model), cache=cache, **settings)
    assert plain.snapshots is None and plain.snapshot_steps is None
    shot = maco_tf.visualize(_objective(tiny_model), cache=cache, snapshots=3, **settings)
    assert shot.snapshot_steps.tolist() == [3, 6, 9, 10]
    assert shot.snapshots.shape == (3, 4, *shot.images.shape[1:])
    np.testing.assert_array_equal(shot.images, plain.images)
    np.testing.assert_array_equal(shot.loss_history, plain.loss_history)
    np.testing.assert_array_equal(shot.snapshots[:, -1], shot.images)
    assert not np.array_equal(shot.snapshots[:, 0], shot.images)  # the image moved
    assert shot.settings["snapshots"] == 3 and plain.settings["snapshots"] is None
    assert [loop.trace_count for loop in _loops(cache)] == [1]


# ---------------------------------------------------------------------------- callbacks


class _Recorder(maco_tf.Callback):
    def __init__(self, wants_images=False):
        self.wants_images = wants_images
        self.calls = []

    def __call__(self, progress):
        self.calls.append(progress)


def test_callbacks_are_called_after_each_call_with_its_steps(tiny_model, fast_settings):
    cache = LoopCache()
    plain, with_images = _Recorder(), _Recorder(wants_images=True)
    seen = []
    result = maco_tf.visualize(
        _objective(tiny_model),
        cache=cache,
        callbacks=[plain, with_images, lambda progress: seen.append(progress.step)],
        **{**fast_settings, "steps": 10, "steps_per_call": 4, "batch_size": 2},
    )
    # two batches (2 + 1 images), each ending calls at steps 4, 8 and 10
    assert [(p.batch, p.step) for p in plain.calls] == [
        (0, 4), (0, 8), (0, 10), (1, 4), (1, 8), (1, 10)
    ]  # fmt: skip
    assert seen == [p.step for p in plain.calls]
    assert [p.values.shape for p in plain.calls[:3]] == [(4, 2), (4, 2), (2, 2)]
    assert plain.calls[3].names == result.names[2:] and plain.calls[3].first == 2
    np.testing.assert_array_equal(
        np.concatenate([p.values for p in plain.calls[:3]]), result.loss_history[:, :2]
    )
    assert all(p.images is None for p in plain.calls)
    assert with_images.calls[2].images.shape == (2, *result.images.shape[1:])
    np.testing.assert_array_equal(with_images.calls[2].images, result.images[:2])
    np.testing.assert_array_equal(with_images.calls[-1].images, result.images[2:])
    assert [loop.trace_count for loop in _loops(cache)] == [1]


def test_callbacks_also_see_the_snapshot_steps(tiny_model, fast_settings):
    recorder = _Recorder()
    maco_tf.visualize(
        Objective.neuron(tiny_model, "logits", 0),
        callbacks=[recorder],
        snapshots=3,
        **{**fast_settings, "steps": 10, "steps_per_call": 4},
    )
    assert [p.step for p in recorder.calls] == [3, 4, 6, 8, 9, 10]


def _saturating_model() -> keras.Model:
    """An objective that reaches its ceiling within a few steps: sigmoid of a steep mean."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(20.0))(x)
    return keras.Model(inputs, keras.layers.Activation("sigmoid", name="logits")(x))


def test_early_stop_stops_on_a_plateau_and_is_recorded(fast_settings):
    model = _saturating_model()
    objective = Objective.neuron(model, "logits", 0)
    settings = {**fast_settings, "steps": 64, "steps_per_call": 4, "method": "pixel"}
    full = maco_tf.visualize(objective, **settings)
    assert full.steps_run.tolist() == [64]
    stopped = maco_tf.visualize(objective, early_stop=4, snapshots=16, **settings)
    run = int(stopped.steps_run[0])
    assert 8 <= run < 64 and run % 4 == 0
    assert plateaued(stopped.loss_history[:run], 4)
    assert not plateaued(stopped.loss_history[: run - 4], 4)  # it stopped at the first plateau
    assert np.isnan(stopped.loss_history[run:]).all() and stopped.loss_history.shape[0] == run
    assert stopped.settings["early_stop"] == 4 and full.settings["early_stop"] is None
    assert stopped.snapshot_steps[-1] == run
    np.testing.assert_array_equal(stopped.snapshots[:, -1], stopped.images)
    np.testing.assert_array_equal(stopped.loss_history, full.loss_history[:run])
    assert np.isfinite(stopped.objective_values).all()


def test_tensorboard_logger_writes_event_files(tiny_model, fast_settings, tmp_path):
    logger = maco_tf.TensorBoardLogger(tmp_path / "logs", images=True)
    result = maco_tf.visualize(
        _objective(tiny_model), callbacks=[logger], **{**fast_settings, "steps": 6}
    )
    logger.close()
    events = list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert len(events) == 1
    tags, steps = set(), []
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        for value in event.summary.value:
            tags.add(value.tag)
            if value.tag == f"objective/{result.names[0]}":
                steps.append(event.step)
    assert {f"objective/{name}" for name in result.names} <= tags
    assert {f"images/{name}" for name in result.names} <= tags
    assert steps == list(range(1, 7))


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"snapshots": 0}, "snapshots must be a whole number of steps >= 1"),
        ({"snapshots": -2}, "snapshots must be a whole number of steps >= 1"),
        ({"snapshots": 2.5}, "snapshots must be a whole number of steps >= 1"),
        ({"snapshots": 5}, "snapshots=5 is more than the 4 steps"),
        ({"early_stop": 0}, "early_stop must be a whole number of steps >= 1"),
        ({"early_stop": 3}, "early_stop=3 is more than half the 4 steps"),
        ({"callbacks": "print"}, "callbacks must be a list of callables"),
        ({"callbacks": [1]}, "callbacks must be a list of callables"),
    ],
)
def test_bad_values_are_one_line_errors(tiny_model, fast_settings, settings, fragment):
    with pytest.raises(InvalidSettingError) as info:
        maco_tf.visualize(Objective.neuron(tiny_model, "logits", 0), **fast_settings, **settings)
    assert fragment in str(info.value) and "\n" not in str(info.value)

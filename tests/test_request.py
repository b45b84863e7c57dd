"""maco_tf.runs.request: the one frozen request the command line hands down."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from maco_tf.cli.flags import to_request
from maco_tf.cli.parser import build_parser
from maco_tf.core.config import RunConfig
from maco_tf.core.distribute import Distribution
from maco_tf.errors import InvalidSettingError
from maco_tf.runs.request import ModelSpec, Request, TargetSpec


def _request(*argv: str) -> Request:
    return to_request(build_parser().parse_args(list(argv)))


def test_the_flags_land_in_fields_of_their_own_names():
    request = _request(
        "visualize", "--model", "m.keras", "--values-range", "0,1", "--input-size", "48",
        "--classes", "1,2", "--steps", "7", "--crops", "3", "--size", "64", "--seed", "5",
        "--batch-size", "4", "--jit", "--out", "somewhere", "--overwrite", "--quiet",
        "--examples", "photos", "--strategy", "none",
    )  # fmt: skip
    assert request.model == ModelSpec("m.keras", (0.0, 1.0), 48, None, None)
    assert request.targets == TargetSpec(classes="1,2")
    config = request.config
    assert (config.steps, config.crops, config.size, config.seed) == (7, 3, (64, 64), 5)
    assert config.values_range == (0.0, 1.0)
    assert request.batch_size == config.engine.batch_size == 4 and request.jit
    assert request.out == Path("somewhere") and request.overwrite and request.quiet
    assert request.examples == "photos" and request.strategy == "none"
    assert request.method_given


def test_command_fields_and_their_defaults():
    atlas = _request("atlas", "--layer", "conv", "--channels", "0-2", "--shard", "1/3")
    assert atlas.targets.units_given() == ["channel"] and atlas.targets.asks_for_units()
    assert atlas.targets.channel == [0, 1, 2] and atlas.shard == (1, 3)
    assert atlas.config.snapshots is None
    accent = _request("accentuate", "--image", "p.png", "--classes", "1", "--penalty", "2")
    assert accent.image == "p.png" and accent.penalty == 2.0
    assert not accent.method_given and accent.strategy == "none"
    assert not _request("atlas").targets.asks_for_units()


def test_bad_settings_are_refused_when_the_request_is_built():
    with pytest.raises(InvalidSettingError):
        _request("visualize", "--classes", "1", "--size", "100000")


def test_the_request_is_frozen_and_starting_a_run_makes_new_ones():
    request = Request(config=RunConfig(values_range=(0, 1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.quiet = True  # type: ignore[misc]
    distribution = Distribution()
    started = request.with_distribution(distribution)
    assert started.distribution is distribution and request.distribution is not distribution
    loaded = request.for_model((-1.0, 1.0))
    assert loaded.config.values_range == (-1.0, 1.0) and request.config.values_range == (0, 1)
    with pytest.raises(InvalidSettingError):
        request.for_model((1.0, 0.0))

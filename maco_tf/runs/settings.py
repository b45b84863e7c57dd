"""The settings of a run: the one :class:`~maco_tf.RunConfig` built from the flags, its record.

The command line builds one :class:`~maco_tf.RunConfig` from its flags (:func:`run_config`; the
flags' defaults are the config's), keeps it with the parsed arguments (:func:`config`) and passes
it to :func:`~maco_tf.visualize`; ``results.json`` records the model and the config's record
(:func:`run_settings`), which a resumed run compares (:func:`settings_diff`).
"""

from __future__ import annotations

import argparse
import dataclasses

from maco_tf.core import visualization as api
from maco_tf.core.config import EngineConfig, RunConfig, settings_differences
from maco_tf.core.distribute import Distribution
from maco_tf.core.limits import held_activation_values
from maco_tf.models.layers import model_input_size
from maco_tf.models.loading import LoadedModel

__all__ = [
    "NOT_COMPARED",
    "batch_size",
    "config",
    "default",
    "distribution",
    "run_config",
    "run_settings",
    "settings_diff",
    "settings_key",
]

#: Recorded keys that do not make results differ: where the model was read from, and why its
#: input range was believed (the range itself is compared).
NOT_COMPARED = ("model_source", "values_range_reason")


def default(name: str) -> object:
    """The default of the :class:`~maco_tf.RunConfig` field ``name`` (the flag's default)."""
    item = {f.name: f for f in dataclasses.fields(RunConfig)}[name]
    return item.default


def distribution(args: argparse.Namespace) -> Distribution:
    """The :class:`Distribution` a command set up (none for callers that made no strategy)."""
    return getattr(args, "distribution", None) or Distribution()


def run_config(args: argparse.Namespace, loaded: LoadedModel | None = None) -> RunConfig:
    """The one :class:`~maco_tf.RunConfig` of the flags, validated (bounds included).

    Parameters
    ----------
    args
        Parsed ``visualize``, ``atlas`` or ``accentuate`` flags; a ``method`` of None (no
        ``--method``: ``accentuate``, whose seeds set it) is the default method.
    loaded
        The model, whose value range is used; None: ``--values-range`` (or the default), to
        check the flags before the model is loaded.

    Returns
    -------
    config
        The config; ``config.engine`` holds ``--batch-size`` and ``--jit``.

    Raises
    ------
    InvalidSettingError
        For a setting out of range or over a resource limit.
    """
    values_range = loaded.values_range if loaded is not None else args.values_range
    return RunConfig(
        method=default("method") if args.method is None else args.method,
        steps=args.steps,
        crops=args.crops,
        size=args.size,
        box_size=args.box_size,
        whole_views=args.whole_views,
        noise=args.noise,
        phase_spread=args.phase_spread,
        transforms=args.transforms,
        values_range=values_range if values_range is not None else default("values_range"),
        seed=args.seed,
        snapshots=args.snapshots,
        early_stop=args.early_stop,
        engine=EngineConfig(batch_size=args.batch_size, jit_compile=bool(args.jit)),
    )


def config(args: argparse.Namespace) -> RunConfig:
    """The config built for the loaded model (see :func:`~maco_tf.runs.startup.load_model`)."""
    return args.config


def batch_size(
    args: argparse.Namespace, pending: int | None = None, loaded: LoadedModel | None = None
) -> int:
    """``--batch-size``, or about 128 crops per step on each replica (balanced over ``pending``).

    With the ``loaded`` model, the automatic size shrinks until one batch fits the memory bound
    (:meth:`~maco_tf.Limits.images_per_batch`) instead of being refused by it.
    """
    if args.batch_size:
        return args.batch_size
    replicas = distribution(args).replicas
    size = api.auto_batch_size(args.crops, replicas, pending)
    if loaded is None:
        return size
    run = config(args)
    input_shape = model_input_size(loaded.model)
    image_shape = (*(run.size or input_shape[:2]), input_shape[-1])
    held = held_activation_values(loaded.model)
    return run.limits.images_per_batch(size, run.crops, input_shape, image_shape, held, replicas)


def run_settings(run: RunConfig, loaded: LoadedModel) -> dict:
    """The settings recorded in a results file: the model and the config's record.

    The engine tuning (batch size, XLA) is not a setting: it is recorded per run.
    """
    record = run.record()
    record.pop("engine")
    return {
        "model": loaded.name,
        "model_identity": loaded.identity,
        "model_source": loaded.source,
        **record,
        "values_range_reason": loaded.range_reason,
    }


def settings_diff(old: dict, new: dict) -> list[str]:
    """``"<key> <old>, now <new>"`` for each recorded setting that differs.

    Results files written before a knob was recorded are read with its default (see
    :func:`~maco_tf.core.config.settings_differences`).
    """
    return settings_differences(old, new, ignore=NOT_COMPARED)


def settings_key(settings: dict) -> str:
    """A string equal for two records exactly when :func:`settings_diff` finds no difference."""
    import json

    from maco_tf.core.config import comparable

    return json.dumps(comparable(settings, ignore=NOT_COMPARED), sort_keys=True)

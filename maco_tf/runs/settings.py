"""The settings of a run: its batch size, the record of its :class:`~maco_tf.RunConfig`.

The command line builds one :class:`~maco_tf.RunConfig` from its flags (the flags' defaults are
the config's, :func:`default`) into its :class:`~maco_tf.runs.request.Request`; the batch size
is worked out once here (:func:`batch_size`); ``results.json`` records the model and the
config's record (:func:`run_settings`), which a resumed run compares (:func:`settings_diff`).
"""

from __future__ import annotations

import dataclasses

from maco_tf.core import visualization as api
from maco_tf.core.config import RunConfig, settings_differences
from maco_tf.core.limits import held_activation_values
from maco_tf.models.layers import model_input_size
from maco_tf.models.loading import LoadedModel
from maco_tf.runs.request import Request

__all__ = [
    "NOT_COMPARED",
    "batch_size",
    "default",
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


def batch_size(
    request: Request, pending: int | None = None, loaded: LoadedModel | None = None
) -> int:
    """``--batch-size``, or about 128 crops per step on each replica (balanced over ``pending``).

    The one place a command's batch size is worked out (the engine is always given it). With
    the ``loaded`` model, the automatic size shrinks until one batch fits the memory bound
    (:meth:`~maco_tf.Limits.images_per_batch`) instead of being refused by it.
    """
    if request.batch_size:
        return request.batch_size
    run = request.config
    replicas = request.distribution.replicas
    size = api.auto_batch_size(run.crops, replicas, pending)
    if loaded is None:
        return size
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

"""The settings of a run: defaults, the record written to results files, the call to ``visualize``.

Everything that maps the parsed command line onto the optimisation lives here, in one place: the
defaults of the flags, the settings recorded in ``results.json`` (and compared on resume), and the
keyword arguments given to :func:`maco_tf.core.visualization.visualize`.
"""

from __future__ import annotations

import argparse

import numpy as np

from maco_tf.core import visualization as api
from maco_tf.core.distribute import Distribution
from maco_tf.models.loading import LoadedModel

__all__ = [
    "DEFAULT_BOX_SIZE",
    "DEFAULT_CROPS",
    "DEFAULT_NOISE",
    "DEFAULT_SIZE",
    "DEFAULT_STEPS",
    "DEFAULT_WHOLE_VIEWS",
    "SETTING_KEYS",
    "batch_size",
    "distribution",
    "optimisation_arguments",
    "run_settings",
    "settings_diff",
    "whole_views",
]

#: Settings that must match for a folder's results to be reused.
SETTING_KEYS = (
    "model",
    "model_identity",
    "values_range",
    "method",
    "steps",
    "crops",
    "size",
    "box_size",
    "whole_views",
    "noise",
    "seed",
)
# Defaults chosen so that the whole image shows the target (see README, "Quality"): crops that
# start at the full image keep the object whole; Xplique's 0.5 -> 0.05 optimises fragments.
# Half of Xplique's noise: higher plausibility and target probability (README, "Tuning").
DEFAULT_STEPS = 128
DEFAULT_CROPS = 16
DEFAULT_SIZE = 320
DEFAULT_BOX_SIZE = (1.0, 0.3)
DEFAULT_WHOLE_VIEWS = 4
DEFAULT_NOISE = 0.04


def distribution(args: argparse.Namespace) -> Distribution:
    """The :class:`Distribution` a command set up (none for callers that made no strategy)."""
    return getattr(args, "distribution", None) or Distribution()


def whole_views(args: argparse.Namespace) -> int:
    """``--whole-views``, at most ``--crops`` (every view whole)."""
    return min(args.whole_views, args.crops)


def batch_size(args: argparse.Namespace, pending: int | None = None) -> int:
    """``--batch-size``, or about 128 crops per step on each replica (balanced over ``pending``)."""
    if args.batch_size:
        return args.batch_size
    return api.auto_batch_size(args.crops, distribution(args).replicas, pending)


def run_settings(args: argparse.Namespace, loaded: LoadedModel) -> dict:
    """The settings recorded in a results file (those of :data:`SETTING_KEYS` and the source)."""
    return {
        "model": loaded.name,
        "model_identity": loaded.identity,
        "model_source": loaded.source,
        "values_range": [float(v) for v in loaded.values_range],
        "method": args.method,
        "steps": args.steps,
        "crops": args.crops,
        "size": args.size,
        "box_size": [float(v) for v in args.box_size],
        "whole_views": whole_views(args),
        "noise": args.noise,
        "seed": args.seed,
    }


def settings_diff(old: dict, new: dict) -> list[str]:
    """``"<key> <old>, now <new>"`` for each key of :data:`SETTING_KEYS` that differs."""
    return [
        f"{key} {old.get(key)!r}, now {new.get(key)!r}"
        for key in SETTING_KEYS
        if old.get(key) != new.get(key)
    ]


def optimisation_arguments(args: argparse.Namespace, loaded: LoadedModel) -> dict:
    """Keyword arguments of ``visualize`` (and ``visualize_concepts``) for the run's settings.

    The batch, the progress bar and the random-stream ids are the caller's.
    """
    return {
        "method": args.method,
        "nb_steps": args.steps,
        "nb_crops": args.crops,
        "values_range": loaded.values_range,
        "custom_shape": (args.size, args.size),
        "box_size": np.linspace(*args.box_size, args.steps, dtype=np.float32),
        "noise_intensity": args.noise,
        "jit_compile": args.jit,
        "whole_views": whole_views(args),
    }

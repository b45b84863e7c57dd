"""The ``accentuate`` command: its flags, and one call (``runs.accentuating.accentuate_photo``).

``maco-tf accentuate --image photo.jpg --classes goldfish`` writes ``seed.png`` and, per target,
the files of ``maco-tf visualize`` with the objective before and after in ``results.json``.
"""

from __future__ import annotations

import argparse

from maco_tf.cli.flags import (
    add_model_arguments,
    add_output_arguments,
    add_target_arguments,
    to_request,
)
from maco_tf.cli.parsing import non_negative_number, positive_int
from maco_tf.runs import settings as run_settings
from maco_tf.runs.accentuating import accentuate_photo
from maco_tf.targets.accentuation import ACCENTUATION_DEFAULTS

__all__ = ["add_accentuate_parser", "run_accentuate"]

#: Settings without a flag: the accentuation's own (its method is set by the seed).
_FIXED = ("box_size", "whole_views", "noise")
#: RunConfig knobs without a flag here, at their defaults (its seeds' spectra set the phase).
_UNUSED = ("phase_spread", "transforms", "snapshots", "early_stop")


def add_accentuate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``maco-tf accentuate`` (flags and handler) on the command parser."""
    parser = subparsers.add_parser(
        "accentuate",
        help="accentuate what drives classes or units in a photo (feature accentuation)",
        description="Change a photo just enough to drive each target (Hamblin, Fel et al., "
        "2024) and save the images, transparency maps and results.json in --out. Re-running "
        "the same command resumes: finished targets are skipped.",
    )
    add_model_arguments(parser)
    parser.add_argument("--image", required=True, help="the photo (any format PIL reads)")
    add_target_arguments(parser)
    how = parser.add_argument_group("optimisation")
    steps, crops = ACCENTUATION_DEFAULTS["steps"], ACCENTUATION_DEFAULTS["crops"]
    how.add_argument("--steps", type=positive_int(1), default=steps, help=f"default {steps}")
    how.add_argument("--crops", type=positive_int(0), default=crops, help=f"default {crops}")
    how.add_argument(
        "--size",
        type=positive_int(1),
        default=ACCENTUATION_DEFAULTS["size"],
        help="square image side, as maco-tf visualize; default the model input",
    )
    how.add_argument(
        "--penalty",
        type=non_negative_number,
        default=1.0,
        help="weight of the squared pixel distance to the photo (default 1; higher: closer)",
    )
    how.add_argument("--seed", type=positive_int(0), default=0, help="from 0 to 2**63 - 1")
    how.add_argument("--batch-size", type=positive_int(1), default=None, help="targets at once")
    add_output_arguments(parser.add_argument_group("output"), "target", "the", folder="accent_out")
    parser.set_defaults(
        handler=run_accentuate,
        method=None,  # no --method: the seed's own spectrum is optimised
        jit=False,
        **{name: ACCENTUATION_DEFAULTS[name] for name in _FIXED},
        **{name: run_settings.default(name) for name in _UNUSED},
    )


def run_accentuate(args: argparse.Namespace) -> int:
    """``maco-tf accentuate``: accentuate ``--image`` for each missing target in ``--out``; 0.

    See :func:`maco_tf.runs.accentuating.accentuate_photo`.
    """
    return accentuate_photo(to_request(args))

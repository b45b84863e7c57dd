"""The ``atlas`` command: its flags, and one call to :func:`maco_tf.atlas.run.run_atlas`."""

from __future__ import annotations

import argparse

from maco_tf.atlas.craft import DEFAULT_CONCEPTS
from maco_tf.atlas.run import run_atlas
from maco_tf.atlas.units import DEFAULT_COPIES, DEFAULT_DIVERSITY, DEFAULT_PATCHES
from maco_tf.cli.flags import (
    add_model_arguments,
    add_optimisation_arguments,
    add_output_arguments,
    add_unit_arguments,
    to_request,
)
from maco_tf.cli.parsing import non_negative_number, positive_int, shard

__all__ = ["add_atlas_parser", "atlas"]


def atlas(args: argparse.Namespace) -> int:
    """``maco-tf atlas``: the classes (or units) of the flags and their website; 0 when done."""
    return run_atlas(to_request(args))


def add_atlas_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``maco-tf atlas`` (flags and handler) on the command parser."""
    parser = subparsers.add_parser(
        "atlas",
        help="visualize every class (or units of a layer) of a model and build a website",
        description="Optimise one image per class (resumable, shardable) and write a static "
        "website into --out: index.html with a searchable grid, one page per class. With "
        "--layer and --channels, --neurons or --directions: a unit atlas, one page per unit "
        "with diverse images, and top-activating patches and a trust score from --examples.",
    )
    add_model_arguments(parser)
    what = parser.add_argument_group("classes, or units of a layer")
    what.add_argument(
        "--classes",
        help="comma-separated class names or indices (default: every class of the model)",
    )
    add_unit_arguments(what)
    what.add_argument(
        "--shard",
        type=shard,
        default=(0, 1),
        metavar="I/N",
        help="render the classes at positions p with p %% N == I (default 0/1: all); shards "
        "may share --out",
    )
    what.add_argument(
        "--examples",
        metavar="DIR",
        help="one folder of example images per class (named by class name, index, WordNet id "
        "or slug), shown on the class pages and used to find CRAFT concepts; for units, a "
        "folder of photos (searched recursively) for top-activating patches and the trust score",
    )
    what.add_argument(
        "--concepts",
        type=positive_int(0),
        default=DEFAULT_CONCEPTS,
        help=f"CRAFT concepts per class with --examples (0: none; default {DEFAULT_CONCEPTS})",
    )
    what.add_argument(
        "--copies",
        type=positive_int(0),
        default=DEFAULT_COPIES,
        metavar="K",
        help=f"units: K diverse images per unit, optimised together with a diversity term "
        f"(0: none; default {DEFAULT_COPIES})",
    )
    what.add_argument(
        "--diversity",
        type=non_negative_number,
        default=DEFAULT_DIVERSITY,
        metavar="W",
        help=f"units: weight of the diversity term of the --copies (default {DEFAULT_DIVERSITY:g})",
    )
    what.add_argument(
        "--patches",
        type=positive_int(1),
        default=DEFAULT_PATCHES,
        metavar="K",
        help=f"units: top-activating patches shown per unit with --examples "
        f"(default {DEFAULT_PATCHES})",
    )
    add_optimisation_arguments(
        parser.add_argument_group("optimisation (as maco-tf visualize)"), "classes"
    )
    out = parser.add_argument_group("output")
    add_output_arguments(out, "class", "this shard's")
    out.add_argument(
        "--build-only",
        action="store_true",
        help="only (re)build the website from the results already in --out",
    )
    parser.set_defaults(handler=atlas, snapshots=None)  # the site shows final images

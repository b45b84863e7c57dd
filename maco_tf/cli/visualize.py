"""The ``visualize`` command: its flags, and one call (``runs.visualizing.run_visualize``)."""

from __future__ import annotations

import argparse

from maco_tf.cli.flags import (
    add_model_arguments,
    add_optimisation_arguments,
    add_output_arguments,
    add_snapshot_arguments,
    add_target_arguments,
    to_request,
)
from maco_tf.runs.visualizing import run_visualize

__all__ = ["add_visualize_parser", "visualize"]


def visualize(args: argparse.Namespace) -> int:
    """``maco-tf visualize``: optimise the missing targets into ``--out``; 0 when done."""
    return run_visualize(to_request(args))


def add_visualize_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``maco-tf visualize`` (flags and handler) on the command parser."""
    vis = subparsers.add_parser(
        "visualize",
        help="optimise images for classes, channels, neurons or directions",
        description="Optimise one image per target and save PNGs and results.json in --out. "
        "Re-running the same command resumes: finished targets are skipped.",
    )
    add_model_arguments(vis)
    add_target_arguments(vis)
    vis.add_argument(
        "--examples",
        metavar="DIR",
        help="a folder of natural photos: record and print each target's trust score (does its "
        "visualization reach the target the way the photos that excite it most do?)",
    )
    add_optimisation_arguments(vis.add_argument_group("optimisation"), "targets")
    output = vis.add_argument_group("output")
    add_output_arguments(output, "target", "the")
    add_snapshot_arguments(output)
    vis.set_defaults(handler=visualize)

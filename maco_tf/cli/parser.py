"""The ``maco-tf`` argument parser: ``visualize``, ``layers``, ``atlas`` and ``accentuate``."""

from __future__ import annotations

import argparse

from maco_tf.cli import commands
from maco_tf.cli.accentuate import add_accentuate_parser
from maco_tf.cli.atlas import add_atlas_parser
from maco_tf.cli.flags import (
    add_model_arguments,
    add_optimisation_arguments,
    add_output_arguments,
    add_snapshot_arguments,
    add_target_arguments,
)
from maco_tf.version import __version__

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``maco-tf`` argument parser; each command sets ``handler(args) -> exit code``."""
    parser = argparse.ArgumentParser(
        prog="maco-tf", description="MACO feature visualization for Keras models."
    )
    parser.add_argument("--version", action="version", version=f"maco-tf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_visualize_parser(subparsers)
    layers = subparsers.add_parser("layers", help="list the layer paths of a model")
    add_model_arguments(layers)
    layers.set_defaults(handler=commands.layers)
    add_atlas_parser(subparsers)
    add_accentuate_parser(subparsers)
    return parser


def _add_visualize_parser(subparsers: argparse._SubParsersAction) -> None:
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
    vis.set_defaults(handler=commands.visualize)

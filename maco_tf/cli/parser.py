"""The ``maco-tf`` argument parser: ``visualize``, ``layers``, ``atlas`` and ``accentuate``.

Each command's module declares its flags and sets its handler, which builds the command's
:class:`~maco_tf.runs.request.Request` (:func:`maco_tf.cli.flags.to_request`) and makes one call.
"""

from __future__ import annotations

import argparse

from maco_tf.cli.accentuate import add_accentuate_parser
from maco_tf.cli.atlas import add_atlas_parser
from maco_tf.cli.layers import add_layers_parser
from maco_tf.cli.visualize import add_visualize_parser
from maco_tf.version import __version__

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``maco-tf`` argument parser; each command sets ``handler(args) -> exit code``."""
    parser = argparse.ArgumentParser(
        prog="maco-tf", description="MACO feature visualization for Keras models."
    )
    parser.add_argument("--version", action="version", version=f"maco-tf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_visualize_parser(subparsers)
    add_layers_parser(subparsers)
    add_atlas_parser(subparsers)
    add_accentuate_parser(subparsers)
    return parser

"""The ``layers`` command: its flags, and the model's layer paths and output shapes printed."""

from __future__ import annotations

import argparse
import sys

from maco_tf.cli.flags import add_model_arguments, model_spec
from maco_tf.models import loading as models
from maco_tf.models.contract import ModelContractError
from maco_tf.models.layers import find_layer, layer_paths

__all__ = ["add_layers_parser", "layers"]


def add_layers_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``maco-tf layers`` (flags and handler) on the command parser."""
    parser = subparsers.add_parser("layers", help="list the layer paths of a model")
    add_model_arguments(parser)
    parser.set_defaults(handler=layers)


def layers(args: argparse.Namespace) -> int:
    """``maco-tf layers``: print each layer path of the model and its output shape; 0.

    The input range is said first; one that cannot be inferred is said, not refused (listing
    layers does not need it).
    """
    spec = model_spec(args)
    try:
        loaded = models.load_model(spec.model, **spec.options())
        print(loaded.describe_range(), file=sys.stderr)
    except ModelContractError as exc:
        print(f"note: {exc}", file=sys.stderr)
        loaded = models.load_model(spec.model, **{**spec.options(), "values_range": (0, 1)})
    for path in layer_paths(loaded.model):
        layer = find_layer(loaded.model, path)[-1]
        try:
            shape = tuple(layer.output.shape[1:])
        except (AttributeError, ValueError):
            shape = "?"
        print(f"{path}\t{shape}")
    return 0

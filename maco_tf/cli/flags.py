"""The flags that several ``maco-tf`` commands share, declared once, and the request they make.

Each command's parsed flags become one :class:`~maco_tf.runs.request.Request`
(:func:`to_request`), the only thing the run machinery below the command line sees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from maco_tf.cli.parsing import (
    box_sizes,
    int_list,
    non_negative_number,
    positive_int,
    positive_number,
    values_range,
)
from maco_tf.core.config import EngineConfig, RunConfig
from maco_tf.core.distribute import STRATEGIES
from maco_tf.core.transforms import TRANSFORMS, Transform, parse_transforms
from maco_tf.errors import InvalidSettingError
from maco_tf.runs.request import ModelSpec, Request, TargetSpec
from maco_tf.runs.settings import default

__all__ = [
    "add_model_arguments",
    "add_optimisation_arguments",
    "add_output_arguments",
    "add_snapshot_arguments",
    "add_target_arguments",
    "add_unit_arguments",
    "model_spec",
    "run_config",
    "to_request",
]

#: Where to put the flags: a parser or one of its argument groups.
Flags = argparse.ArgumentParser | argparse._ArgumentGroup


def add_model_arguments(parser: Flags) -> None:
    """``--model`` and how to read it (``visualize``, ``layers``, ``atlas``, ``accentuate``).

    ``--values-range``, ``--input-size``, ``--custom-objects`` and ``--output``: the arguments
    of the same names of :func:`maco_tf.load_model`.
    """
    parser.add_argument(
        "--model",
        default=None,
        help="efficientnet-lite0 (default) or efficientnet-lite1 (both offline), a .keras/.h5 "
        "file, a SavedModel folder, or a keras.applications name such as MobileNetV2 "
        "(ImageNet weights downloaded by Keras)",
    )
    parser.add_argument(
        "--values-range",
        type=values_range,
        default=None,
        metavar="LOW,HIGH",
        help="input range the model expects; wins over the inferred one (default: inferred "
        "from the keras.applications model it is or the preprocessing layer at its input)",
    )
    parser.add_argument(
        "--input-size",
        type=positive_int(1),
        default=None,
        metavar="N",
        help="build the model on an N x N input (default: its own; for an open input the size "
        "its family was trained at, else 224)",
    )
    parser.add_argument(
        "--custom-objects",
        default=None,
        metavar="MODULE.py",
        help="Python file defining the custom layers or model classes a .keras file uses",
    )
    parser.add_argument(
        "--output",
        default=None,
        metavar="NAME",
        help="for a model with several outputs, the one to use (default: the first)",
    )


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The target flags of ``visualize`` and ``accentuate``, in their own argument group.

    ``--classes``, or ``--layer`` with one of ``--channel``, ``--neuron``, ``--direction``.
    """
    what = parser.add_argument_group("targets (--classes, or --layer with one of the others)")
    what.add_argument("--classes", help="comma-separated class names or indices: espresso,1")
    add_unit_arguments(what)


def add_unit_arguments(what: Flags) -> None:
    """``--layer`` and its units: ``--channel``, ``--neuron``, ``--direction`` (or plurals).

    Shared by ``visualize``, ``accentuate`` and ``atlas``; the plural spellings
    (``--channels 0-63``) are aliases of the same flags.
    """
    what.add_argument("--layer", help="layer name, index, or nested path backbone/layer")
    what.add_argument(
        "--channel", "--channels", dest="channel", type=int_list, help="channel indices: 0,5,10-12"
    )
    what.add_argument(
        "--neuron", "--neurons", dest="neuron", type=int_list, help="flat unit indices of --layer"
    )
    what.add_argument(
        "--direction",
        "--directions",
        dest="direction",
        metavar="FILE.npy",
        help="direction(s): (C,) or (N, C)",
    )


def add_optimisation_arguments(how: Flags, unit: str) -> None:
    """The optimisation flags (``visualize`` and ``atlas``).

    Parameters
    ----------
    how
        Parser or argument group to add them to.
    unit
        What one compiled batch holds, for the ``--batch-size`` help ("targets", "classes").
    """
    how.add_argument("--method", choices=("maco", "fourier", "pixel"), default="maco")
    how.add_argument(
        "--steps",
        type=positive_int(1),
        default=default("steps"),
        help=f"default {default('steps')}",
    )
    how.add_argument(
        "--crops",
        type=positive_int(0),
        default=default("crops"),
        help=f"per step; default {default('crops')}",
    )
    how.add_argument(
        "--size",
        type=positive_int(1),
        default=default("size"),
        help=f"image side; default {default('size')}",
    )
    how.add_argument(
        "--box-size",
        type=box_sizes,
        default=default("box_size"),
        metavar="START,END",
        help="crop side as a fraction of the image side, linear from START to END "
        "(default {:g},{:g}; Xplique's is 0.5,0.05)".format(*default("box_size")),
    )
    how.add_argument(
        "--whole-views",
        type=positive_int(0),
        default=default("whole_views"),
        metavar="K",
        help=f"of the --crops views each step, K show the whole image (default "
        f"{default('whole_views')}; Xplique: 0)",
    )
    how.add_argument(
        "--noise",
        type=non_negative_number,
        default=default("noise"),
        metavar="STD",
        help=f"noise std added to every view, for inputs of range width 2 (scaled to the "
        f"model's range; default {default('noise'):g}; Xplique: 0.08)",
    )
    how.add_argument(
        "--phase-spread",
        type=positive_number,
        default=default("phase_spread"),
        metavar="STD",
        help=f"spread of MACO's standardised phase (default {default('phase_spread'):.4g}, "
        f"pi; Xplique: 1)",
    )
    how.add_argument(
        "--transforms",
        type=_transforms,
        default=default("transforms"),
        metavar="NAME:VALUE,...",
        help=f"transformations of every view after the crops, in order, e.g. jitter:8,rotate:5 "
        f"(names: {', '.join(TRANSFORMS)}); default none",
    )
    how.add_argument(
        "--seed",
        type=positive_int(0),
        default=default("seed"),
        help=f"from 0 to 2**63 - 1; default {default('seed')}",
    )
    how.add_argument(
        "--early-stop",
        type=positive_int(1),
        default=default("early_stop"),
        metavar="W",
        help="stop a batch once the mean objective of its last W steps gains less than 1%% "
        "on the W steps before, for every image (default: run all --steps)",
    )
    how.add_argument(
        "--batch-size",
        type=positive_int(1),
        default=None,
        help=f"{unit} optimised (and saved) together; default: about 128 crops per step",
    )
    how.add_argument("--jit", action="store_true", help="compile the loop with XLA")
    how.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="tf.distribute over devices: mirrored (this machine's GPUs), multi-worker "
        "(machines listed in TF_CONFIG; run the same command on each, the chief writes), none; "
        "default auto: multi-worker with TF_CONFIG, mirrored with several GPUs, else none",
    )


def _transforms(text: str) -> tuple[Transform, ...]:
    """``--transforms``: ``name:value`` pairs separated by commas."""
    try:
        return parse_transforms(text)
    except InvalidSettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_output_arguments(out: Flags, unit: str, replaced: str, folder: str = "maco_out") -> None:
    """``--out``, ``--overwrite`` and ``--quiet`` (``visualize``, ``atlas``, ``accentuate``).

    Parameters
    ----------
    out
        Parser or argument group to add them to.
    unit
        What gets one progress line ("target", "class").
    replaced
        Whose results ``--overwrite`` discards, for its help ("the", "this shard's").
    folder
        The default ``--out``.
    """
    out.add_argument("--out", default=folder, help=f"output folder (default {folder})")
    out.add_argument(
        "--overwrite",
        action="store_true",
        help=f"discard {replaced} results made with other settings (deletes their images)",
    )
    out.add_argument("--quiet", action="store_true", help=f"no progress bar nor per-{unit} lines")


def add_snapshot_arguments(out: Flags) -> None:
    """``--snapshots K`` (``visualize``): the images every K steps, saved beside each target."""
    out.add_argument(
        "--snapshots",
        type=positive_int(1),
        default=default("snapshots"),
        metavar="K",
        help="also save each target's image every K steps (and the last) as "
        "<target>/snapshots/step_0016.png",
    )


def run_config(args: argparse.Namespace) -> RunConfig:
    """The one :class:`~maco_tf.RunConfig` of the flags, validated (bounds included).

    A ``method`` of None (no ``--method``: ``accentuate``, whose seed sets it) is the default
    method; the value range is ``--values-range`` or the default until the model is loaded.

    Raises
    ------
    InvalidSettingError
        For a setting out of range or over a resource limit.
    """
    values_range = args.values_range
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


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The model flags (``--model``, ``--values-range``, ``--input-size``...)."""
    names = ("model", "values_range", "input_size", "custom_objects", "output")
    return ModelSpec(**{name: getattr(args, name, None) for name in names})


def to_request(args: argparse.Namespace) -> Request:
    """The one :class:`~maco_tf.runs.request.Request` of a command's parsed flags.

    Raises
    ------
    InvalidSettingError
        For a setting out of range or over a resource limit (before any model is loaded).
    """
    targets = TargetSpec(
        **{name: getattr(args, name, None) for name in ("classes", "layer", "channel", "neuron")},
        direction=getattr(args, "direction", None),
    )
    optional = ("image", "penalty", "shard", "concepts", "copies", "diversity", "patches")
    return Request(
        config=run_config(args),
        model=model_spec(args),
        targets=targets,
        out=Path(args.out),
        overwrite=bool(args.overwrite),
        quiet=bool(args.quiet),
        examples=getattr(args, "examples", None),
        method_given=args.method is not None,
        strategy=getattr(args, "strategy", "none"),
        build_only=bool(getattr(args, "build_only", False)),
        **{name: getattr(args, name) for name in optional if hasattr(args, name)},
    )

"""The ``visualize`` and ``layers`` commands: parsed arguments in, an exit code out.

User mistakes raise :class:`~maco_tf.errors.MacoError`; :func:`maco_tf.cli.main.main` turns
them into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models import loading as models
from maco_tf.models.contract import ModelContractError
from maco_tf.models.layers import find_layer, layer_paths
from maco_tf.models.loading import LoadedModel
from maco_tf.runs import settings as run_settings
from maco_tf.runs.plans import Plan, plan_classes, plan_layer
from maco_tf.runs.results import RESULTS_FILE, open_results
from maco_tf.runs.running import run_pending, sayer
from maco_tf.runs.startup import (
    agreed_pending,
    load_model,
    model_options,
    set_up_distribution,
    writable,
)
from maco_tf.runs.trust_records import load_examples

__all__ = ["EXIT_OK", "layers", "plan", "visualize"]

EXIT_OK = 0
_UNIT_FLAGS = ("channel", "neuron", "direction")


def plan(args: argparse.Namespace, loaded: LoadedModel) -> Plan:
    """The targets of ``--classes``, or of ``--layer`` with one of ``--channel/neuron/direction``.

    Raises
    ------
    MacoError
        For a missing or conflicting choice of targets, or an unknown class, layer or index.
    """
    chosen = [flag for flag in _UNIT_FLAGS if getattr(args, flag) is not None]
    if args.classes is not None:
        if chosen:
            raise MacoError("--classes cannot be combined with --channel, --neuron or --direction")
        return plan_classes(loaded, args.classes, args.layer)
    if args.layer is None:
        if chosen:
            raise MacoError("--channel, --neuron and --direction need --layer")
        raise MacoError(
            "nothing to visualize: give --classes, or --layer with --channel, --neuron or "
            "--direction"
        )
    return plan_layer(
        loaded, args.layer, channel=args.channel, neuron=args.neuron, direction=args.direction
    )


def visualize(args: argparse.Namespace) -> int:
    """``maco-tf visualize``: optimise the missing targets into ``--out``; 0 when done."""
    started = time.perf_counter()
    out = Path(args.out)
    OutputFolder(out).check_writable()
    say = sayer(args.quiet)
    distribution = set_up_distribution(args, say)
    loaded = load_model(args, distribution, say)
    targets = plan(args, loaded)
    photos = None if args.examples is None else load_examples(args.examples, loaded)
    settings = run_settings.run_settings(run_settings.config(args), loaded)
    batch_size = run_settings.batch_size(args, loaded=loaded)
    with writable(out, distribution) as folder, OutputFolder(folder).lock(RESULTS_FILE):
        results = open_results(folder / RESULTS_FILE, settings, args.overwrite)
        pending = [i for i, target in enumerate(targets.targets) if not results.is_done(target)]
        pending = agreed_pending(args, settings, targets, pending, batch_size)
        total = len(targets.targets)
        for i in sorted(set(range(total)) - set(pending)):
            say(f"skipped {targets.targets[i].slug} (already in {out})")
        run = run_pending(args, loaded, targets, pending, results, batch_size, say, started, photos)
    say(
        f"{total} targets: {run['computed']} computed, {run['skipped']} skipped; "
        f"results in {out / RESULTS_FILE} ({run['time_s']:.1f} s)"
    )
    return EXIT_OK


def layers(args: argparse.Namespace) -> int:
    """``maco-tf layers``: print each layer path of the model and its output shape; 0.

    The input range is said first; one that cannot be inferred is said, not refused (listing
    layers does not need it).
    """
    try:
        loaded = models.load_model(args.model, **model_options(args))
        print(loaded.describe_range(), file=sys.stderr)
    except ModelContractError as exc:
        print(f"note: {exc}", file=sys.stderr)
        loaded = models.load_model(args.model, **{**model_options(args), "values_range": (0, 1)})
    for path in layer_paths(loaded.model):
        layer = find_layer(loaded.model, path)[-1]
        try:
            shape = tuple(layer.output.shape[1:])
        except (AttributeError, ValueError):
            shape = "?"
        print(f"{path}\t{shape}")
    return EXIT_OK

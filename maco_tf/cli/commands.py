"""The ``visualize`` and ``layers`` commands: parsed arguments in, an exit code out.

User mistakes raise :class:`~maco_tf.errors.MacoError`; :func:`maco_tf.cli.main.main` turns
them into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time

from maco_tf.cli.flags import model_spec, to_request
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models import loading as models
from maco_tf.models.contract import ModelContractError
from maco_tf.models.layers import find_layer, layer_paths
from maco_tf.models.loading import LoadedModel
from maco_tf.runs import settings as run_settings
from maco_tf.runs.plans import Plan, plan_classes, plan_layer
from maco_tf.runs.request import Request, TargetSpec
from maco_tf.runs.results import RESULTS_FILE, open_results
from maco_tf.runs.running import run_pending, sayer
from maco_tf.runs.startup import agreed_pending, load_model, set_up_distribution, writable
from maco_tf.runs.trust import load_examples

__all__ = ["EXIT_OK", "layers", "plan", "run_visualize", "visualize"]

EXIT_OK = 0
_UNIT_FLAGS = ("channel", "neuron", "direction")


def plan(targets: TargetSpec, loaded: LoadedModel) -> Plan:
    """The targets of ``--classes``, or of ``--layer`` with one of ``--channel/neuron/direction``.

    Raises
    ------
    MacoError
        For a missing or conflicting choice of targets, or an unknown class, layer or index.
    """
    chosen = [flag for flag in _UNIT_FLAGS if getattr(targets, flag) is not None]
    if targets.classes is not None:
        if chosen:
            raise MacoError("--classes cannot be combined with --channel, --neuron or --direction")
        return plan_classes(loaded, targets.classes, targets.layer)
    if targets.layer is None:
        if chosen:
            raise MacoError("--channel, --neuron and --direction need --layer")
        raise MacoError(
            "nothing to visualize: give --classes, or --layer with --channel, --neuron or "
            "--direction"
        )
    return plan_layer(
        loaded,
        targets.layer,
        channel=targets.channel,
        neuron=targets.neuron,
        direction=targets.direction,
    )


def visualize(args: argparse.Namespace) -> int:
    """``maco-tf visualize``: optimise the missing targets into ``--out``; 0 when done."""
    return run_visualize(to_request(args))


def run_visualize(request: Request) -> int:
    """Optimise the request's missing targets into its ``out`` folder; 0 when done."""
    started = time.perf_counter()
    out = request.out
    OutputFolder(out).check_writable()
    say = sayer(request.quiet)
    request = set_up_distribution(request, say)
    loaded, request = load_model(request, say)
    targets = plan(request.targets, loaded)
    photos = None if request.examples is None else load_examples(request.examples, loaded)
    settings = run_settings.run_settings(request.config, loaded)
    batch_size = run_settings.batch_size(request, loaded=loaded)
    distribution = request.distribution
    with writable(out, distribution) as folder, OutputFolder(folder).lock(RESULTS_FILE):
        results = open_results(folder / RESULTS_FILE, settings, request.overwrite)
        pending = [i for i, target in enumerate(targets.targets) if not results.is_done(target)]
        pending = agreed_pending(request, settings, targets, pending, batch_size)
        total = len(targets.targets)
        for i in sorted(set(range(total)) - set(pending)):
            say(f"skipped {targets.targets[i].slug} (already in {out})")
        run = run_pending(
            request, loaded, targets, pending, results, batch_size, say, started, photos
        )
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
    return EXIT_OK

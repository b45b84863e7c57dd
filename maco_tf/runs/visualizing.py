"""``maco-tf visualize`` below the command line: a request's targets optimised into its folder."""

from __future__ import annotations

import time

from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models.loading import LoadedModel
from maco_tf.runs import settings as run_settings
from maco_tf.runs.plans import Plan, plan_classes, plan_layer
from maco_tf.runs.request import Request, TargetSpec
from maco_tf.runs.results import RESULTS_FILE, open_results
from maco_tf.runs.running import run_pending, sayer
from maco_tf.runs.startup import agreed_pending, load_model, set_up_distribution, writable
from maco_tf.runs.trust_records import load_examples

__all__ = ["plan_targets", "run_visualize"]


def plan_targets(targets: TargetSpec, loaded: LoadedModel) -> Plan:
    """The targets of ``--classes``, or of ``--layer`` with one of ``--channel/neuron/direction``.

    Raises
    ------
    MacoError
        For a missing or conflicting choice of targets, or an unknown class, layer or index.
    """
    chosen = targets.units_given()
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


def run_visualize(request: Request) -> int:
    """Optimise the request's missing targets into its ``out`` folder; 0 when done.

    The targets run chunk by chunk on the shared run loop
    (:func:`~maco_tf.runs.running.run_pending`): each finished chunk is saved, so an
    interrupted run keeps it and a re-run resumes.

    Raises
    ------
    MacoError
        For user mistakes (exit code 2 in ``maco-tf``).
    RunInterruptedError
        On Ctrl-C or SIGTERM, after the finished targets are saved.
    """
    started = time.perf_counter()
    out = request.out
    OutputFolder(out).check_writable()
    say = sayer(request.quiet)
    request = set_up_distribution(request, say)
    loaded, request = load_model(request, say)
    targets = plan_targets(request.targets, loaded)
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
    return 0

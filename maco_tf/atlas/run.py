"""``maco-tf atlas``: one feature visualization per class, and a static website to browse them.

Usage::

    maco-tf atlas                                   # all 1000 ImageNet classes, EfficientNet-Lite0
    maco-tf atlas --classes espresso,goldfish,1     # some classes
    maco-tf atlas --shard 0/4 --out atlas &         # four processes (or machines) share the
    maco-tf atlas --shard 1/4 --out atlas & ...     # work and the folder
    maco-tf atlas --out atlas --build-only          # (re)build the website from what is done
    maco-tf atlas --examples photos/ --classes espresso   # class pages show photos/espresso/*

The optimisation is ``maco-tf visualize``'s (same flags, same defaults, same files): classes are
optimised ``--batch-size`` at a time in one compiled loop, and after each chunk their PNGs are
written and the results file is rewritten atomically, so an interrupted run loses no finished
class and a re-run skips them. ``--shard I/N`` renders the classes at positions ``p`` with
``p % N == I`` and records them in its own results file (:mod:`maco_tf.atlas.shards`).

With ``--examples DIR`` (:mod:`maco_tf.atlas.examples`), each class page shows the examples and,
unless ``--concepts 0``, the CRAFT concepts of the class (:mod:`maco_tf.atlas.craft`).

The website (:mod:`maco_tf.atlas.site`: ``index.html``, ``classes/<slug>.html``, ``thumbs/``,
``examples/``, ``assets/``) is written into ``--out`` after the run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from maco_tf.atlas.craft import run_concept_phase
from maco_tf.atlas.examples import copy_all_examples, match_example_folders, report_unmatched
from maco_tf.atlas.shard_run import Phases, run_shard, shard_positions
from maco_tf.atlas.shards import finished, results_name
from maco_tf.atlas.site import SiteSummary, build_site
from maco_tf.atlas.site_data import collect
from maco_tf.atlas.unit_site import holds_units
from maco_tf.atlas.units import is_unit_atlas, run_unit_atlas
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models.layers import find_layer
from maco_tf.models.loading import LoadedModel
from maco_tf.runs.plans import Plan, plan_classes
from maco_tf.runs.request import Request
from maco_tf.runs.results import Results
from maco_tf.runs.running import Say, sayer
from maco_tf.runs.startup import load_model, set_up_distribution, writable

__all__ = ["run_atlas"]


def _all_classes(loaded: LoadedModel) -> str:
    """``"0,1,...,K-1"`` for the K classes of the model (its named classes, or logit units)."""
    if loaded.class_names is not None:
        count = len(loaded.class_names)
    else:
        if loaded.logits_layer is None:
            raise MacoError(f"model {loaded.name!r} has no known logits layer; give --classes")
        shape = find_layer(loaded.model, loaded.logits_layer)[-1].output.shape
        count = int(shape[-1])
    return ",".join(str(i) for i in range(count))


def _class_plan(request: Request, loaded: LoadedModel) -> Plan:
    """The classes of ``--classes`` (default all), planned as ``maco-tf visualize`` does."""
    classes = request.targets.classes
    spec = classes if classes is not None else _all_classes(loaded)
    return plan_classes(loaded, spec)


def _build(out: Path, settings: dict | None, say: Say) -> SiteSummary:
    summary = build_site(out, settings)
    for note in summary.notes:
        print(f"maco-tf: note: {note}", file=sys.stderr)
    say(f"website: {summary.index} ({summary.classes} classes)")
    return summary


def _build_only(request: Request, out: Path, say: Say) -> int:
    """``--build-only``: copy ``--examples`` if given, then (re)build the website."""
    if request.examples:
        site, _ = collect(out, None)
        classes = [(r["slug"], int(r["index"]), r["name"]) for r in site.classes]
        folders, unmatched = match_example_folders(Path(request.examples), classes)
        report_unmatched(unmatched)
        copy_all_examples(out, folders, say)
    _build(out, None, say)
    return 0


def run_atlas(request: Request) -> int:
    """Run ``maco-tf atlas``: render the shard's missing classes, then build the website.

    Parameters
    ----------
    request
        The ``atlas`` command's request (see :mod:`maco_tf.cli.atlas`).

    Returns
    -------
    code
        0 when done.

    Raises
    ------
    MacoError
        For user mistakes (exit code 2 in ``maco-tf``).
    RunInterruptedError
        On Ctrl-C, after the finished classes are saved (exit code 130 in ``maco-tf``).
    """
    started = time.perf_counter()
    out = request.out
    say = sayer(request.quiet)
    OutputFolder(out).check_writable()
    if is_unit_atlas(request) or (request.build_only and holds_units(out)):
        return run_unit_atlas(request)
    if request.build_only:
        return _build_only(request, out, say)

    request = set_up_distribution(request, say)
    loaded, request = load_model(request, say)
    plan = _class_plan(request, loaded)
    distribution = request.distribution
    lock = results_name(request.shard)
    with writable(out, distribution) as folder, OutputFolder(folder).lock(lock):
        phases = _class_phases(request, folder, loaded, plan, distribution.is_chief, say)
        return run_shard(request, folder, loaded, plan, distribution.is_chief, say, started, phases)


def _example_sources(
    request: Request, out: Path, plan: Plan, positions: Sequence[int], say: Say
) -> dict[str, list[Path]]:
    """Copy the ``--examples`` of the shard's classes into the site; readable photos by slug."""
    targets = [plan.targets[p] for p in positions]
    classes = [(target.slug, target.index, target.name) for target in targets]
    folders, unmatched = match_example_folders(Path(request.examples), classes)
    report_unmatched(unmatched)
    return copy_all_examples(out, folders, say)


def _class_phases(
    request: Request, out: Path, loaded: LoadedModel, plan: Plan, is_chief: bool, say: Say
) -> Phases:
    """Examples (the chief copies them) and CRAFT concepts around the class images."""
    sources: dict[str, list[Path]] = {}
    if request.examples and is_chief:
        positions = shard_positions(len(plan.targets), request.shard)
        sources = _example_sources(request, out, plan, positions, say)

    def concepts(own: Results, positions: Sequence[int]) -> dict[str, int]:
        if not (sources and request.concepts):
            return {"concepts": 0}
        # Concepts are the chief's alone (CRAFT runs on its examples), on one device.
        merged = finished(out, own)
        made = run_concept_phase(request, loaded, plan, positions, sources, own, merged, say)
        return {"concepts": made}

    return Phases("classes", lambda folder, settings: _build(folder, settings, say), concepts)

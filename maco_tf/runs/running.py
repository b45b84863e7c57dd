"""Running a plan's pending targets chunk by chunk, saving the results after each chunk."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from maco_tf.core import visualization as api
from maco_tf.models.loading import LoadedModel
from maco_tf.runs import settings as run_settings
from maco_tf.runs.plans import Plan, image_ids
from maco_tf.runs.request import Request
from maco_tf.runs.results import Results
from maco_tf.runs.scoring import top5 as score_top5
from maco_tf.runs.trust_records import trust_entries
from maco_tf.targets import units as targets

__all__ = ["Produce", "RunInterruptedError", "Say", "run_chunk", "run_pending", "sayer"]

#: Prints a progress line (or not, with ``--quiet``).
Say = Callable[[str], None]
#: Computes, saves and records (in memory) one chunk of targets (indices into the plan).
Produce = Callable[[list[int]], None]


def sayer(quiet: bool) -> Say:
    """Print progress lines (flushed), or nothing with ``--quiet``."""

    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say


class RunInterruptedError(Exception):
    """Ctrl-C during a run, after the finished targets were saved; says how many."""

    def __init__(self, saved: int, total: int, out: Path) -> None:
        super().__init__(
            f"interrupted; {saved} of {total} targets saved in {out}, re-run to resume"
        )


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Dead objectives as one ``maco-tf: warning:`` line each; other warnings as usual."""
    for item in caught:
        if issubclass(item.category, api.DeadObjectiveWarning):
            print(f"maco-tf: warning: {item.message}", file=sys.stderr)
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)


def run_chunk(
    request: Request,
    loaded: LoadedModel,
    plan: Plan,
    chunk: list[int],
    results: Results,
    batch_size: int,
    say: Say,
    photos: np.ndarray | None = None,
) -> None:
    """Optimise, save and record one chunk of targets (indices into ``plan.targets``).

    ``request`` is the one the model was loaded for (:func:`~maco_tf.runs.startup.load_model`).
    Each image's randomness depends on ``--seed`` and its target's id
    (:func:`~maco_tf.runs.plans.image_ids`) only, so it does not depend on the batch, the shard
    or the devices it ran in. With ``photos``
    (:func:`maco_tf.runs.trust_records.load_examples`), each record also holds the target's
    ``"trust"`` entry (:func:`maco_tf.runs.trust_records.trust_entries`).
    """
    ids = image_ids(plan)
    objective = targets.select(plan.objective, chunk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", api.DeadObjectiveWarning)
        result = api.visualize(
            objective,
            request.config,
            batch_size=batch_size,
            progress=not request.quiet,
            strategy=request.distribution.strategy,
            image_ids=[ids[i] for i in chunk],
        )
    _show_warnings(caught)
    top5 = score_top5(loaded, result.images)
    values = result.objective_values
    trust = None if photos is None else trust_entries(objective, result.images, photos, loaded)
    for position, index in enumerate(chunk):
        target = plan.targets[index]
        measured = {
            "objective_value": float(values[position]),
            "dead": bool(result.dead[position]),
            "top5": None if top5 is None else top5[position],
            "seed": result.seed,
            "image_id": ids[index],
            "steps_run": int(result.steps_run[position]),
            "batch_position": position,
            "wall_time_s": round(result.elapsed_s / len(chunk), 3),
            "batch_wall_time_s": round(result.elapsed_s, 3),
        }
        if trust is not None:
            measured["trust"] = trust[position]
        image, transparency = result.images[position], result.transparency[position]
        results.add_target(target, image, transparency, loaded.values_range, measured)
        if result.snapshots is not None:
            results.add_snapshots(
                target, result.snapshots[position], result.snapshot_steps, loaded.values_range
            )
        best = ""
        if top5 is not None:
            first = top5[position][0]
            best = f"  top-1: {first['name']} ({100 * first['probability']:.1f}%)"
        say(f"saved {target.slug}  objective {values[position]:.4g}{best}")
        if trust is not None:
            say(_trust_line(target.slug, trust[position]))


def _trust_line(slug: str, entry: dict) -> str:
    """``trust <slug>: score 0.42 (ok)``, or ``(flagged)``."""
    score = "n/a" if entry["score"] is None else f"{entry['score']:.2f}"
    return f"trust {slug}: score {score} ({'flagged' if entry['flagged'] else 'ok'})"


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM interrupts it as Ctrl-C does (finished work is saved)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_pending(
    request: Request,
    loaded: LoadedModel,
    plan: Plan,
    pending: list[int],
    results: Results,
    batch_size: int,
    say: Say,
    started: float,
    photos: np.ndarray | None = None,
    produce: Produce | None = None,
    record: dict | None = None,
) -> dict:
    """Run the pending targets chunk by chunk, saving ``results`` after each; the run's record.

    Every finished chunk is on disk before the next starts, so Ctrl-C, SIGTERM or ``kill -9``
    loses at most the chunk in progress and a re-run resumes. Ctrl-C and SIGTERM also record
    the run as interrupted.

    Parameters
    ----------
    request, loaded, plan, pending, results, batch_size, say, started
        The command's request (for the loaded model), model, plan, the pending targets
        (indices into ``plan.targets``), its results, the chunk size (``--batch-size``; 0 or
        None: balanced over ``pending``), progress printer and start time (``time.perf_counter()``).
    photos
        Adds the trust check to each chunk of :func:`run_chunk`
        (:func:`maco_tf.runs.trust_records.load_examples`).
    produce
        What makes a chunk, for a command other than ``visualize`` (``accentuate``); default
        :func:`run_chunk`.
    record
        Extra fields of the run's record (``{"image": ...}``).

    Raises
    ------
    RunInterruptedError
        On Ctrl-C or SIGTERM, after saving what was finished.
    """
    distribution = request.distribution
    run = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(record or {}),
        "computed": 0,
        "skipped": len(plan.targets) - len(pending),
        "batch_size": batch_size,
        "jit": request.jit,
        "strategy": distribution.describe(),
        "time_s": 0.0,
    }
    results.runs.append(run)
    if not request.batch_size:  # balanced over what is left to do (pending agreed by workers)
        batch_size = run_settings.batch_size(request, len(pending), loaded)
        run["batch_size"] = batch_size
    if produce is None:

        def produce(chunk: list[int]) -> None:
            run_chunk(request, loaded, plan, chunk, results, batch_size, say, photos)

    try:
        with _terminate_as_interrupt():
            for first in range(0, len(pending), batch_size):
                chunk = pending[first : first + batch_size]
                produce(chunk)
                run["computed"] += len(chunk)
                run["time_s"] = round(time.perf_counter() - started, 3)
                results.save()
    except KeyboardInterrupt:
        run["interrupted"] = True
        run["time_s"] = round(time.perf_counter() - started, 3)
        if run["computed"]:
            results.save()
        saved = sum(results.is_done(target) for target in plan.targets)
        raise RunInterruptedError(saved, len(plan.targets), results.path.parent) from None
    run["time_s"] = round(time.perf_counter() - started, 3)
    if run["computed"]:
        results.save()
    return run

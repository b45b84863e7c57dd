"""One shard of an atlas run: its missing images, then the atlas's own phases, then the website.

The class atlas and the unit atlas share this frame: the shard's targets are those at positions
``p`` with ``p % N == I`` (``--shard I/N``), recorded in the shard's results file
(:mod:`maco_tf.atlas.shards`); targets finished in any results file of the folder with the same
settings are skipped. After the images, :class:`Phases` adds what the kind of atlas adds
(concepts, diverse images, patches), and the chief builds the website.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from maco_tf.atlas.shards import finished, open_shard, results_name
from maco_tf.models.loading import LoadedModel
from maco_tf.runs import settings as run_settings
from maco_tf.runs.plans import Plan
from maco_tf.runs.request import Request
from maco_tf.runs.results import Results
from maco_tf.runs.running import RunInterruptedError, Say, run_pending
from maco_tf.runs.startup import agreed_pending

__all__ = ["Phases", "run_shard", "shard_positions"]


def shard_positions(count: int, shard: tuple[int, int]) -> list[int]:
    """Positions ``p`` in ``0 .. count - 1`` with ``p % N == I`` for ``shard = (I, N)``."""
    index, total = shard
    return [p for p in range(count) if p % total == index]


def _no_extras(own: Results, positions: Sequence[int]) -> dict[str, int]:
    return {}


@dataclass(frozen=True)
class Phases:
    """What a kind of atlas does around the shared image run.

    Attributes
    ----------
    noun
        What the targets are, plural, for progress lines (``"classes"``, ``"units"``).
    build
        ``build(out, settings)``: writes the website (called on the chief only).
    extras
        ``extras(own, positions) -> {name: count}``: runs after the images, records into the
        shard's results ``own`` (the caller saves them) and returns what it made.
    """

    noun: str
    build: Callable[[Path, dict], None]
    extras: Callable[[Results, Sequence[int]], dict[str, int]] = _no_extras


def _shard_done(out: Path, own: Results, plan: Plan, positions: Sequence[int]) -> int:
    merged = finished(out, own)
    return sum(merged.is_done(plan.targets[p]) for p in positions)


def run_shard(
    request: Request,
    out: Path,
    loaded: LoadedModel,
    plan: Plan,
    is_chief: bool,
    say: Say,
    started: float,
    phases: Phases,
) -> int:
    """Render the shard's missing targets into ``out``, run ``phases.extras``, build the site.

    ``request`` is the one the model was loaded for (:func:`~maco_tf.runs.startup.load_model`).

    Returns
    -------
    code
        0 when done.

    Raises
    ------
    RunInterruptedError
        On Ctrl-C, after the finished targets are saved.
    MacoError
        For results made with other settings (without ``--overwrite``).
    """
    positions = shard_positions(len(plan.targets), request.shard)
    settings = run_settings.run_settings(request.config, loaded)
    own = open_shard(out, results_name(request.shard), settings, request.overwrite)
    done = finished(out, own)
    pending = [p for p in positions if not done.is_done(plan.targets[p])]
    batch_size = run_settings.batch_size(request, loaded=loaded)
    pending = agreed_pending(request, settings, plan, pending, batch_size, request.shard)
    index, count = request.shard
    say(
        f"shard {index}/{count}: {len(positions)} of {len(plan.targets)} {phases.noun}, "
        f"{len(positions) - len(pending)} already done; results in {own.path}"
    )
    try:
        run = run_pending(request, loaded, plan, pending, own, batch_size, say, started)
        run.update(shard=f"{index}/{count}", skipped=len(positions) - len(pending))
        extras = phases.extras(own, positions)
        run.update(extras)
    except (RunInterruptedError, KeyboardInterrupt):
        if own.targets:
            own.save()
        saved = _shard_done(out, own, plan, positions)
        raise RunInterruptedError(saved, len(positions), out) from None
    if run["computed"] or any(extras.values()):
        own.save()
    if positions and is_chief:
        phases.build(out, settings)
    made = "".join(f", {name} for {made}" for name, made in extras.items())
    say(
        f"{len(positions)} {phases.noun} in shard {index}/{count}: {run['computed']} computed, "
        f"{run['skipped']} skipped{made}; {time.perf_counter() - started:.1f} s"
    )
    return 0

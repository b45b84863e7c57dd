"""Diverse images of the atlas units: ``--copies K`` images per unit, pushed apart while optimised.

The K copies of a unit are optimised together in one compiled batch by
:func:`maco_tf.core.visualization.visualize` (``copies=K``, the objective
``unit - W * maco_tf.diversity()``: Lucid's Gram-matrix similarity at the unit's layer), with the
atlas's run config. They are saved
in ``diverse/`` and recorded in the unit's results record under ``"diverse"``, keyed by K and W,
so a re-run with the same flags skips them.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from maco_tf.core import visualization as api
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models.loading import LoadedModel
from maco_tf.outputs.render import save_png, to_uint8
from maco_tf.runs.plans import Plan, image_ids
from maco_tf.runs.request import Request
from maco_tf.runs.results import Results
from maco_tf.runs.running import Say
from maco_tf.targets import units as targets
from maco_tf.targets.diversity import diversity

__all__ = ["DIVERSE_DIR", "copy_ids", "diverse_setting", "has_diverse", "run_diverse_phase"]

#: Sub-folder of ``--out`` with the diverse images.
DIVERSE_DIR = "diverse"


def diverse_setting(copies: int, diversity: float) -> str:
    """What a unit's diverse images were made with: ``"<copies>x<diversity>"``."""
    return f"{copies}x{diversity:g}"


def copy_ids(image_id: int, copies: int) -> list[int]:
    """Random-stream ids of a unit's copies: ``image_id * copies + j``, ``j < copies``.

    They are drawn with ``--seed + 1`` (:func:`run_diverse_phase`), so no copy starts where the
    unit's main image (``--seed``, ``image_id``) started.
    """
    return [image_id * copies + j for j in range(copies)]


def has_diverse(folder: OutputFolder, record: dict, setting: str) -> bool:
    """Whether ``record`` names diverse images made with ``setting``, all in ``folder``."""
    diverse = record.get("diverse") or {}
    files = diverse.get("files") or []
    return (
        diverse.get("setting") == setting
        and isinstance(files, list)
        and bool(files)
        and all(folder.is_file(name) for name in files)
    )


def _visualize_copies(request: Request, plan: Plan, position: int):
    """The ``--copies`` images of one unit, optimised jointly with the diversity term."""
    ids = copy_ids(image_ids(plan)[position], request.copies)
    objective = targets.select(plan.objective, [position])
    if request.diversity:
        objective = objective - request.diversity * diversity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", api.DeadObjectiveWarning)
        return api.visualize(
            objective,
            request.config,
            seed=request.config.seed + 1,
            batch_size=request.copies,
            copies=request.copies,
            progress=not request.quiet,
            image_ids=ids,
        )


def _record_copies(folder: OutputFolder, record: dict, result, setting: str, values_range) -> dict:
    """Save the copies in ``diverse/``; ``record`` with its ``"diverse"`` entry (a new dict)."""
    files = []
    for copy in range(len(result)):
        name = f"{DIVERSE_DIR}/{record['slug']}_copy{copy}.png"
        save_png(folder.path(name), to_uint8(result.images[copy], values_range))
        files.append(name)
    diverse = {
        "setting": setting,
        "files": files,
        "objective_values": [round(float(v), 6) for v in result.objective_values],
        "seed": result.seed,
    }
    return {**record, "diverse": diverse}


def run_diverse_phase(
    request: Request,
    loaded: LoadedModel,
    plan: Plan,
    positions: Sequence[int],
    own: Results,
    done: Results,
    say: Say,
) -> int:
    """Diverse images of the shard's finished units that lack them; how many units got them.

    Parameters
    ----------
    request
        The atlas request (``copies``, ``diversity``, ``seed`` and the optimisation flags).
    loaded, plan, positions
        The model, the unit plan and the shard's positions in it.
    own, done
        The shard's results (recorded into, saved after each unit) and what the folder has
        finished (its records are copied into ``own`` when they gain diverse images).
    say
        Progress lines.

    Returns
    -------
    count
        Units whose diverse images were made; 0 with a warning when the layer has no spatial
        output for the diversity term.
    """
    if not request.copies:
        return 0
    setting = diverse_setting(request.copies, request.diversity)
    made = 0
    for position in positions:
        target = plan.targets[position]
        record = own.targets.get(target.slug) or done.targets.get(target.slug)
        if record is None or not done.is_done(target) or has_diverse(own.folder, record, setting):
            continue
        try:
            result = _visualize_copies(request, plan, position)
        except MacoError as exc:
            print(f"maco-tf: warning: no diverse images: {exc}", file=sys.stderr)
            return made
        own.targets[target.slug] = _record_copies(
            own.folder, record, result, setting, loaded.values_range
        )
        own.save()
        made += 1
        say(f"saved {request.copies} diverse images of {target.slug}")
    return made

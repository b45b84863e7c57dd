"""``maco-tf atlas --layer LAYER --channels 0-63``: a unit atlas, one page per unit of a layer.

Usage::

    maco-tf atlas --layer blocks_5 --channels 0-63 --out units        # channels of a layer
    maco-tf atlas --layer blocks_5 --neurons 10,20 --out units        # flat units
    maco-tf atlas --layer blocks_5 --directions dirs.npy --out units  # directions (N, C)
    maco-tf atlas --layer blocks_5 --channels 0-63 --examples photos/ --out units
    maco-tf atlas --layer blocks_5 --channels 0-63 --shard 1/4 --out units   # shards share --out

The units are planned as ``maco-tf visualize --layer`` plans them
(:func:`maco_tf.runs.plans.plan_layer`), and their images are made, recorded, resumed and
sharded exactly as the class atlas's (:mod:`maco_tf.atlas.shard_run`). Then, for each unit of
the shard: ``--copies`` diverse images (:mod:`maco_tf.atlas.diverse`); with ``--examples DIR``
its ``--patches`` top-activating patches from the photos of ``DIR`` (:mod:`maco_tf.atlas.patches`)
and its trust score (:mod:`maco_tf.atlas.unit_trust`). Each
of these is recorded in the unit's results record with what it was made from, so a re-run
skips what is done. The chief writes the website (:mod:`maco_tf.atlas.unit_site`).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from maco_tf.atlas import patches as unit_patches
from maco_tf.atlas.diverse import run_diverse_phase
from maco_tf.atlas.photo_copies import save_jpeg
from maco_tf.atlas.shard_run import Phases, run_shard
from maco_tf.atlas.shards import finished, results_name
from maco_tf.atlas.unit_site import build_unit_site, holds_classes
from maco_tf.atlas.unit_trust import TrustCheck, path_trust
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models.loading import LoadedModel
from maco_tf.runs.plans import Plan, plan_layer
from maco_tf.runs.request import Request
from maco_tf.runs.results import Results
from maco_tf.runs.running import Say, sayer
from maco_tf.runs.startup import load_model, set_up_distribution, writable

__all__ = [
    "DEFAULT_COPIES",
    "DEFAULT_DIVERSITY",
    "DEFAULT_PATCHES",
    "PATCH_DIR",
    "is_unit_atlas",
    "run_patch_phase",
    "run_unit_atlas",
]

DEFAULT_COPIES = 3
DEFAULT_DIVERSITY = 0.1
DEFAULT_PATCHES = 6
#: Sub-folder of ``--out`` with the patches.
PATCH_DIR = "patches"
#: Side in pixels of the saved patches.
PATCH_SIDE = 160
#: Photos whose mean input gradient gives the receptive field.
FIELD_PHOTOS = 8


def is_unit_atlas(request: Request) -> bool:
    """Whether the ``atlas`` request asks for units (``--layer`` or one of its unit flags)."""
    return request.targets.asks_for_units()


def _unit_plan(request: Request, loaded: LoadedModel) -> Plan:
    targets = request.targets
    return plan_layer(
        loaded,
        targets.layer,
        channel=targets.channel,
        neuron=targets.neuron,
        direction=targets.direction,
    )


def _check_arguments(request: Request, out: Path) -> None:
    if request.targets.classes is not None:
        raise MacoError("--classes cannot be combined with --layer; run two atlases")
    if request.targets.layer is None and not request.build_only:
        raise MacoError("--channels, --neurons and --directions need --layer")
    if holds_classes(out):
        raise MacoError(f"--out {out} holds a class atlas; give the unit atlas its own folder")


def run_unit_atlas(request: Request, trust: TrustCheck | None = path_trust) -> int:
    """Run ``maco-tf atlas --layer ...``: the shard's missing units, their extras, the website.

    Parameters
    ----------
    request
        The ``atlas`` command's request (see :mod:`maco_tf.cli.atlas`).
    trust
        The trust check run with ``--examples``
        (default :func:`maco_tf.atlas.unit_trust.path_trust`); None: no trust score.

    Returns
    -------
    code
        0 when done.

    Raises
    ------
    MacoError
        For user mistakes (exit code 2 in ``maco-tf``).
    RunInterruptedError
        On Ctrl-C, after the finished units are saved (exit code 130 in ``maco-tf``).
    """
    started = time.perf_counter()
    out = request.out
    say = sayer(request.quiet)
    OutputFolder(out).check_writable()
    _check_arguments(request, out)
    if request.build_only:
        _build(out, None, say)
        return 0
    photos = unit_patches.photo_paths(Path(request.examples)) if request.examples else []
    request = set_up_distribution(request, say)
    loaded, request = load_model(request, say)
    plan = _unit_plan(request, loaded)
    distribution = request.distribution
    lock = results_name(request.shard)
    with writable(out, distribution) as folder, OutputFolder(folder).lock(lock):

        def extras(own: Results, positions: Sequence[int]) -> dict[str, int]:
            done = finished(folder, own)
            diverse = run_diverse_phase(request, loaded, plan, positions, own, done, say)
            made = {"diverse images": diverse}
            if photos:
                done = finished(folder, own)
                job = _PatchJob(request, loaded, plan, photos, trust, say)
                made["patches"] = run_patch_phase(job, positions, own, done)
            return made

        phases = Phases("units", lambda path, settings: _build(path, settings, say), extras)
        return run_shard(request, folder, loaded, plan, distribution.is_chief, say, started, phases)


def _build(out: Path, settings: dict | None, say: Say) -> None:
    summary = build_unit_site(out, settings)
    for note in summary.notes:
        print(f"maco-tf: note: {note}", file=sys.stderr)
    say(f"website: {summary.index} ({summary.classes} units)")


# ------------------------------------------------------------------------------- patches


class _PatchJob:
    """What the patch phase needs: the request, model, plan, the photos, the trust check."""

    def __init__(
        self,
        request: Request,
        loaded: LoadedModel,
        plan: Plan,
        photos: Sequence[Path],
        trust: TrustCheck | None,
        say: Say,
    ) -> None:
        self.request, self.loaded, self.plan = request, loaded, plan
        self.photos, self.trust, self.say = list(photos), trust, say
        self.key = _patch_key(self.photos, request.patches, trust is not None)


def _patch_key(photos: Sequence[Path], count: int, with_trust: bool) -> str:
    """Identity of a unit's patches: the photo files, the patch count, whether trust is scored."""
    digest = hashlib.sha1(f"{count}|{with_trust}".encode())
    for path in photos:
        stat = path.stat()
        digest.update(f"|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _has_patches(folder: OutputFolder, record: dict, key: str) -> bool:
    entry = record.get("patches") or {}
    files = entry.get("files") or []
    return (
        entry.get("key") == key
        and isinstance(files, list)
        and bool(files)
        and all(folder.is_file(name) for name in files)
    )


def _save_patches(
    job: _PatchJob,
    folder: OutputFolder,
    slug: str,
    column: int,
    found: unit_patches.Responses,
    side: int,
) -> dict:
    """Save a unit's top patches as JPEGs; its ``"patches"`` record entry."""
    order = np.argsort(-found.values[:, column], kind="stable")[: job.request.patches]
    entry = {"key": job.key, "files": [], "photos": [], "values": [], "boxes": [], "field": side}
    for rank, photo in enumerate(order):
        row, col = int(found.rows[photo, column]), int(found.cols[photo, column])
        box = unit_patches.patch_box(row, col, found.grid, job.loaded.input_size, side)
        patch = unit_patches.crop_patch(found.photos[photo], job.loaded, box)
        name = f"{PATCH_DIR}/{slug}_p{rank}.jpg"
        save_jpeg(
            folder.path(name), patch.resize((PATCH_SIDE, PATCH_SIDE), Image.Resampling.BICUBIC)
        )
        entry["files"].append(name)
        entry["photos"].append(found.photos[photo].name)
        entry["values"].append(round(float(found.values[photo, column]), 6))
        entry["boxes"].append(list(box))
    entry["order"] = [int(i) for i in order]
    return entry


def run_patch_phase(job: _PatchJob, positions: Sequence[int], own: Results, done: Results) -> int:
    """Top patches (and trust scores) of the shard's finished units that lack them; how many.

    The photos go through the model once for all such units; each unit's record in ``own``
    gains ``"patches"`` (and ``"trust"``), and ``own`` is saved.

    Raises
    ------
    MacoError
        If no photo of ``--examples`` can be read.
    """
    folder = own.folder
    todo = []
    for position in positions:
        target = job.plan.targets[position]
        record = own.targets.get(target.slug) or done.targets.get(target.slug)
        if (
            record is not None
            and done.is_done(target)
            and not _has_patches(folder, record, job.key)
        ):
            todo.append(position)
    if not todo:
        return 0
    layer = job.request.targets.layer
    found = unit_patches.unit_responses(job.loaded, layer, job.plan, todo, job.photos)
    field_photos, _ = unit_patches.load_photos(found.photos[:FIELD_PHOTOS], job.loaded)
    side = unit_patches.receptive_field(job.loaded, layer, field_photos)
    for column, position in enumerate(todo):
        target = job.plan.targets[position]
        record = dict(own.targets.get(target.slug) or done.targets[target.slug])
        record["patches"] = _save_patches(job, folder, target.slug, column, found, side)
        if job.trust is not None:
            image = folder.path(record["files"]["image"])
            record["trust"] = job.trust(job.loaded, image, found, column)
        own.targets[target.slug] = record
        job.say(f"saved {len(record['patches']['files'])} patches of {target.slug}")
    own.save()
    return len(todo)

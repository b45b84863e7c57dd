"""CRAFT concepts of the atlas classes: fitted on a class's example photos, each shown with MACO.

CRAFT (:mod:`xplique.concepts`) is fitted on the examples at the model's last spatial layer, and
each concept is visualised with :func:`maco_tf.targets.concepts.visualize_concepts`. Concepts
are recorded as targets of kind ``"concept"`` in the shard's results file, so they resume like
classes.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from maco_tf.atlas.patches import load_photos
from maco_tf.errors import MacoError
from maco_tf.models.loading import LoadedModel
from maco_tf.runs.plans import Plan, Target
from maco_tf.runs.request import Request
from maco_tf.runs.results import Results, save_target_files
from maco_tf.runs.running import Say

__all__ = ["CONCEPT_DIR", "DEFAULT_CONCEPTS", "run_concept_phase"]

#: Sub-folder of ``--out`` with the concept images.
CONCEPT_DIR = "concepts"
DEFAULT_CONCEPTS = 5
#: CRAFT crop side as a fraction of the model input side (80 px on a 224 px input).
CRAFT_PATCH_FRACTION = 0.36


def _split_model(loaded: LoadedModel) -> tuple[keras.Model, keras.Model]:
    """CRAFT's split of a classifier at its last global average pooling.

    Returns ``g`` (image -> spatial latent, the pooling's input) and ``h`` (latent -> logits:
    the pooling and the chain of layers after it up to the logits layer).
    """
    model = loaded.model
    layers = list(model.layers)
    pools = [
        i
        for i, layer in enumerate(layers)
        if isinstance(layer, keras.layers.GlobalAveragePooling2D)
    ]
    logits = (loaded.logits_layer or "").split("/")[-1]
    if not pools or not logits:
        raise MacoError(
            f"model {loaded.name!r} has no global average pooling followed by its logits; CRAFT "
            f"concepts need that split"
        )
    chain = layers[pools[-1] :]
    end = next((k for k, layer in enumerate(chain) if layer.name == logits), None)
    if end is None or any(chain[k].input is not chain[k - 1].output for k in range(1, end + 1)):
        raise MacoError(
            f"the layers of {loaded.name!r} between its last pooling and {logits!r} are not a "
            f"simple chain; CRAFT concepts need that split"
        )
    encoder = keras.Model(model.inputs, chain[0].input, name=f"{model.name}_latent")
    latent = keras.Input(tuple(chain[0].input.shape[1:]), name="latent")
    x = latent
    for layer in chain[: end + 1]:
        x = layer(x)
    return encoder, keras.Model(latent, x, name=f"{model.name}_head")


def _example_batch(paths: Sequence[Path], loaded: LoadedModel) -> np.ndarray:
    """Examples as a model input batch (:func:`maco_tf.atlas.patches.load_photos`).

    Raises
    ------
    MacoError
        If no example can be read.
    """
    images, kept = load_photos(paths, loaded)
    if not kept:
        raise MacoError("no readable example image")
    return images


def _concept_key(target: Target, sources: Sequence[Path], count: int) -> str:
    """Identity of a class's concepts: the class, the example files and the concept count."""
    digest = hashlib.sha1(f"{count}".encode())
    for path in sources:
        stat = path.stat()
        digest.update(f"|{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return f"concept:{target.key}:{digest.hexdigest()[:12]}"


def _concept_targets(target: Target, key: str, count: int) -> list[Target]:
    return [
        Target(
            f"{target.slug}_concept{k}",
            f"{target.name}: concept {k}",
            "concept",
            "",
            k,
            f"{key}:{k}",
        )
        for k in range(count)
    ]


@dataclass
class _ConceptJob:
    """What the concept phase needs besides the class: settings and the split model."""

    request: Request
    loaded: LoadedModel
    encoder: keras.Model
    head: keras.Model
    say: Say


def _fit_craft(job: _ConceptJob, target: Target, sources: Sequence[Path]) -> object:
    """A ``CraftTf`` fitted on the class's examples at the model's last spatial layer."""
    from xplique.concepts import CraftTf

    images = _example_batch(sources, job.loaded)
    patch = max(8, round(CRAFT_PATCH_FRACTION * min(job.loaded.input_size)))
    craft = CraftTf(
        job.encoder,
        job.head,
        number_of_concepts=job.request.concepts,
        batch_size=32,
        patch_size=patch,
    )
    craft.fit(images, class_id=target.index)
    return craft


def _visualize_craft(job: _ConceptJob, craft: object, target: Target, position: int):
    """MACO images of every concept of ``craft``, with the atlas's optimisation settings.

    The concepts of the class at ``position`` get the image ids ``position * concepts + k``:
    the run's seed, random streams of their own.
    """
    from maco_tf.targets.concepts import visualize_concepts

    request = job.request
    first = position * request.concepts
    return visualize_concepts(
        craft,
        class_id=target.index,
        config=request.config,
        batch_size=request.batch_size or request.concepts,
        progress=not request.quiet,
        image_ids=list(range(first, first + request.concepts)),
    )


def _record_concepts(
    job: _ConceptJob, target: Target, key: str, result, craft: object, results: Results
) -> None:
    """Save the concept images into ``concepts/`` and record them in ``results``."""
    for slug in [s for s, r in results.targets.items() if r.get("class_slug") == target.slug]:
        del results.targets[slug]  # concepts of other examples or counts
    ranking = [] if result.ranking is None else [int(p) for p in result.ranking]
    importances = result.importances
    for position, concept in enumerate(_concept_targets(target, key, job.request.concepts)):
        files = save_target_files(
            results.folder,
            f"{CONCEPT_DIR}/{concept.slug}",
            result.images[position],
            result.transparency[position],
            job.loaded.values_range,
        )
        results.targets[concept.slug] = {
            "slug": concept.slug,
            "name": concept.name,
            "kind": "concept",
            "layer": job.encoder.name,
            "index": concept.index,
            "key": concept.key,
            "class_slug": target.slug,
            "class_index": target.index,
            "files": files,
            "objective_value": float(result.objective_values[position]),
            "importance": None if importances is None else float(importances[position]),
            "rank": ranking.index(position) if position in ranking else None,
            "examples": len(craft.factorization.inputs),
            "patch_size": craft.patch_size,
            "seed": result.seed,
            "wall_time_s": round(result.elapsed_s / len(result), 3),
        }


def _run_concepts(
    job: _ConceptJob, target: Target, position: int, sources: list[Path], results: Results
) -> None:
    """Fit CRAFT on a class's examples, visualise its concepts, save and record them."""
    key = _concept_key(target, sources, job.request.concepts)
    craft = _fit_craft(job, target, sources)
    result = _visualize_craft(job, craft, target, position)
    _record_concepts(job, target, key, result, craft, results)
    job.say(f"saved {job.request.concepts} concepts of {target.slug} ({len(sources)} examples)")


def _concept_phase(
    job: _ConceptJob,
    plan: Plan,
    positions: Sequence[int],
    sources: dict[str, list[Path]],
    results: Results,
    finished: Results,
) -> int:
    """Concepts of every class of the shard that has examples and lacks them; returns how many."""
    done = 0
    for position in positions:
        target = plan.targets[position]
        images = sources.get(target.slug)
        if not images:
            continue
        key = _concept_key(target, images, job.request.concepts)
        wanted = _concept_targets(target, key, job.request.concepts)
        if all(finished.is_done(t) or results.is_done(t) for t in wanted):
            job.say(f"skipped concepts of {target.slug} (already done)")
            continue
        try:
            _run_concepts(job, target, position, images, results)
        except (MacoError, AssertionError, ValueError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"maco-tf: warning: no concepts for {target.slug}: {message}", file=sys.stderr)
            continue
        results.save()
        done += 1
    return done


def run_concept_phase(
    request: Request,
    loaded: LoadedModel,
    plan: Plan,
    positions: Sequence[int],
    sources: dict[str, list[Path]],
    own: Results,
    finished: Results,
    say: Say,
) -> int:
    """Concepts of the shard's classes that have examples and lack them; how many were made.

    Parameters
    ----------
    request
        The atlas request (``concepts``, ``seed`` and the optimisation flags).
    loaded, plan, positions
        The model, the class plan and the shard's positions in it.
    sources
        The readable example photos of each class slug.
    own, finished
        The shard's results (recorded into, saved after each class) and what the folder has
        finished (concepts done there are skipped).
    say
        Progress lines.

    Returns
    -------
    count
        Classes whose concepts were made; 0 with a warning when the model cannot be split.
    """
    try:
        encoder, head = _split_model(loaded)
    except MacoError as exc:
        print(f"maco-tf: warning: no concepts: {exc}", file=sys.stderr)
        return 0
    job = _ConceptJob(request, loaded, encoder, head, say)
    return _concept_phase(job, plan, positions, sources, own, finished)

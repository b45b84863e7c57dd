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
``p % N == I`` and records them in ``results.I-of-N.json`` (``results.json`` without sharding),
so shards can share one ``--out`` folder; a class already finished in *any* results file of the
folder made with the same settings is not recomputed.

With ``--examples DIR`` (one sub-folder of images per class, named by class name, index,
WordNet id or file slug), each class page shows the examples and, unless ``--concepts 0``, the
CRAFT concepts of the class: CRAFT (:mod:`xplique.concepts`) is fitted on the examples at the
model's last spatial layer, and each concept is visualised with MACO
(:func:`maco_tf.targets.concepts.visualize_concepts`). Concepts are recorded as targets of kind
``"concept"`` in the same results file, so they resume like classes.

The website (``index.html``, ``classes/<slug>.html``, ``thumbs/``, ``examples/``, ``assets/``)
is written into ``--out`` after the run; it uses relative links only, works from ``file://`` and
from any static server (``python -m http.server``), and loads nothing from the network.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

import keras
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from maco_tf.cli.main import (
    EXIT_OK,
    FILE_KINDS,
    RESULTS_FILE,
    SETTING_KEYS,
    _add_model_arguments,
    _agreed_pending,
    _batch_size,
    _InterruptedError,
    _load_model,
    _Plan,
    _plan_classes,
    _positive_int,
    _Results,
    _run_pending,
    _set_up_distribution,
    _settings,
    _settings_diff,
    _slug,
    _Target,
    _whole_views,
    _writable,
    add_optimisation_arguments,
)
from maco_tf.errors import MacoError
from maco_tf.models.layers import find_layer
from maco_tf.models.loading import LoadedModel
from maco_tf.models.zoo import ImageNetClassError, get_imagenet_classes
from maco_tf.outputs.render import save_visualization
from maco_tf.version import __version__

__all__ = ["SiteSummary", "add_atlas_parser", "build_site", "results_name", "run_atlas"]

#: Sub-folders of ``--out`` written by the site build (besides ``index.html``).
CLASS_DIR, THUMB_DIR, EXAMPLE_DIR, CONCEPT_DIR, ASSET_DIR = (
    "classes",
    "thumbs",
    "examples",
    "concepts",
    "assets",
)
SITE_ASSETS = ("style.css", "search.js")
THUMB_SIDE = 192
EXAMPLE_SIDE = 320
#: Largest number of example images per class that are shown and given to CRAFT.
MAX_EXAMPLES = 48
DEFAULT_CONCEPTS = 5
#: CRAFT crop side as a fraction of the model input side (80 px on a 224 px input).
CRAFT_PATCH_FRACTION = 0.36
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_RESULTS_RE = re.compile(r"results(?:\.(\d+)-of-(\d+))?\.json")
_SEPARATORS_RE = re.compile(r"[\s_\-]+")


# ------------------------------------------------------------------------------ parsing


def _shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``; requires ``0 <= I < N``."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4; got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N; got {text!r}")
    return i, n


def add_atlas_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``atlas`` command to the ``maco-tf`` sub-command parsers.

    Parameters
    ----------
    subparsers
        The object returned by ``parser.add_subparsers()``.

    Returns
    -------
    parser
        The ``atlas`` parser; its ``handler`` default is :func:`run_atlas`.
    """
    parser = subparsers.add_parser(
        "atlas",
        help="visualize every class of a model and build a website to browse them",
        description="Optimise one image per class (resumable, shardable) and write a static "
        "website into --out: index.html with a searchable grid, one page per class.",
    )
    _add_model_arguments(parser)
    what = parser.add_argument_group("classes")
    what.add_argument(
        "--classes",
        help="comma-separated class names or indices (default: every class of the model)",
    )
    what.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="I/N",
        help="render the classes at positions p with p %% N == I (default 0/1: all); shards "
        "may share --out",
    )
    what.add_argument(
        "--examples",
        metavar="DIR",
        help="one folder of example images per class (named by class name, index, WordNet id "
        "or slug), shown on the class pages and used to find CRAFT concepts",
    )
    what.add_argument(
        "--concepts",
        type=_positive_int(0),
        default=DEFAULT_CONCEPTS,
        help=f"CRAFT concepts per class with --examples (0: none; default {DEFAULT_CONCEPTS})",
    )
    add_optimisation_arguments(
        parser.add_argument_group("optimisation (as maco-tf visualize)"), "classes"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="maco_out", help="output folder (default maco_out)")
    out.add_argument(
        "--build-only",
        action="store_true",
        help="only (re)build the website from the results already in --out",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="discard this shard's results made with other settings (deletes their images)",
    )
    out.add_argument("--quiet", action="store_true", help="no progress bar nor per-class lines")
    parser.set_defaults(handler=run_atlas, layer=None)
    return parser


# ------------------------------------------------------------------------------ results files


def results_name(shard: tuple[int, int]) -> str:
    """Results file of a shard: ``results.json`` for ``(0, 1)``, else ``results.I-of-N.json``."""
    index, count = shard
    return RESULTS_FILE if count == 1 else f"results.{index}-of-{count}.json"


@dataclass(frozen=True)
class _ResultsFile:
    """One results file of a folder, as read."""

    path: Path
    settings: dict
    records: dict[str, dict]
    runs: list[dict]


def _results_paths(out: Path) -> list[Path]:
    """Every ``results.json`` / ``results.I-of-N.json`` in ``out``, sorted by name."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_file() and _RESULTS_RE.fullmatch(p.name))


def _read_results(path: Path) -> _ResultsFile:
    """Read a results file; :class:`MacoError` if it is unreadable or malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings = dict(data["settings"])
        records = {str(record["slug"]): dict(record) for record in data["targets"]}
        runs = list(data.get("runs", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MacoError(f"cannot read {path} ({type(exc).__name__})") from None
    return _ResultsFile(path, settings, records, runs)


def _record_done(out: Path, record: dict) -> bool:
    """All three PNGs of a record exist."""
    files = record.get("files") or {}
    return all(kind in files and (out / files[kind]).is_file() for kind in FILE_KINDS)


def _discard(out: Path, found: _ResultsFile, differences: list[str], overwrite: bool) -> None:
    """Refuse results made with other settings, or (``overwrite``) delete them and their images."""
    if not overwrite:
        raise MacoError(
            f"{found.path} holds results made with other settings ({'; '.join(differences)}); "
            f"use another --out folder, or pass --overwrite to replace them"
        )
    for record in found.records.values():
        for file in (record.get("files") or {}).values():
            (out / file).unlink(missing_ok=True)
    found.path.unlink(missing_ok=True)


def _open_own(out: Path, name: str, settings: dict, overwrite: bool) -> _Results:
    """Open the shard's results file as ``maco-tf visualize`` opens ``results.json``.

    Its records are kept if their settings match. One folder holds one set of settings: a
    results file of the folder (this shard's or another's) made with other settings is refused,
    unless ``overwrite``, which deletes it and its images. Unreadable results files of other
    shards are left alone.
    """
    results = _Results(out / name, settings)
    for path in _results_paths(out):
        try:
            found = _read_results(path)
        except MacoError as exc:
            if path != results.path or overwrite:
                continue
            raise MacoError(
                f"{exc}; delete it, use another --out folder, or pass --overwrite"
            ) from None
        differences = _settings_diff(found.settings, settings)
        if differences:
            _discard(out, found, differences, overwrite)
        elif path == results.path:
            results.targets, results.runs = dict(found.records), list(found.runs)
    return results


def _finished(out: Path, own: _Results) -> _Results:
    """What every results file of ``out`` with ``own``'s settings has finished (read-only view)."""
    merged = _Results(own.path, own.settings)
    for path in _results_paths(out):
        if path == own.path:
            continue
        try:
            found = _read_results(path)
        except MacoError:
            continue
        if not _settings_diff(found.settings, own.settings):
            _merge_records(out, merged.targets, found.records.values())
    _merge_records(out, merged.targets, own.targets.values())
    return merged


def _merge_records(out: Path, into: dict[str, dict], records: Iterable[dict]) -> None:
    """Add records by slug; a finished record is never replaced by an unfinished one."""
    for record in records:
        slug = record["slug"]
        if slug not in into or not _record_done(out, into[slug]) or _record_done(out, record):
            into[slug] = record


# ------------------------------------------------------------------------------ planning


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


def _class_plan(args: argparse.Namespace, loaded: LoadedModel) -> _Plan:
    """The classes of ``--classes`` (default all), planned as ``maco-tf visualize`` does."""
    spec = args.classes if args.classes is not None else _all_classes(loaded)
    return _plan_classes(argparse.Namespace(classes=spec, layer=None), loaded)


def _shard_positions(count: int, shard: tuple[int, int]) -> list[int]:
    index, total = shard
    return [p for p in range(count) if p % total == index]


def _check_size(args: argparse.Namespace, loaded: LoadedModel) -> None:
    if args.size < max(loaded.input_size):
        raise MacoError(
            f"--size {args.size} is smaller than the model input "
            f"{loaded.input_size[0]}x{loaded.input_size[1]}; use at least "
            f"{max(loaded.input_size)}"
        )


# ------------------------------------------------------------------------------ examples


def _normalize(text: str) -> str:
    return _SEPARATORS_RE.sub(" ", text.casefold()).strip()


def _is_imagenet(index: int, name: str) -> bool:
    """Whether ``(index, name)`` is the ImageNet class of that index."""
    classes = get_imagenet_classes()
    return 0 <= index < len(classes) and classes.name(index) == name


def _match_example_folders(
    root: Path, classes: Sequence[tuple[str, int, str]]
) -> tuple[dict[str, Path], list[str]]:
    """Map class slugs to their example folder in ``root``; also the unmatched folder names.

    Parameters
    ----------
    root
        The ``--examples`` folder.
    classes
        ``(slug, index, name)`` of the classes of the run.
    """
    if not root.is_dir():
        raise MacoError(f"--examples {root} is not a folder")
    by_key: dict[str, str] = {}
    by_index: dict[int, str] = {}
    for slug, index, name in classes:
        by_index[index] = slug
        for alias in (slug, str(index), name):
            by_key.setdefault(_normalize(alias), slug)
    imagenet = bool(classes) and all(_is_imagenet(index, name) for _, index, name in classes)
    found: dict[str, Path] = {}
    unmatched: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        slug = by_key.get(_normalize(folder.name))
        if slug is None and imagenet:
            try:
                slug = by_index.get(get_imagenet_classes().index(folder.name))
            except ImageNetClassError:
                slug = None
        if slug is None:
            unmatched.append(folder.name)
        else:
            found[slug] = folder
    return found, unmatched


def _example_images(folder: Path) -> list[Path]:
    """The image files of a folder, sorted by name, at most :data:`MAX_EXAMPLES`."""
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    return files[:MAX_EXAMPLES]


def _open_rgb(path: Path) -> Image.Image | None:
    """The image as RGB (EXIF orientation applied), or None if it cannot be read."""
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _save_jpeg(path: Path, image: Image.Image) -> None:
    """Write a JPEG atomically (temporary file in the folder, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="JPEG", quality=85)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_examples(out: Path, slug: str, sources: Sequence[Path]) -> list[str]:
    """Write reduced copies of a class's examples into ``out/examples/<slug>/``.

    Returns the names of the images that could not be read. Copies of images that are no longer
    in ``sources`` are removed.
    """
    folder = out / EXAMPLE_DIR / slug
    written, unreadable = set(), []
    for position, source in enumerate(sources):
        target = folder / f"{position:02d}_{_slug(source.stem)}.jpg"
        if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
            image = _open_rgb(source)
            if image is None:
                unreadable.append(source.name)
                continue
            image.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE), Image.Resampling.LANCZOS)
            _save_jpeg(target, image)
        written.add(target.name)
    if folder.is_dir():
        for stale in folder.glob("*.jpg"):
            if stale.name not in written:
                stale.unlink()
    return unreadable


def _copy_all_examples(
    out: Path, folders: dict[str, Path], say: Callable[[str], None]
) -> dict[str, list[Path]]:
    """Copy every matched class's examples into the site; the readable sources by slug."""
    sources: dict[str, list[Path]] = {}
    for slug, folder in folders.items():
        images = _example_images(folder)
        unreadable = _copy_examples(out, slug, images)
        for name in unreadable:
            print(f"maco-tf: warning: cannot read example image {folder / name}", file=sys.stderr)
        sources[slug] = [p for p in images if p.name not in unreadable]
        say(f"examples: {len(sources[slug])} images for {slug} from {folder}")
    return sources


# ------------------------------------------------------------------------------ concepts


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
    """Examples as a model input batch: centre square, resized, in the model's value range."""
    height, width = loaded.input_size
    channels = int(loaded.model.inputs[0].shape[-1])
    low, high = loaded.values_range
    images = []
    for path in paths:
        image = _open_rgb(path)
        if image is None:
            continue
        if channels == 1:
            image = image.convert("L")
        fitted = ImageOps.fit(image, (width, height), Image.Resampling.BICUBIC)
        array = np.asarray(fitted, dtype=np.float32).reshape(height, width, channels)
        images.append(low + array / 255.0 * (high - low))
    if not images:
        raise MacoError("no readable example image")
    return np.stack(images)


def _concept_key(target: _Target, sources: Sequence[Path], count: int) -> str:
    """Identity of a class's concepts: the class, the example files and the concept count."""
    digest = hashlib.sha1(f"{count}".encode())
    for path in sources:
        stat = path.stat()
        digest.update(f"|{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return f"concept:{target.key}:{digest.hexdigest()[:12]}"


def _concept_targets(target: _Target, key: str, count: int) -> list[_Target]:
    return [
        _Target(
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

    args: argparse.Namespace
    loaded: LoadedModel
    encoder: keras.Model
    head: keras.Model
    say: Callable[[str], None]


def _fit_craft(job: _ConceptJob, target: _Target, sources: Sequence[Path]) -> object:
    """A ``CraftTf`` fitted on the class's examples at the model's last spatial layer."""
    from xplique.concepts import CraftTf

    images = _example_batch(sources, job.loaded)
    patch = max(8, round(CRAFT_PATCH_FRACTION * min(job.loaded.input_size)))
    craft = CraftTf(
        job.encoder, job.head, number_of_concepts=job.args.concepts, batch_size=32, patch_size=patch
    )
    craft.fit(images, class_id=target.index)
    return craft


def _visualize_craft(job: _ConceptJob, craft: object, target: _Target, seed: int):
    """MACO images of every concept of ``craft``, with the atlas's optimisation settings."""
    from maco_tf.targets.concepts import visualize_concepts

    args = job.args
    return visualize_concepts(
        craft,
        class_id=target.index,
        method=args.method,
        values_range=job.loaded.values_range,
        steps=args.steps,
        crops=args.crops,
        size=args.size,
        box_size=tuple(args.box_size),
        noise=args.noise,
        seed=seed,
        batch_size=args.batch_size or args.concepts,
        jit_compile=args.jit,
        progress=not args.quiet,
        whole_views=_whole_views(args),
    )


def _record_concepts(
    job: _ConceptJob, target: _Target, key: str, result, craft: object, results: _Results
) -> None:
    """Save the concept images into ``concepts/`` and record them in ``results``."""
    out = results.path.parent
    for slug in [s for s, r in results.targets.items() if r.get("class_slug") == target.slug]:
        del results.targets[slug]  # concepts of other examples or counts
    ranking = [] if result.ranking is None else [int(p) for p in result.ranking]
    importances = result.importances
    for position, concept in enumerate(_concept_targets(target, key, job.args.concepts)):
        paths = save_visualization(
            out / CONCEPT_DIR,
            concept.slug,
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
            "files": {kind: paths[kind].relative_to(out).as_posix() for kind in FILE_KINDS},
            "objective_value": float(result.objective_values[position]),
            "importance": None if importances is None else float(importances[position]),
            "rank": ranking.index(position) if position in ranking else None,
            "examples": len(craft.factorization.inputs),
            "patch_size": craft.patch_size,
            "seed": result.seed,
            "wall_time_s": round(result.elapsed_s / len(result), 3),
        }


def _run_concepts(
    job: _ConceptJob, target: _Target, position: int, sources: list[Path], results: _Results
) -> None:
    """Fit CRAFT on a class's examples, visualise its concepts, save and record them."""
    key = _concept_key(target, sources, job.args.concepts)
    craft = _fit_craft(job, target, sources)
    result = _visualize_craft(job, craft, target, seed=job.args.seed + position)
    _record_concepts(job, target, key, result, craft, results)
    job.say(f"saved {job.args.concepts} concepts of {target.slug} ({len(sources)} examples)")


def _concept_phase(
    job: _ConceptJob,
    plan: _Plan,
    positions: Sequence[int],
    sources: dict[str, list[Path]],
    results: _Results,
    finished: _Results,
) -> int:
    """Concepts of every class of the shard that has examples and lacks them; returns how many."""
    done = 0
    for position in positions:
        target = plan.targets[position]
        images = sources.get(target.slug)
        if not images:
            continue
        key = _concept_key(target, images, job.args.concepts)
        wanted = _concept_targets(target, key, job.args.concepts)
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


# ------------------------------------------------------------------------------ website data


@dataclass
class _Site:
    """The data of the website: settings, class records in index order, concepts, examples."""

    out: Path
    settings: dict
    classes: list[dict]
    concepts: dict[str, list[dict]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    total_time_s: float = 0.0
    version: str = __version__


@dataclass(frozen=True)
class SiteSummary:
    """What :func:`build_site` wrote.

    Attributes
    ----------
    index
        Path of ``index.html``.
    classes
        Number of class pages.
    notes
        Results files that were skipped (unreadable, or made with other settings).
    """

    index: Path
    classes: int
    notes: tuple[str, ...] = ()


def _settings_key(settings: dict) -> str:
    return json.dumps([settings.get(key) for key in SETTING_KEYS], sort_keys=True)


def _choose_files(
    files: list[_ResultsFile], settings: dict | None
) -> tuple[list[_ResultsFile], list[str]]:
    """The results files to show: those with ``settings`` (default: the largest group)."""
    groups: dict[str, list[_ResultsFile]] = {}
    for found in files:
        groups.setdefault(_settings_key(found.settings), []).append(found)
    if not groups:
        return [], []
    if settings is not None:
        key = _settings_key(settings)
    else:
        key = max(groups, key=lambda k: (sum(len(f.records) for f in groups[k]), k))
    chosen = groups.get(key, [])
    notes = [
        f"{found.path.name} skipped: other settings "
        f"({'; '.join(_settings_diff(chosen[0].settings, found.settings)) if chosen else ''})"
        for k, group in groups.items()
        if k != key
        for found in group
    ]
    return chosen, notes


def _collect(out: Path, settings: dict | None) -> tuple[_Site, list[str]]:
    """Merge the results files of ``out`` into the website's data."""
    files, notes = [], []
    for path in _results_paths(out):
        try:
            files.append(_read_results(path))
        except MacoError as exc:
            notes.append(f"{path.name} skipped: {exc}")
    chosen, skipped = _choose_files(files, settings)
    notes.extend(skipped)
    if not chosen:
        raise MacoError(f"no results in {out} to build an atlas from; run maco-tf atlas first")
    records: dict[str, dict] = {}
    for found in chosen:
        _merge_records(out, records, found.records.values())
    done = [r for r in records.values() if _record_done(out, r)]
    classes = sorted(
        (r for r in done if r.get("kind") == "class"), key=lambda r: (r["index"], r["slug"])
    )
    concepts: dict[str, list[dict]] = {}
    for record in done:
        if record.get("kind") == "concept":
            concepts.setdefault(record["class_slug"], []).append(record)
    for group in concepts.values():
        group.sort(key=lambda r: (r.get("rank") is None, r.get("rank") or 0, r["index"]))
    site = _Site(
        out=out,
        settings=chosen[0].settings,
        classes=classes,
        concepts=concepts,
        examples={r["slug"]: _site_examples(out, r["slug"]) for r in classes},
        total_time_s=sum(run.get("time_s", 0.0) for f in chosen for run in f.runs),
    )
    return site, notes


def _site_examples(out: Path, slug: str) -> list[str]:
    folder = out / EXAMPLE_DIR / slug
    if not folder.is_dir():
        return []
    return [f"{EXAMPLE_DIR}/{slug}/{p.name}" for p in sorted(folder.glob("*.jpg"))]


# ------------------------------------------------------------------------------ website files


def _write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _asset(name: str) -> str:
    return (
        resources.files("maco_tf.atlas").joinpath("site").joinpath(name).read_text(encoding="utf-8")
    )


def _thumbnail(out: Path, record: dict) -> str:
    """``thumbs/<slug>.jpg`` (made if missing or older than the image); its site path."""
    source = out / record["files"]["image"]
    name = f"{THUMB_DIR}/{record['slug']}.jpg"
    target = out / name
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        image = _open_rgb(source)
        if image is None:
            raise MacoError(f"cannot read {source}")
        image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        _save_jpeg(target, image)
    return name


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
        return (0, 0)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _url(path: str) -> str:
    """A relative URL for a site path (``/``-separated, percent-encoded)."""
    return quote(path, safe="/")


def _percent(probability: float) -> str:
    value = 100.0 * probability
    return f"{value:.0f}%" if value >= 9.5 else f"{value:.1f}%"


def _synonyms(record: dict) -> tuple[tuple[str, ...], str | None]:
    """ImageNet synonyms and WordNet id of a class record (empty for other models)."""
    index, name = int(record["index"]), str(record["name"])
    if not _is_imagenet(index, name):
        return (), None
    classes = get_imagenet_classes()
    return tuple(s for s in classes.synonyms(index) if s != name), classes.wnid(index)


def _top1(record: dict) -> tuple[bool, dict] | None:
    top5 = record.get("top5")
    if not top5:
        return None
    return int(top5[0]["index"]) == int(record["index"]), top5[0]


def _settings_rows(site: _Site) -> list[tuple[str, str]]:
    s = site.settings
    box = s.get("box_size") or ["?", "?"]
    values = s.get("values_range") or ["?", "?"]
    return [
        ("model", f"{s.get('model')} ({s.get('model_source', '?')})"),
        ("method", str(s.get("method"))),
        ("steps", str(s.get("steps"))),
        ("crops per step", str(s.get("crops"))),
        ("image size", f"{s.get('size')} × {s.get('size')} px"),
        ("crop side", f"{box[0]:g} → {box[1]:g} of the image side"),
        ("whole views", f"{s.get('whole_views', '?')} of {s.get('crops')} per step"),
        ("noise", f"{s.get('noise', '?')} (std, for a value range of width 2)"),
        ("seed", str(s.get("seed"))),
        ("input values", f"{values[0]:g} … {values[1]:g}"),
        ("maco_tf", site.version),
    ]


def _definition_list(rows: Sequence[tuple[str, str]]) -> str:
    items = "\n".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows)
    return f'<dl class="kv">\n{items}\n</dl>'


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _footer(site: _Site) -> str:
    return _esc(
        f"Made with maco_tf {site.version} (MACO: Fel et al., NeurIPS 2023). "
        f"{len(site.classes)} classes, {_duration(site.total_time_s)} of compute recorded."
    )


def _card(site: _Site, record: dict, thumb: str) -> str:
    slug, name, index = record["slug"], record["name"], int(record["index"])
    synonyms, wnid = _synonyms(record)
    search = " ".join([str(index), name, *synonyms, wnid or "", slug])
    top1 = _top1(record)
    if top1 is None:
        meta = '<span class="meta">no top-5</span>'
    elif top1[0]:
        meta = f'<span class="meta ok">recognised, {_percent(top1[1]["probability"])}</span>'
    else:
        seen = f"seen as {top1[1]['name']}, {_percent(top1[1]['probability'])}"
        meta = f'<span class="meta off">{_esc(seen)}</span>'
    return (
        f'<li class="card" data-search="{_esc(search)}">'
        f'<a href="{_url(f"{CLASS_DIR}/{slug}.html")}">'
        f'<img src="{_url(thumb)}" width="{THUMB_SIDE}" height="{THUMB_SIDE}" loading="lazy" '
        f'alt="MACO visualization of {_esc(name)}">'
        f'<span class="label">{_esc(name)} <span class="idx">#{index}</span></span>{meta}</a></li>'
    )


def _index_html(site: _Site, template: Template, thumbs: dict[str, str]) -> str:
    recognised = sum(1 for r in site.classes if (_top1(r) or (False,))[0])
    with_top5 = sum(1 for r in site.classes if _top1(r) is not None)
    count = len(site.classes)
    noun = "class" if count == 1 else "classes"
    lede = (
        f"Feature visualizations (MACO) of {count} {noun} of {site.settings.get('model')}: the "
        f"image each class logit likes best."
    )
    if with_top5:
        lede += f" The model's top-1 on the image is its own class for {recognised} of {with_top5}."
    cards = "\n".join(_card(site, r, thumbs[r["slug"]]) for r in site.classes)
    return template.substitute(
        title=_esc(f"MACO atlas: {site.settings.get('model')}"),
        lede=_esc(lede),
        settings=_definition_list(_settings_rows(site)),
        count_text=_esc(f"{count} {noun}"),
        cards=cards,
        footer=_footer(site),
    )


def _pager(site: _Site, position: int) -> str:
    parts = ['<a href="../index.html">All classes</a>']
    for offset, rel, arrow in ((-1, "prev", "← previous"), (1, "next", "next →")):
        other = position + offset
        if 0 <= other < len(site.classes):
            record = site.classes[other]
            parts.append(
                f'<a rel="{rel}" href="{_url(record["slug"] + ".html")}">{arrow}: '
                f"{_esc(record['name'])}</a>"
            )
        else:
            parts.append(f'<span class="disabled">{arrow}: none</span>')
    return "\n".join(parts)


def _figure(site: _Site, path: str, alt: str, caption: str, checker: bool = False) -> str:
    width, height = _image_size(site.out / path)
    shown = min(width, 320) if width else 320
    size = f'width="{shown}" height="{round(shown * height / width) if width else shown}"'
    image = f'<img src="{_url("../" + path)}" {size} alt="{_esc(alt)}">'
    if checker:
        image = f'<span class="checker">{image}</span>'
    return f"<figure>{image}<figcaption>{_esc(caption)}</figcaption></figure>"


def _figures(site: _Site, record: dict) -> str:
    name, files = record["name"], record["files"]
    return "\n".join(
        [
            _figure(site, files["image"], f"MACO visualization of {name}", "The optimised image."),
            _figure(
                site,
                files["rgba"],
                f"MACO visualization of {name} with its transparency map as alpha, over a "
                f"checkerboard",
                "With transparency: pixels whose gradient mattered little fade out.",
                checker=True,
            ),
            _figure(
                site,
                files["heatmap"],
                f"Importance heatmap of the MACO visualization of {name}",
                "Importance: accumulated input gradients (bright = important).",
            ),
        ]
    )


def _top5_html(site: _Site, record: dict, pages: dict[int, str]) -> str:
    top5 = record.get("top5")
    if not top5:
        return "<p>The model's output is not a class distribution: no top-5.</p>"
    rows = []
    for rank, entry in enumerate(top5, start=1):
        index, name = int(entry["index"]), str(entry["name"])
        label = _esc(name)
        if index in pages and index != int(record["index"]):
            label = f'<a href="{_url(pages[index] + ".html")}">{label}</a>'
        target = ' class="target"' if index == int(record["index"]) else ""
        width = max(1, round(120 * float(entry["probability"])))
        rows.append(
            f'<tr{target}><td>{rank}</td><td>{label} <span class="idx">#{index}</span></td>'
            f'<td><span class="bar" style="width:{width}px" aria-hidden="true"></span>'
            f"{_percent(float(entry['probability']))}</td></tr>"
        )
    caption = (
        f"Top-5 classes of {site.settings.get('model')} on the whole image, resized to its input "
        f"(softmax probabilities)."
    )
    return (
        f'<table class="top5"><caption>{_esc(caption)}</caption><thead><tr>'
        f'<th scope="col">Rank</th><th scope="col">Class</th><th scope="col">Probability</th>'
        f"</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )


def _examples_html(site: _Site, record: dict) -> str:
    examples = site.examples.get(record["slug"], [])
    if not examples:
        return ""
    name = _esc(record["name"])
    items = "\n".join(
        f'<li><img src="{_url("../" + path)}" width="160" height="160" loading="lazy" '
        f'alt="Example image {number} of {name}"></li>'
        for number, path in enumerate(examples, start=1)
    )
    return (
        '<section aria-labelledby="examples-heading"><h2 id="examples-heading">Examples</h2>'
        f"<p>{len(examples)} example images of {name}.</p>"
        f'<ul class="gallery">\n{items}\n</ul></section>'
    )


def _concepts_html(site: _Site, record: dict) -> str:
    concepts = site.concepts.get(record["slug"], [])
    if not concepts:
        return ""
    name = record["name"]
    items = []
    for concept in concepts:
        importance = concept.get("importance")
        label = f"Concept {concept['index']}"
        if importance is not None:
            label += f", importance {importance:.3f}"
        alt = f"MACO visualization of CRAFT concept {concept['index']} of {name}, with transparency"
        items.append(
            f'<li><figure><span class="checker"><img src="{_url("../" + concept["files"]["rgba"])}"'
            f' width="200" height="200" loading="lazy" alt="{_esc(alt)}"></span>'
            f"<figcaption>{_esc(label)}</figcaption></figure></li>"
        )
    examples = concepts[0].get("examples", "?")
    intro = (
        f"CRAFT factorised the model's last spatial activations on crops of {examples} example "
        f"images into {len(concepts)} concepts; each is shown as the MACO image that maximises "
        f"it, most important first (Sobol total index)."
    )
    return (
        '<section aria-labelledby="concepts-heading"><h2 id="concepts-heading">Concepts</h2>'
        f'<p>{_esc(intro)}</p><ul class="concepts">\n' + "\n".join(items) + "\n</ul></section>"
    )


def _class_html(site: _Site, template: Template, position: int, pages: dict[int, str]) -> str:
    record = site.classes[position]
    name, index = record["name"], int(record["index"])
    synonyms, wnid = _synonyms(record)
    about = []
    if synonyms:
        about.append("Also: " + ", ".join(synonyms) + ".")
    if wnid:
        about.append(f"WordNet id {wnid}.")
    about.append(f"Class {index} of the model's logits.")
    rows = _settings_rows(site) + [
        ("objective (last 10 % of steps)", f"{record.get('objective_value', float('nan')):.4g}"),
        ("image seed", f"{record.get('seed')} (position {record.get('batch_position')})"),
        ("time per image", f"{record.get('wall_time_s', 0):.1f} s"),
    ]
    if record.get("dead"):
        rows.append(("warning", "no usable gradient: the image stayed at its random start"))
    return template.substitute(
        title=_esc(f"{name}: MACO atlas of {site.settings.get('model')}"),
        pager=_pager(site, position),
        heading=f'{_esc(name)} <span class="idx">#{index}</span>',
        synonyms=_esc(" ".join(about)),
        figures=_figures(site, record),
        top5=_top5_html(site, record, pages),
        examples=_examples_html(site, record),
        concepts=_concepts_html(site, record),
        settings=_definition_list(rows),
        footer=_footer(site),
    )


def _remove_stale_pages(out: Path, slugs: set[str]) -> None:
    """Delete class pages of classes without results (after ``--overwrite``, say).

    A page whose image exists is kept: another shard may have just finished that class.
    """
    folder = out / CLASS_DIR
    if folder.is_dir():
        for page in folder.glob("*.html"):
            if page.stem not in slugs and not (out / f"{page.stem}.png").exists():
                page.unlink()


def build_site(out: str | os.PathLike, settings: dict | None = None) -> SiteSummary:
    """Write the atlas website into ``out`` from the results files found there.

    Parameters
    ----------
    out
        The atlas folder (holding ``results.json`` and/or ``results.I-of-N.json``).
    settings
        Show the results made with these settings; default: the settings of most results.

    Returns
    -------
    summary
        The index path, the number of class pages and notes on skipped results files.

    Raises
    ------
    MacoError
        If ``out`` holds no readable results.
    """
    out = Path(out)
    site, notes = _collect(out, settings)
    for name in SITE_ASSETS:
        _write_text(out / ASSET_DIR / name, _asset(name))
    thumbs = {record["slug"]: _thumbnail(out, record) for record in site.classes}
    pages = {int(r["index"]): r["slug"] for r in site.classes}
    page = Template(_asset("class.html"))
    for position, record in enumerate(site.classes):
        html_text = _class_html(site, page, position, pages)
        _write_text(out / CLASS_DIR / f"{record['slug']}.html", html_text)
    _remove_stale_pages(out, {record["slug"] for record in site.classes})
    index = out / "index.html"
    _write_text(index, _index_html(site, Template(_asset("index.html")), thumbs))
    return SiteSummary(index=index, classes=len(site.classes), notes=tuple(notes))


# ------------------------------------------------------------------------------ command


def _sayer(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say


def _build(out: Path, settings: dict | None, say: Callable[[str], None]) -> SiteSummary:
    summary = build_site(out, settings)
    for note in summary.notes:
        print(f"maco-tf: note: {note}", file=sys.stderr)
    say(f"website: {summary.index} ({summary.classes} classes)")
    return summary


def _build_only(args: argparse.Namespace, out: Path, say: Callable[[str], None]) -> int:
    """``--build-only``: copy ``--examples`` if given, then (re)build the website."""
    if args.examples:
        site, _ = _collect(out, None)
        classes = [(r["slug"], int(r["index"]), r["name"]) for r in site.classes]
        folders, unmatched = _match_example_folders(Path(args.examples), classes)
        _report_unmatched(unmatched)
        _copy_all_examples(out, folders, say)
    _build(out, None, say)
    return EXIT_OK


def _report_unmatched(unmatched: Sequence[str]) -> None:
    if unmatched:
        print(
            f"maco-tf: note: example folders matching no class of this atlas ignored: "
            f"{', '.join(unmatched)}",
            file=sys.stderr,
        )


def _shard_done(out: Path, own: _Results, plan: _Plan, positions: Sequence[int]) -> int:
    finished = _finished(out, own)
    return sum(finished.is_done(plan.targets[p]) for p in positions)


def run_atlas(args: argparse.Namespace) -> int:
    """Run ``maco-tf atlas``: render the shard's missing classes, then build the website.

    Parameters
    ----------
    args
        Parsed arguments of the ``atlas`` parser (see :func:`add_atlas_parser`).

    Returns
    -------
    code
        0 when done. User mistakes raise :class:`~maco_tf.errors.MacoError` (exit code 2 in
        ``maco-tf``); Ctrl-C raises the command line's interruption (exit code 130) after the
        finished classes are saved.
    """
    started = time.perf_counter()
    out = Path(args.out)
    say = _sayer(args.quiet)
    if out.exists() and not out.is_dir():
        raise MacoError(f"--out {out} exists and is not a folder")
    if args.build_only:
        return _build_only(args, out, say)

    distribution = _set_up_distribution(args, say)
    loaded = _load_model(args, distribution)
    for note in loaded.notes:
        say(f"note: {note}")
    _check_size(args, loaded)
    plan = _class_plan(args, loaded)
    with _writable(out, distribution) as folder:
        return _run_shard(args, folder, loaded, plan, distribution.is_chief, say, started)


def _run_shard(
    args: argparse.Namespace,
    out: Path,
    loaded: LoadedModel,
    plan: _Plan,
    is_chief: bool,
    say: Callable[[str], None],
    started: float,
) -> int:
    """Render the shard's missing classes into ``out``; on the chief, also concepts and site."""
    positions = _shard_positions(len(plan.targets), args.shard)
    settings = _settings(args, loaded)
    own = _open_own(out, results_name(args.shard), settings, args.overwrite)
    finished = _finished(out, own)
    pending = [p for p in positions if not finished.is_done(plan.targets[p])]
    batch_size = _batch_size(args)
    pending = _agreed_pending(args, settings, plan, pending, batch_size, args.shard)
    index, count = args.shard
    say(
        f"shard {index}/{count}: {len(positions)} of {len(plan.targets)} classes, "
        f"{len(positions) - len(pending)} already done; results in {own.path}"
    )
    sources: dict[str, list[Path]] = {}
    if args.examples and is_chief:
        classes = [
            (plan.targets[p].slug, plan.targets[p].index, plan.targets[p].name) for p in positions
        ]
        folders, unmatched = _match_example_folders(Path(args.examples), classes)
        _report_unmatched(unmatched)
        sources = _copy_all_examples(out, folders, say)

    try:
        run = _run_pending(args, loaded, plan, pending, own, batch_size, say, started)
        run.update(shard=f"{index}/{count}", skipped=len(positions) - len(pending), concepts=0)
        if sources and args.concepts:
            # Concepts are the chief's alone (CRAFT runs on its examples), on one device.
            run["concepts"] = _concepts(args, loaded, plan, positions, sources, own, say)
    except (_InterruptedError, KeyboardInterrupt):
        if own.targets:
            own.save()
        done = _shard_done(out, own, plan, positions)
        raise _InterruptedError(done, len(positions), out) from None
    if run["computed"] or run["concepts"]:
        own.save()
    if positions and is_chief:
        _build(out, settings, say)
    say(
        f"{len(positions)} classes in shard {index}/{count}: {run['computed']} computed, "
        f"{run['skipped']} skipped, concepts for {run['concepts']}; "
        f"{time.perf_counter() - started:.1f} s"
    )
    return EXIT_OK


def _concepts(
    args: argparse.Namespace,
    loaded: LoadedModel,
    plan: _Plan,
    positions: Sequence[int],
    sources: dict[str, list[Path]],
    own: _Results,
    say: Callable[[str], None],
) -> int:
    """The concept phase, or a warning when the model cannot be split for CRAFT."""
    try:
        encoder, head = _split_model(loaded)
    except MacoError as exc:
        print(f"maco-tf: warning: no concepts: {exc}", file=sys.stderr)
        return 0
    job = _ConceptJob(args, loaded, encoder, head, say)
    return _concept_phase(job, plan, positions, sources, own, _finished(own.path.parent, own))

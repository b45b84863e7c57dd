"""The ``maco-tf`` command line: feature visualizations to PNG files, resumable.

Usage::

    maco-tf visualize --classes espresso,goldfish            # EfficientNet-Lite0, offline
    maco-tf visualize --model MobileNetV2 --classes 1,967     # keras.applications (downloads)
    maco-tf visualize --model net.keras --layer conv3 --channel 0-7 --values-range 0,1
    maco-tf visualize --layer block6a_expand_conv --direction dirs.npy --method fourier
    maco-tf layers --model net.keras                          # list layer paths and shapes

Each target gets ``<slug>.png`` (the image), ``<slug>_rgba.png`` (with its importance as alpha)
and ``<slug>_heatmap.png``; ``results.json`` describes the run: settings, and per target its
name, files, objective value, the model's top-5 classes on the image, and timings.

Resuming: targets are processed in chunks of ``--batch-size``; after each chunk its PNGs are
written and ``results.json`` is rewritten atomically. Re-running the same command skips every
target whose three PNGs exist and that ``results.json`` records. If the folder holds results
made with *different settings* (model, method, steps, crops, size, seed, value range), the
command refuses (exit code 2) and names the differences: use another ``--out`` folder, or pass
``--overwrite`` to delete the recorded images and start afresh. ``--batch-size`` and ``--jit``
are not settings in that sense (they only change speed, and which random streams images use).

Exit codes: 0 done, 2 bad input (unknown model, class, layer, index, conflicting settings...),
130 interrupted (finished targets are kept; re-run to resume), 1 other failures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from maco_tf.core import visualization as api
from maco_tf.core.distribute import STRATEGIES, Distribution, fingerprint, make_strategy
from maco_tf.errors import MacoError
from maco_tf.models import loading as models
from maco_tf.models.layers import find_layer, layer_paths
from maco_tf.models.loading import LoadedModel
from maco_tf.models.zoo import CheckpointError, ImageNetClassError, resolve_classes
from maco_tf.outputs.render import save_visualization
from maco_tf.targets import units as targets
from maco_tf.version import __version__

RESULTS_FILE = "results.json"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Settings that must match for a folder's results to be reused.
SETTING_KEYS = (
    "model",
    "model_identity",
    "values_range",
    "method",
    "steps",
    "crops",
    "size",
    "box_size",
    "whole_views",
    "noise",
    "seed",
)
# Defaults chosen so that the whole image shows the target (see README, "Quality"): crops that
# start at the full image keep the object whole; Xplique's 0.5 -> 0.05 optimises fragments.
# Half of Xplique's noise: higher plausibility and target probability (README, "Tuning").
DEFAULT_STEPS = 128
DEFAULT_CROPS = 16
DEFAULT_SIZE = 320
DEFAULT_BOX_SIZE = (1.0, 0.3)
DEFAULT_WHOLE_VIEWS = 4
DEFAULT_NOISE = 0.04
FILE_KINDS = ("image", "rgba", "heatmap")
#: Exceptions that mean a user mistake: one-line message, exit code 2.
USER_ERRORS = (MacoError, ImageNetClassError, CheckpointError)

__all__ = ["main"]


class _InterruptedError(Exception):
    """Raised to report how many targets were saved when the user pressed Ctrl-C."""

    def __init__(self, saved: int, total: int, out: Path) -> None:
        super().__init__(
            f"interrupted; {saved} of {total} targets saved in {out}, re-run to resume"
        )


# ------------------------------------------------------------------------------ parsing


def _positive_int(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _int_list(text: str) -> list[int]:
    """``"0,3,10-12"`` -> ``[0, 3, 10, 11, 12]``."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        try:
            if sep and low:
                values.extend(range(int(low), int(high) + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated indices or ranges like 0,3,10-12; got {text!r}"
            ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"empty index list {text!r}")
    return values


def _noise_level(text: str) -> float:
    """``--noise``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.08, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _box_sizes(text: str) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START,END such as 1,0.3; got {text!r}"
        ) from None
    if not (0 < start <= 1 and 0 < end <= 1):
        raise argparse.ArgumentTypeError(f"crop sizes must lie in (0, 1]; got {text!r}")
    return start, end


def _values_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 0,255; got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise argparse.ArgumentTypeError(f"expected finite LOW < HIGH; got {text!r}")
    return low, high


def add_optimisation_arguments(how: argparse._ArgumentGroup, unit: str) -> None:
    """The optimisation flags shared by ``visualize`` and ``atlas`` (same names and defaults).

    Parameters
    ----------
    how
        Argument group to add them to.
    unit
        What one compiled batch holds, for the ``--batch-size`` help ("targets", "classes").
    """
    how.add_argument("--method", choices=("maco", "fourier", "pixel"), default="maco")
    how.add_argument(
        "--steps", type=_positive_int(1), default=DEFAULT_STEPS, help=f"default {DEFAULT_STEPS}"
    )
    how.add_argument(
        "--crops",
        type=_positive_int(0),
        default=DEFAULT_CROPS,
        help=f"per step; default {DEFAULT_CROPS}",
    )
    how.add_argument(
        "--size",
        type=_positive_int(1),
        default=DEFAULT_SIZE,
        help=f"image side; default {DEFAULT_SIZE}",
    )
    how.add_argument(
        "--box-size",
        type=_box_sizes,
        default=DEFAULT_BOX_SIZE,
        metavar="START,END",
        help="crop side as a fraction of the image side, linear from START to END "
        f"(default {DEFAULT_BOX_SIZE[0]:g},{DEFAULT_BOX_SIZE[1]:g}; Xplique's is 0.5,0.05)",
    )
    how.add_argument(
        "--whole-views",
        type=_positive_int(0),
        default=DEFAULT_WHOLE_VIEWS,
        metavar="K",
        help=f"of the --crops views each step, K show the whole image (default "
        f"{DEFAULT_WHOLE_VIEWS}; Xplique: 0)",
    )
    how.add_argument(
        "--noise",
        type=_noise_level,
        default=DEFAULT_NOISE,
        metavar="STD",
        help=f"noise std added to every view, for inputs of range width 2 (scaled to the "
        f"model's range; default {DEFAULT_NOISE:g}; Xplique: 0.08)",
    )
    how.add_argument("--seed", type=_positive_int(0), default=0, help="default 0")
    how.add_argument(
        "--batch-size",
        type=_positive_int(1),
        default=None,
        help=f"{unit} optimised (and saved) together; default: about 128 crops per step",
    )
    how.add_argument("--jit", action="store_true", help="compile the loop with XLA")
    how.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="tf.distribute over devices: mirrored (this machine's GPUs), multi-worker "
        "(machines listed in TF_CONFIG; run the same command on each, the chief writes), none; "
        "default auto: multi-worker with TF_CONFIG, mirrored with several GPUs, else none",
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="efficientnet-lite0 (default, offline), a .keras/.h5 file, a SavedModel folder, or "
        "a keras.applications name such as MobileNetV2 (ImageNet weights downloaded by Keras)",
    )
    parser.add_argument(
        "--values-range",
        type=_values_range,
        default=None,
        metavar="LOW,HIGH",
        help="input range the model expects (default: the model's own; (0, 255) for files)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``maco-tf`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="maco-tf", description="MACO feature visualization for Keras models."
    )
    parser.add_argument("--version", action="version", version=f"maco-tf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    vis = commands.add_parser(
        "visualize",
        help="optimise images for classes, channels, neurons or directions",
        description="Optimise one image per target and save PNGs and results.json in --out. "
        "Re-running the same command resumes: finished targets are skipped.",
    )
    _add_model_arguments(vis)
    what = vis.add_argument_group("targets (--classes, or --layer with one of the others)")
    what.add_argument("--classes", help="comma-separated class names or indices: espresso,1")
    what.add_argument("--layer", help="layer name, index, or nested path backbone/layer")
    what.add_argument("--channel", type=_int_list, help="channel indices: 0,5,10-12")
    what.add_argument("--neuron", type=_int_list, help="flat unit indices of --layer")
    what.add_argument("--direction", metavar="FILE.npy", help="direction(s): (C,) or (N, C)")
    add_optimisation_arguments(vis.add_argument_group("optimisation"), "targets")
    out = vis.add_argument_group("output")
    out.add_argument("--out", default="maco_out", help="output folder (default maco_out)")
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="discard results made with other settings in --out (deletes their images)",
    )
    out.add_argument("--quiet", action="store_true", help="no progress bar nor per-target lines")
    vis.set_defaults(handler=_cmd_visualize)

    layers = commands.add_parser("layers", help="list the layer paths of a model")
    _add_model_arguments(layers)
    layers.set_defaults(handler=_cmd_layers)

    from maco_tf.atlas.build import (
        add_atlas_parser,  # imported here: maco_tf.atlas.build imports this module
    )

    add_atlas_parser(commands)
    return parser


# ------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class _Target:
    """One image to make: its file stem, description and identity."""

    slug: str
    name: str
    kind: str
    layer: str
    index: int
    key: str


@dataclass
class _Plan:
    """The full objective (one combination per target) and the target descriptions."""

    objective: object
    targets: list[_Target]


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in text.replace("/", "__"))
    return cleaned.strip("_") or "target"


def _class_ids(args: argparse.Namespace, loaded: LoadedModel) -> list[int]:
    if loaded.class_names is not None:
        return resolve_classes(args.classes)

    ids = []
    for entry in args.classes.split(","):
        try:
            ids.append(int(entry))
        except ValueError:
            raise MacoError(
                f"model {loaded.name!r} has no class names; give class indices, e.g. --classes "
                f"0,3 (got {entry.strip()!r})"
            ) from None
    return ids


def _plan_classes(args: argparse.Namespace, loaded: LoadedModel) -> _Plan:
    layer = args.layer or loaded.logits_layer
    ids = list(dict.fromkeys(_class_ids(args, loaded)))
    objective = targets.class_logits(loaded.model, ids, layer, class_names=loaded.class_names)
    label = "/".join(item.name for item in find_layer(loaded.model, layer))
    plan = []
    for i, name in zip(ids, objective.names[0], strict=True):
        slug = f"{i:04d}_{_slug(name)}" if loaded.class_names is not None else f"class{i:04d}"
        plan.append(_Target(slug, name, "class", label, i, f"class:{label}:{i}"))
    return _Plan(objective, plan)


def _load_directions(path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MacoError(f"cannot read direction file '{path}': {exc}") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise MacoError(f"direction file '{path}' must hold one numeric array, (C,) or (N, C)")
    return array.astype(np.float32)


def _plan_layer(args: argparse.Namespace, loaded: LoadedModel) -> _Plan:
    chosen = [flag for flag in ("channel", "neuron", "direction") if getattr(args, flag)]
    if len(chosen) != 1:
        raise MacoError(
            "with --layer give exactly one of --channel, --neuron or --direction"
            + (f" (got {', '.join('--' + c for c in chosen)})" if chosen else "")
        )
    label = "/".join(item.name for item in find_layer(loaded.model, args.layer))
    base = _slug(label)
    if args.channel is not None:
        ids = list(dict.fromkeys(args.channel))
        objective = targets.channel(loaded.model, args.layer, ids)
        plan = [
            _Target(f"{base}_ch{i:04d}", n, "channel", label, i, f"channel:{label}:{i}")
            for i, n in zip(ids, objective.names[0], strict=True)
        ]
    elif args.neuron is not None:
        ids = list(dict.fromkeys(args.neuron))
        objective = targets.neuron(loaded.model, args.layer, ids)
        plan = [
            _Target(f"{base}_n{i:04d}", n, "neuron", label, i, f"neuron:{label}:{i}")
            for i, n in zip(ids, objective.names[0], strict=True)
        ]
    else:
        vectors = _load_directions(args.direction)
        objective = targets.direction(loaded.model, args.layer, vectors)
        stem = _slug(Path(args.direction).stem)
        plan = []
        for i, (name, vector) in enumerate(
            zip(objective.names[0], objective.masks[0], strict=True)
        ):
            digest = hashlib.sha1(np.ascontiguousarray(vector).tobytes()).hexdigest()[:12]
            plan.append(
                _Target(
                    f"{base}_{stem}_dir{i:03d}",
                    name,
                    "direction",
                    label,
                    i,
                    f"direction:{label}:{digest}",
                )
            )
    return _Plan(objective, plan)


def _plan(args: argparse.Namespace, loaded: LoadedModel) -> _Plan:
    if args.classes is not None:
        if any(getattr(args, flag) is not None for flag in ("channel", "neuron", "direction")):
            raise MacoError("--classes cannot be combined with --channel, --neuron or --direction")
        return _plan_classes(args, loaded)
    if args.layer is not None:
        return _plan_layer(args, loaded)
    if any(getattr(args, flag) is not None for flag in ("channel", "neuron", "direction")):
        raise MacoError("--channel, --neuron and --direction need --layer")
    raise MacoError(
        "nothing to visualize: give --classes, or --layer with --channel, --neuron or --direction"
    )


# ------------------------------------------------------------------------------ results


@dataclass
class _Results:
    """The content of ``results.json``, kept in memory and rewritten after each chunk."""

    path: Path
    settings: dict
    targets: dict[str, dict] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "maco_tf_version": __version__,
            "settings": self.settings,
            "targets": list(self.targets.values()),
            "total_time_s": round(sum(run.get("time_s", 0.0) for run in self.runs), 3),
            "runs": self.runs,
        }

    def save(self) -> None:
        """Write atomically: a temporary file in the folder, then ``os.replace``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_json(), handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def is_done(self, target: _Target) -> bool:
        """Recorded with the same identity, and its three PNGs are on disk."""
        record = self.targets.get(target.slug)
        if record is None or record.get("key") != target.key:
            return False
        files = record.get("files", {})
        return all(
            kind in files and (self.path.parent / files[kind]).is_file() for kind in FILE_KINDS
        )


def _settings_diff(old: dict, new: dict) -> list[str]:
    return [
        f"{key} {old.get(key)!r}, now {new.get(key)!r}"
        for key in SETTING_KEYS
        if old.get(key) != new.get(key)
    ]


def _open_results(out: Path, settings: dict, overwrite: bool) -> _Results:
    """Existing results of ``out`` if their settings match, else a refusal or a fresh start."""
    path = out / RESULTS_FILE
    results = _Results(path, settings)
    if not path.exists():
        return results
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        old_settings = dict(data["settings"])
        records = {record["slug"]: record for record in data["targets"]}
        runs = list(data.get("runs", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not overwrite:
            raise MacoError(
                f"cannot read {path} ({type(exc).__name__}); delete it, use another "
                f"--out folder, or pass --overwrite"
            ) from None
        return results
    differences = _settings_diff(old_settings, settings)
    if differences and not overwrite:
        raise MacoError(
            f"{out} holds results made with other settings ({'; '.join(differences)}); use "
            f"another --out folder, or pass --overwrite to replace them"
        )
    if differences:
        for record in records.values():
            for name in record.get("files", {}).values():
                (out / name).unlink(missing_ok=True)
        return results
    results.targets, results.runs = records, runs
    return results


# ------------------------------------------------------------------------------ running


def _top5(loaded: LoadedModel, images: np.ndarray) -> list[list[dict]] | None:
    """The model's 5 best classes on each whole image (resized to its input), or None."""
    output_shape = tuple(loaded.model.outputs[0].shape)
    if len(loaded.model.outputs) != 1 or len(output_shape) != 2:
        return None
    resized = keras.ops.image.resize(images, loaded.input_size, antialias=True)
    scores = np.asarray(loaded.model(resized, training=False), dtype=np.float64)
    is_probability = np.all(scores >= 0) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    if not is_probability:
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    best = []
    for row in scores:
        order = np.argsort(-row)[:5]
        best.append(
            [
                {"index": int(i), "name": _class_name(loaded, int(i)), "probability": float(row[i])}
                for i in order
            ]
        )
    return best


def _class_name(loaded: LoadedModel, index: int) -> str:
    names = loaded.class_names
    return str(names[index]) if names is not None and index < len(names) else str(index)


def _run_chunk(
    args: argparse.Namespace,
    loaded: LoadedModel,
    plan: _Plan,
    chunk: list[int],
    results: _Results,
    batch_size: int,
    say: Callable[[str], None],
) -> None:
    """Optimise, save and record one chunk of targets (indices into ``plan.targets``).

    Each image's randomness depends on ``--seed`` and its target's id (:func:`_image_ids`)
    only, so it does not depend on the batch, the shard or the devices it ran in.
    """
    out = results.path.parent
    seed = args.seed
    ids = _image_ids(plan)
    objective = targets.select(plan.objective, chunk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", api.DeadObjectiveWarning)
        result = api.visualize(
            objective,
            method=args.method,
            steps=args.steps,
            crops=args.crops,
            values_range=loaded.values_range,
            size=args.size,
            box_size=tuple(args.box_size),
            noise=args.noise,
            seed=seed,
            batch_size=batch_size,
            jit_compile=args.jit,
            progress=not args.quiet,
            strategy=_distribution(args).strategy,
            image_ids=[ids[i] for i in chunk],
            whole_views=_whole_views(args),
        )
    for item in caught:
        if issubclass(item.category, api.DeadObjectiveWarning):
            print(f"maco-tf: warning: {item.message}", file=sys.stderr)
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)
    top5 = _top5(loaded, result.images)
    values = result.objective_values
    for position, index in enumerate(chunk):
        target = plan.targets[index]
        paths = save_visualization(
            out,
            target.slug,
            result.images[position],
            result.transparency[position],
            loaded.values_range,
        )
        results.targets[target.slug] = {
            "slug": target.slug,
            "name": target.name,
            "kind": target.kind,
            "layer": target.layer,
            "index": target.index,
            "key": target.key,
            "files": {kind: paths[kind].name for kind in FILE_KINDS},
            "objective_value": float(values[position]),
            "dead": bool(result.dead[position]),
            "top5": None if top5 is None else top5[position],
            "seed": seed,
            "image_id": ids[index],
            "batch_position": position,
            "wall_time_s": round(result.elapsed_s / len(chunk), 3),
            "batch_wall_time_s": round(result.elapsed_s, 3),
        }
        best = ""
        if top5 is not None:
            first = top5[position][0]
            best = f"  top-1: {first['name']} ({100 * first['probability']:.1f}%)"
        say(f"saved {target.slug}  objective {values[position]:.4g}{best}")


def _image_ids(plan: _Plan) -> list[int]:
    """Random-stream id of each target.

    Its class, channel or neuron index when those are unique in the plan, else its position.
    """
    indices = [target.index for target in plan.targets]
    if len(set(indices)) == len(indices) and min(indices, default=0) >= 0:
        return indices
    return list(range(len(indices)))


def _distribution(args: argparse.Namespace) -> Distribution:
    """The :class:`Distribution` a command set up (none for callers that made no strategy)."""
    return getattr(args, "distribution", None) or Distribution()


def _set_up_distribution(args: argparse.Namespace, say: Callable[[str], None]) -> Distribution:
    """Make ``--strategy``'s strategy (before any other TensorFlow work) and keep it in args."""
    distribution = Distribution(make_strategy(getattr(args, "strategy", "none")))
    args.distribution = distribution
    if distribution.strategy is not None:
        role = "chief" if distribution.is_chief else "worker (the chief writes the results)"
        say(f"strategy: {distribution.describe()}; this process is the {role}")
    return distribution


def _load_model(args: argparse.Namespace, distribution: Distribution) -> LoadedModel:
    """The ``--model``, its weights mirrored over the strategy's devices when there is one."""
    if distribution.strategy is None:
        return models.load_model(args.model, values_range=args.values_range)
    with distribution.strategy.scope():
        return models.load_model(args.model, values_range=args.values_range)


def _agreed_pending(
    args: argparse.Namespace,
    settings: dict,
    plan: _Plan,
    pending: Sequence[int],
    batch_size: int,
    shard: tuple[int, int] = (0, 1),
) -> list[int]:
    """The chief's pending targets, after checking that all workers run the same thing."""
    key = fingerprint(settings, [t.key for t in plan.targets], batch_size, shard)
    return _distribution(args).agree(key, pending, len(plan.targets))


@contextlib.contextmanager
def _writable(out: Path, distribution: Distribution) -> Iterator[Path]:
    """Where this process writes: ``out`` on the chief.

    The other workers of a cluster compute what the chief writes, into a scratch folder that
    is deleted on exit.
    """
    if distribution.is_chief:
        yield out
        return
    scratch = Path(tempfile.mkdtemp(prefix="maco-tf-worker-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _whole_views(args: argparse.Namespace) -> int:
    """``--whole-views``, at most ``--crops`` (every view whole)."""
    return min(args.whole_views, args.crops)


def _batch_size(args: argparse.Namespace) -> int:
    """``--batch-size``, or about 128 crops per step on each replica."""
    return args.batch_size or api.auto_batch_size(args.crops, _distribution(args).replicas)


def _settings(args: argparse.Namespace, loaded: LoadedModel) -> dict:
    return {
        "model": loaded.name,
        "model_identity": loaded.identity,
        "model_source": loaded.source,
        "values_range": [float(v) for v in loaded.values_range],
        "method": args.method,
        "steps": args.steps,
        "crops": args.crops,
        "size": args.size,
        "box_size": [float(v) for v in args.box_size],
        "whole_views": _whole_views(args),
        "noise": args.noise,
        "seed": args.seed,
    }


def _cmd_visualize(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise MacoError(f"--out {out} exists and is not a folder")

    def say(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)

    distribution = _set_up_distribution(args, say)
    loaded = _load_model(args, distribution)
    for note in loaded.notes:
        say(f"note: {note}")
    if args.size < max(loaded.input_size):
        raise MacoError(
            f"--size {args.size} is smaller than the model input "
            f"{loaded.input_size[0]}x{loaded.input_size[1]}; use at least "
            f"{max(loaded.input_size)}"
        )
    plan = _plan(args, loaded)
    settings = _settings(args, loaded)
    batch_size = _batch_size(args)
    with _writable(out, distribution) as folder:
        results = _open_results(folder, settings, args.overwrite)
        pending = [i for i, target in enumerate(plan.targets) if not results.is_done(target)]
        pending = _agreed_pending(args, settings, plan, pending, batch_size)
        total = len(plan.targets)
        for i in sorted(set(range(total)) - set(pending)):
            say(f"skipped {plan.targets[i].slug} (already in {out})")
        run = _run_pending(args, loaded, plan, pending, results, batch_size, say, started)
    say(
        f"{total} targets: {run['computed']} computed, {run['skipped']} skipped; "
        f"results in {out / RESULTS_FILE} ({run['time_s']:.1f} s)"
    )
    return EXIT_OK


def _run_pending(
    args: argparse.Namespace,
    loaded: LoadedModel,
    plan: _Plan,
    pending: list[int],
    results: _Results,
    batch_size: int,
    say: Callable[[str], None],
    started: float,
) -> dict:
    """Run the pending targets chunk by chunk, saving results after each; the run's record."""
    run = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "computed": 0,
        "skipped": len(plan.targets) - len(pending),
        "batch_size": batch_size,
        "jit": bool(args.jit),
        "strategy": _distribution(args).describe(),
        "time_s": 0.0,
    }
    results.runs.append(run)
    if not args.batch_size:  # balanced over what is left to do (pending is agreed by workers)
        batch_size = api.auto_batch_size(args.crops, _distribution(args).replicas, len(pending))
        run["batch_size"] = batch_size
    try:
        for first in range(0, len(pending), batch_size):
            chunk = pending[first : first + batch_size]
            _run_chunk(args, loaded, plan, chunk, results, batch_size, say)
            run["computed"] += len(chunk)
            run["time_s"] = round(time.perf_counter() - started, 3)
            results.save()
    except KeyboardInterrupt:
        run["interrupted"] = True
        run["time_s"] = round(time.perf_counter() - started, 3)
        if run["computed"]:
            results.save()
        saved = sum(results.is_done(target) for target in plan.targets)
        raise _InterruptedError(saved, len(plan.targets), results.path.parent) from None
    run["time_s"] = round(time.perf_counter() - started, 3)
    if run["computed"]:
        results.save()
    return run


def _cmd_layers(args: argparse.Namespace) -> int:
    loaded = models.load_model(args.model, values_range=args.values_range)
    for path in layer_paths(loaded.model):
        layer = find_layer(loaded.model, path)[-1]
        try:
            shape = tuple(layer.output.shape[1:])
        except (AttributeError, ValueError):
            shape = "?"
        print(f"{path}\t{shape}")
    return EXIT_OK


# ------------------------------------------------------------------------------ main


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``maco-tf``; returns the exit code (0 ok, 2 bad input, 130 interrupted, 1 failure).

    Parameters
    ----------
    argv
        Arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or an argparse error (code 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_usage(sys.stderr)
        print("maco-tf: error: give a command: visualize, layers or atlas", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except _InterruptedError as exc:
        print(f"maco-tf: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("maco-tf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as exc:
        print(f"maco-tf: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"maco-tf: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

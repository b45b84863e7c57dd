"""The ``accentuate`` command: a photo accentuated towards classes or units, saved in ``--out``.

``maco-tf accentuate --image photo.jpg --classes goldfish`` writes ``seed.png`` (the photo as
optimised: its centre crop at the accentuation's size) and, per target, ``<slug>.png``,
``<slug>_rgba.png`` and ``<slug>_heatmap.png`` as ``maco-tf visualize`` does, with
``results.json`` recording the settings and, per target, the objective before and after, the
distance to the seed and the model's top-5 classes before and after. Each call starts afresh
(no resuming).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from maco_tf.cli.commands import EXIT_OK, plan
from maco_tf.cli.flags import add_model_arguments, add_target_arguments
from maco_tf.cli.parsing import positive_int
from maco_tf.files import write_text_atomically
from maco_tf.models import loading as models
from maco_tf.models.layers import model_input_size
from maco_tf.outputs.render import save_png, save_visualization, to_uint8
from maco_tf.runs.results import RESULTS_FILE
from maco_tf.runs.running import sayer
from maco_tf.runs.scoring import top5
from maco_tf.targets.accentuation import (
    ACCENTUATION_DEFAULTS,
    AccentuationInputError,
    accentuate,
)

__all__ = ["add_accentuate_parser", "read_photo", "run_accentuate"]


def add_accentuate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``maco-tf accentuate`` (flags and handler) on the command parser."""
    parser = subparsers.add_parser(
        "accentuate",
        help="accentuate what drives classes or units in a photo (feature accentuation)",
        description="Change a photo just enough to drive each target (Hamblin, Fel et al., "
        "2024) and save the images, transparency maps and results.json in --out.",
    )
    add_model_arguments(parser)
    parser.add_argument("--image", required=True, help="the photo (any format PIL reads)")
    add_target_arguments(parser)
    how = parser.add_argument_group("optimisation")
    steps, crops = ACCENTUATION_DEFAULTS["steps"], ACCENTUATION_DEFAULTS["crops"]
    how.add_argument("--steps", type=positive_int(1), default=steps, help=f"default {steps}")
    how.add_argument("--crops", type=positive_int(0), default=crops, help=f"default {crops}")
    how.add_argument(
        "--size", type=positive_int(1), default=None, help="image side; default the model input"
    )
    how.add_argument(
        "--penalty",
        type=float,
        default=1.0,
        help="weight of the squared pixel distance to the photo (default 1; higher: closer)",
    )
    how.add_argument("--seed", type=positive_int(0), default=0, help="default 0")
    how.add_argument("--batch-size", type=positive_int(1), default=None, help="targets at once")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="accent_out", help="output folder (default accent_out)")
    out.add_argument("--quiet", action="store_true", help="no progress bar nor per-target lines")
    parser.set_defaults(handler=run_accentuate)


def read_photo(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """The photo at ``path``: centre crop of the aspect of ``shape``, resized, uint8 scale.

    Parameters
    ----------
    path
        An image file PIL can read.
    shape
        ``(height, width, channels)`` wanted; 1 channel reads it as greyscale, 3 as RGB.

    Returns
    -------
    photo
        float32 ``(height, width, channels)`` in [0, 255].

    Raises
    ------
    AccentuationInputError
        For a missing or unreadable file, or a channel count other than 1 or 3.
    """
    height, width, channels = shape
    if channels not in (1, 3):
        raise AccentuationInputError(
            f"the model takes {channels}-channel images; --image reads 1 (grey) or 3 (RGB)"
        )
    try:
        with Image.open(path) as picture:
            array = np.asarray(picture.convert("L" if channels == 1 else "RGB"), np.float32)
    except (OSError, UnidentifiedImageError) as exc:
        raise AccentuationInputError(f"cannot read --image {str(path)!r}: {exc}") from None
    array = array.reshape(*array.shape[:2], channels)
    rows, cols = array.shape[:2]
    scale = min(rows / height, cols / width)
    crop_h, crop_w = round(height * scale), round(width * scale)
    top, left = (rows - crop_h) // 2, (cols - crop_w) // 2
    crop = array[top : top + crop_h, left : left + crop_w]
    resized = tf.image.resize(crop[None], (height, width), antialias=True)[0].numpy()
    return np.clip(resized, 0.0, 255.0)


def run_accentuate(args: argparse.Namespace) -> int:
    """``maco-tf accentuate``: accentuate ``--image`` for each target in ``--out``; 0 when done."""
    started = time.perf_counter()
    out = Path(args.out)
    say = sayer(args.quiet)
    loaded = models.load_model(args.model, values_range=args.values_range)
    targets = plan(args, loaded)
    height, width, channels = model_input_size(loaded.model)
    size = (height, width) if args.size is None else (args.size, args.size * width // height)
    low, high = loaded.values_range
    seed = read_photo(args.image, (*size, channels)) / 255.0 * (high - low) + low
    out.mkdir(parents=True, exist_ok=True)
    result = accentuate(
        targets.objective,
        seed,
        penalty=args.penalty,
        progress=not args.quiet,
        steps=args.steps,
        crops=args.crops,
        size=size,
        seed=args.seed,
        values_range=loaded.values_range,
        batch_size=args.batch_size,
    )
    save_png(out / "seed.png", to_uint8(result.seeds[0], loaded.values_range))
    before, after = top5(loaded, result.seeds), top5(loaded, result.images)
    records = {}
    for i, target in enumerate(targets.targets):
        paths = save_visualization(
            out, target.slug, result.images[i], result.transparency[i], loaded.values_range
        )
        records[target.slug] = {
            "name": target.name,
            "kind": target.kind,
            "layer": target.layer,
            "index": target.index,
            "files": {kind: path.name for kind, path in paths.items()},
            "objective_before": float(result.objective_before[i]),
            "objective_after": float(result.objective_after[i]),
            "seed_distance": float(result.seed_distance[i]),
            "top5_before": None if before is None else before[i],
            "top5_after": None if after is None else after[i],
        }
        say(
            f"saved {target.slug}  objective {result.objective_before[i]:.4g} -> "
            f"{result.objective_after[i]:.4g}, RMS change {100 * result.seed_distance[i]:.1f} %"
        )
    record = {
        "image": str(args.image),
        "model": loaded.name,
        "settings": result.settings,
        "time_s": round(time.perf_counter() - started, 3),
        "targets": records,
    }
    write_text_atomically(out / RESULTS_FILE, json.dumps(record, indent=2, default=str))
    say(f"{len(records)} targets accentuated; results in {out / RESULTS_FILE}")
    return EXIT_OK

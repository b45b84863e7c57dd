"""``maco-tf accentuate`` below the command line: a photo accentuated towards a request's targets.

``seed.png`` (the photo as optimised: its centre crop at the accentuation's size) and, per
target, ``<slug>.png``, ``<slug>_rgba.png`` and ``<slug>_heatmap.png`` as ``maco-tf visualize``
writes them, with ``results.json`` recording the settings and, per target, the objective before
and after, the distance to the seed and the model's top-5 classes before and after.

It runs as ``maco-tf visualize`` does: the request's :class:`~maco_tf.RunConfig` (bad settings
and resource bounds were refused when it was built), ``out`` checked before any work, written
through :class:`~maco_tf.files.OutputFolder` under the lock of its results file; a re-run with
the same photo and settings skips the finished targets, and results made otherwise are refused
unless ``overwrite``. The targets run chunk by chunk (``--batch-size``) on the shared run loop,
each finished chunk saved: an interrupted run keeps its finished targets.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from maco_tf.core.limits import Limits
from maco_tf.core.parameterization import SeededSpectrumParameterization
from maco_tf.files import OutputFolder
from maco_tf.models.images import ImageReadError, read_array
from maco_tf.models.layers import model_input_size
from maco_tf.models.loading import LoadedModel
from maco_tf.outputs.render import save_png, to_uint8
from maco_tf.runs import settings as run_settings
from maco_tf.runs.plans import Plan
from maco_tf.runs.request import Request
from maco_tf.runs.results import RESULTS_FILE, Results, open_results
from maco_tf.runs.running import Say, run_pending, sayer
from maco_tf.runs.scoring import top5
from maco_tf.runs.startup import load_model, set_up_distribution, writable
from maco_tf.runs.visualizing import plan_targets
from maco_tf.targets import units
from maco_tf.targets.accentuation import AccentuationInputError, accentuate

__all__ = ["SEED_FILE", "accentuate_photo", "accentuation_settings", "read_photo"]

#: The photo as optimised, in ``--out``.
SEED_FILE = "seed.png"


def read_photo(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """The photo at ``path``: centre crop of the aspect of ``shape``, resized, uint8 scale.

    Read by :func:`maco_tf.models.images.read_array` within the bounds of
    :meth:`Limits.from_environment <maco_tf.core.limits.Limits.from_environment>`: a regular
    file only, its pixels bounded from the header before decoding, upright (EXIF), any mode
    converted (16-bit grey scaled by its range, transparency composited on white).

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
        One line for a missing, irregular (FIFO, device, directory), oversized or unreadable
        file, or a channel count other than 1 or 3.
    """
    height, width, channels = shape
    if channels not in (1, 3):
        raise AccentuationInputError(
            f"the model takes {channels}-channel images; --image reads 1 (grey) or 3 (RGB)"
        )
    bounds = Limits.from_environment().image_bounds()
    try:
        array = read_array(path, channels, what="--image", bounds=bounds)
    except ImageReadError as exc:
        raise AccentuationInputError(str(exc)) from None
    rows, cols = array.shape[:2]
    scale = min(rows / height, cols / width)
    crop_h, crop_w = round(height * scale), round(width * scale)
    top, left = (rows - crop_h) // 2, (cols - crop_w) // 2
    crop = array[top : top + crop_h, left : left + crop_w].astype(np.float32)  # crop, then copy
    resized = tf.image.resize(crop[None], (height, width), antialias=True)[0].numpy()
    return np.clip(resized, 0.0, 255.0)


def _seed_image(request: Request, loaded: LoadedModel) -> np.ndarray:
    """``--image`` at the run's size, in the model's value range."""
    size = request.config.size or loaded.input_size
    channels = model_input_size(loaded.model)[-1]
    low, high = loaded.values_range
    return read_photo(request.image, (*size, channels)) / 255.0 * (high - low) + low


def accentuation_settings(request: Request, loaded: LoadedModel, seed: np.ndarray) -> dict:
    """The settings ``results.json`` records and a re-run compares.

    Those of ``maco-tf visualize`` (:func:`~maco_tf.runs.settings.run_settings`) with the
    accentuation's method, ``--penalty`` and the SHA-256 of the seed's pixels: a re-run with
    another photo or penalty, or results of ``visualize``, differ.
    """
    return {
        **run_settings.run_settings(request.config, loaded),
        "method": SeededSpectrumParameterization.name,
        "penalty": request.penalty,
        "image_sha256": hashlib.sha256(np.ascontiguousarray(seed).tobytes()).hexdigest(),
    }


def accentuate_photo(request: Request) -> int:
    """Accentuate the request's ``image`` for each missing target in its ``out`` folder; 0.

    The targets run chunk by chunk on the shared run loop
    (:func:`~maco_tf.runs.running.run_pending`): each finished chunk is saved, so an
    interrupted run (Ctrl-C, SIGTERM, ``kill -9``) keeps it and a re-run resumes.
    """
    started = time.perf_counter()
    out = request.out
    OutputFolder(out).check_writable()
    say = sayer(request.quiet)
    request = set_up_distribution(request, say)
    loaded, request = load_model(request, say)
    targets = plan_targets(request.targets, loaded)
    seed = _seed_image(request, loaded)
    settings = accentuation_settings(request, loaded, seed)
    with writable(out, request.distribution) as folder, OutputFolder(folder).lock(RESULTS_FILE):
        results = open_results(folder / RESULTS_FILE, settings, request.overwrite)
        pending = [i for i, target in enumerate(targets.targets) if not results.is_done(target)]
        for i in sorted(set(range(len(targets.targets))) - set(pending)):
            say(f"skipped {targets.targets[i].slug} (already in {out})")
        run = {"computed": 0}
        if pending:
            run = run_pending(
                request,
                loaded,
                targets,
                pending,
                results,
                request.batch_size,
                say,
                started,
                produce=_Producer(request, loaded, targets, seed, results, say),
                record={"image": str(request.image)},
            )
    say(
        f"{len(targets.targets)} targets: {run['computed']} accentuated, "
        f"{len(targets.targets) - len(pending)} skipped; results in {out / RESULTS_FILE}"
    )
    return 0


class _Producer:
    """Accentuates ``seed`` towards a chunk of targets; saves their files and records."""

    def __init__(
        self,
        request: Request,
        loaded: LoadedModel,
        targets: Plan,
        seed: np.ndarray,
        results: Results,
        say: Say,
    ) -> None:
        self.request, self.loaded, self.targets = request, loaded, targets
        self.seed, self.results, self.say = seed, results, say

    def __call__(self, chunk: list[int]) -> None:
        """Accentuate the targets ``chunk`` (indices into the plan), save and record them.

        Each image's random streams are its target's position in the plan, whatever chunk it
        runs in: chunks, resumed runs and one whole run give the same images.
        """
        loaded, results = self.loaded, self.results
        result = accentuate(
            units.select(self.targets.objective, chunk),
            self.seed,
            self.request.config,
            penalty=self.request.penalty,
            progress=not self.request.quiet,
            image_ids=chunk,
            batch_size=len(chunk),  # one batch, sized once by runs.settings.batch_size
        )
        seed_path = results.folder.path(SEED_FILE)
        save_png(seed_path, to_uint8(result.seeds[0], loaded.values_range))
        before, after = top5(loaded, result.seeds), top5(loaded, result.images)
        for position, index in enumerate(chunk):
            target = self.targets.targets[index]
            measured = {
                "objective_before": float(result.objective_before[position]),
                "objective_after": float(result.objective_after[position]),
                "seed_distance": float(result.seed_distance[position]),
                "top5_before": None if before is None else before[position],
                "top5_after": None if after is None else after[position],
            }
            image, transparency = result.images[position], result.transparency[position]
            results.add_target(target, image, transparency, loaded.values_range, measured)
            self.say(
                f"saved {target.slug}  objective {result.objective_before[position]:.4g} -> "
                f"{result.objective_after[position]:.4g}, RMS change "
                f"{100 * result.seed_distance[position]:.1f} %"
            )

"""What each deviation of ``maco_tf.maco`` from Xplique's ``maco`` does to quality, on a judge.

Starts from the drop-in (``maco_tf.maco`` with Xplique's arguments, as ``bench_quality``'s
``dropin`` row) and switches one documented deviation back to Xplique's behaviour at a time,
then all of them together; Xplique's own ``maco`` on the same classes and steps is the
reference. Every variant is scored as in ``bench_quality.py`` (EfficientNet-Lite1 judge,
self-recognition on Lite0, plausibility against natural photos).

Variants (``--variants``):

* ``dropin``: ``maco_tf.maco`` as it is;
* ``phase_pi``: the phase standardised to a spread of pi (the command line's default, and the
  drop-in's until it was measured here) instead of Xplique's 1 (``phase_spread=pi``);
* ``xplique_magnitude``: Xplique's magnitude (its ImageNet spectrum resized as an image by
  ``init_maco_buffer``) instead of the interpolation on the frequency grid;
* ``noise_units``: ``noise_intensity`` in input units as Xplique (0.08 of the range (0, 255)
  instead of 0.08 of a width-2 range, scaled);
* ``fresh_noise``: noise drawn afresh at every step (``pooled_noise=False``);
* ``unbatched``: one image per compiled loop (``batch_size=1``), one model batch per step
  (``lanes=1``);
* ``all_xplique``: all of the above at once but ``phase_pi`` (so all of Xplique's choices);
* ``xplique_maco``: Xplique's ``maco`` itself;
* ``pixel``: ``maco_tf.pixel`` with the same arguments: plain pixel ascent on the same loop and
  budget, grey noise to a person, the negative control (a judge column that gives it the class
  measures the transfer of adversarial patterns, not recognition).

The labelled ImageNet photos (the 20 of the foolbox wheel) are scored as a last row: the
ceiling of every column. Scores include the robust judge (the judge after low-pass round trips
to 64 and 112 px, a 10-degree rotation and JPEG at quality 50: ``maco_tf.outputs.recognition``).
Every scored variant is saved in ``--out``/progress as soon as it is done: the same command run
again after an interruption takes back what was done with the same settings (``--fresh``
recomputes everything).

Not toggled, because they do not differ for class-logit objectives: per-crop scoring (a class
logit is a per-crop mean in both; only ``direction`` / layer losses were coupled in Xplique),
crop centres and sizes (the same distribution: centres N(0.5, 0.15), sides N(box, 0.05) clipped
to [0.05, 1], out-of-image samples 0), the colour basis of a user dataset's magnitude (no
``maco_dataset`` here).

    python benchmarks/bench_dropin.py                       # 30 classes, 128 steps, 16 crops, 512²
    python benchmarks/bench_dropin.py --quick               # 2 classes, 8 steps, 8 crops, 256²
    python benchmarks/bench_dropin.py --skip 30 --classes 10   # tuning classes only
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# this checkout's maco_tf and the benchmarks' shared `quality` package come first
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]

from quality import report  # noqa: E402
from quality.classes import draw_classes  # noqa: E402
from quality.methods import (  # noqa: E402
    Setup,
    cli_defaults,
    run_dropin,
    run_dropin_pixel,
    run_xplique_maco,
)
from quality.options import choice_list, fill_defaults  # noqa: E402
from quality.progress import Progress  # noqa: E402

VARIANTS = (
    "dropin",
    "phase_pi",
    "xplique_magnitude",
    "noise_units",
    "fresh_noise",
    "unbatched",
    "all_xplique",
    "xplique_maco",
    "pixel",
)
LABELS = {
    "dropin": "`maco_tf.maco` (drop-in, as it is)",
    "phase_pi": "phase spread pi instead of 1",
    "xplique_magnitude": "Xplique's magnitude resize",
    "noise_units": "noise in input units (as Xplique)",
    "fresh_noise": "fresh noise every step",
    "unbatched": "one image per loop, one lane",
    "all_xplique": "all of the above but phase pi",
    "xplique_maco": "Xplique 2.0.2 `maco` (reference)",
    "pixel": "`maco_tf.pixel`, same arguments (negative control)",
}
FULL = {"classes": 30, "steps": 128, "crops": 16, "size": 512}
QUICK = {"classes": 2, "steps": 8, "crops": 8, "size": 256}


def xplique_magnitude(height: int, width: int):
    """Xplique's ImageNet magnitude for an image of this size, as its ``maco`` builds it."""
    from xplique.features_visualizations.preconditioning import init_maco_buffer

    magnitude, _ = init_maco_buffer((height, width))
    return magnitude.numpy()


def overrides(variant: str, setup: Setup) -> dict:
    """``maco_tf.visualize`` arguments that switch ``variant``'s deviation to Xplique's."""
    from maco_tf.core.dropin import XPLIQUE_PHASE_SPREAD
    from maco_tf.core.parameterization import PHASE_SPREAD, MacoParameterization

    size = setup.xplique_size
    low, high = setup.loaded.values_range
    parts = {
        "phase_pi": {"phase_spread": PHASE_SPREAD},
        "xplique_magnitude": {"magnitude": xplique_magnitude(size, size)},
        "noise_units": {"noise": 0.08 * 2.0 / (high - low)},
        "fresh_noise": {"pooled_noise": False},
        "unbatched": {"batch_size": 1, "lanes": 1},
    }
    chosen = {}
    towards_xplique = [name for name in parts if name != "phase_pi"]
    for name in towards_xplique if variant == "all_xplique" else [variant]:
        chosen.update(parts.get(name, {}))
    magnitude = chosen.pop("magnitude", None)
    if magnitude is not None:
        spread = chosen.pop("phase_spread", XPLIQUE_PHASE_SPREAD)
        chosen["method"] = MacoParameterization(
            magnitude, (size, size, 3), setup.loaded.values_range, phase_spread=spread
        )
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=None, help="classes drawn (default 30)")
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        help="pass over the first N classes of the draw (tuning: --skip 30, never the reported)",
    )
    parser.add_argument("--class-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default 128")
    parser.add_argument("--crops", type=int, default=None, help="crops (default 16)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 512)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--quick", action="store_true", help="2 classes, 8 steps, 8 crops, 256²")
    parser.add_argument("--out", default="benchmarks/results/dropin")
    parser.add_argument(
        "--fresh", action="store_true", help="recompute what an earlier run saved in --out"
    )
    args = parser.parse_args(argv)
    fill_defaults(args, QUICK if args.quick else FULL)
    args.variants = choice_list(parser, args.variants, VARIANTS, "--variants")
    return args


def run_variant(variant: str, setup: Setup, classes: list[int], steps: int, judges) -> tuple:
    """One variant's images of ``classes`` and their scored row."""
    from quality.scoring import score

    if variant == "xplique_maco":
        run = run_xplique_maco(setup, classes, steps)
    elif variant == "pixel":
        run = run_dropin_pixel(setup, classes, steps)
    else:
        run = run_dropin(setup, classes, steps, **overrides(variant, setup))
    row = {
        "variant": variant,
        "label": LABELS[variant],
        "steps": steps,
        "seconds_per_image": run.seconds_per_image,
        **score(run.images, classes, judges, setup.loaded.values_range),
    }
    print(
        f"  {variant}: {run.seconds_per_image:.1f} s/image, judge top-1 {row['judge_top1']:.2f}, "
        f"robust top-1 {row['robust_top1']:.2f}, p {row['judge_p']:.3f}, self top-1 "
        f"{row['self_top1']:.2f}",
        flush=True,
    )
    return row, run.images


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from quality.scoring import score_photos, start_session

    started = time.perf_counter()
    command, loaded, judges = start_session("benchmarks/bench_dropin.py", sys.argv[1:])
    classes = draw_classes(args.classes, args.class_seed, skip=args.skip)
    setup = Setup(loaded, args.crops, args.size, cli_defaults(), args.seed)
    names = loaded.class_names
    print(f"classes: {', '.join(f'{c} {names[c]}' for c in classes)}", flush=True)

    progress = Progress(args.out, fresh=args.fresh)
    fingerprint = {
        "classes": classes,
        "seed": args.seed,
        "steps": args.steps,
        "crops": args.crops,
        "size": args.size,
    }
    rows, images = [], {}
    for variant in args.variants:
        saved = progress.load(variant, fingerprint)
        if saved:
            row, generated = saved
        else:
            row, generated = run_variant(variant, setup, classes, args.steps, judges)
            progress.save(variant, fingerprint, row, generated)
        rows.append(row)
        images[LABELS[variant]] = generated
    photos = {"label": "labelled ImageNet photos (ceiling)", **score_photos(judges)}

    table = report.markdown_table([*rows, photos])
    report.write_run(
        args.out,
        command,
        table,
        classes,
        names,
        {
            "settings": {"steps": args.steps, "crops": args.crops, "size": args.size},
            "rows": rows,
            "photos": photos,
            "wall_time_s": time.perf_counter() - started,
        },
    )
    report.image_sheet(
        os.path.join(args.out, "images.png"), images, classes, names, loaded.values_range
    )
    print(f"\n{table}\nwritten to {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

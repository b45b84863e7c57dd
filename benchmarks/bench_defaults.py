"""Sweep of the command line's settings for judge top-1 per second of wall time.

Each candidate is a set of :class:`maco_tf.RunConfig` fields (``--candidates``; the table
``CANDIDATES`` below) run as ``maco-tf visualize`` runs them: all classes in one call of
:func:`maco_tf.visualize`, batched, on EfficientNet-Lite0, judged by EfficientNet-Lite1 (not
optimised). The wall time per image is measured after a one-step warm-up call of the same
candidate, which pays the loop's tracing (printed apart: a run of many classes pays it once).

The reference is Xplique 2.0.2's own ``maco`` at 128 steps and 16 crops of 512², one class per
call as its users run it (tracing included: it traces again for every objective), timed on
``--reference-classes`` classes in the same process; the goal of the sweep is judge top-1 at
a quarter of that time per image.

Classes: by default the 10 classes after the first 30 of the seeded draw (``--skip 30``), so a
report that draws 30 classes with the same seed never shows a class the sweep tuned on.

Negative control and ceiling, in every table: pixel ascent with the settings of one candidate
(``--control``, default ``default``: the same loop, steps, crops and size, so the same budget),
grey noise to a person; and the 20 labelled ImageNet photos of the foolbox wheel. Scores
include the robust judge (the judge after low-pass round trips to 64 and 112 px, a 10-degree
rotation and JPEG at quality 50: ``maco_tf.outputs.recognition``): a column where the control
scores as high as the candidates measures the transfer of adversarial patterns, not
recognition.

Outputs in ``--out``: ``table.md``, ``results.json`` (every per-image number), ``sweep.png``
(judge top-1 and mean probability against seconds per image) and ``images.png``. Every scored
candidate (and the reference timing) is saved in ``--out``/progress as soon as it is done: the
same command run again after an interruption takes back what was done with the same settings
(``--fresh`` recomputes everything).

    python benchmarks/bench_defaults.py                          # 10 tuning classes, the sweep
    python benchmarks/bench_defaults.py --candidates default,preview --classes 4
    python benchmarks/bench_defaults.py --quick    # 2 classes, the preview and its control
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
from quality.methods import Setup, cli_defaults, run_xplique_maco  # noqa: E402
from quality.options import choice_list, fill_defaults  # noqa: E402
from quality.progress import Progress  # noqa: E402

#: The settings the sweep started from (the defaults before it): 16 crops, 4 of them whole.
#: Every candidate names its crops and whole views, so that a re-run measures the same
#: settings whatever maco_tf.RunConfig's defaults are now.
BEFORE = {"crops": 16, "whole_views": 4}

#: name -> (label, RunConfig fields; the others are maco_tf.RunConfig's defaults: 320², crops
#: 1.0 -> 0.3, noise 0.04, phase spread pi)
CANDIDATES: dict[str, tuple[str, dict]] = {
    "default": ("RunConfig defaults", {}),
    "steps128": ("128 steps (the defaults before)", {**BEFORE, "steps": 128}),
    "steps64": ("64 steps", {**BEFORE, "steps": 64}),
    "steps48": ("48 steps", {**BEFORE, "steps": 48}),
    "steps32": ("32 steps", {**BEFORE, "steps": 32}),
    "steps48_crops12": (
        "48 steps, 12 crops (3 whole)",
        {"steps": 48, "crops": 12, "whole_views": 3},
    ),
    "steps64_crops8": ("64 steps, 8 crops (2 whole)", {"steps": 64, "crops": 8, "whole_views": 2}),
    "steps48_crops12_224": (
        "48 steps, 12 crops (3 whole), 224²",
        {"steps": 48, "crops": 12, "whole_views": 3, "size": 224},
    ),
    "steps48_phase1": (
        "48 steps, phase spread 1 (Xplique's)",
        {**BEFORE, "steps": 48, "phase_spread": 1.0},
    ),
    "steps48_noise08": ("48 steps, noise 0.08", {**BEFORE, "steps": 48, "noise": 0.08}),
    "steps32_box05": (
        "32 steps, crops 1.0 → 0.5",
        {**BEFORE, "steps": 32, "box_size": (1.0, 0.5)},
    ),
    "preview": (
        "24 steps, 8 crops (2 whole), 224²",
        {"steps": 24, "crops": 8, "whole_views": 2, "size": 224},
    ),
}

#: The candidates of the sweep reported in docs/quality.md (the default run).
SWEPT = (
    "steps64",
    "steps48",
    "steps32",
    "steps48_crops12",
    "steps64_crops8",
    "steps48_crops12_224",
    "steps48_phase1",
    "steps48_noise08",
    "steps32_box05",
    "preview",
)


FULL = {
    "classes": 10,
    "candidates": ",".join(SWEPT),
    "control": "default",
    "reference_classes": 2,
}
QUICK = {"classes": 2, "candidates": "preview", "control": "preview", "reference_classes": 0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=None, help="classes drawn (default 10)")
    parser.add_argument("--class-seed", type=int, default=0, help="seed of the class draw")
    parser.add_argument(
        "--skip", type=int, default=30, help="classes of the draw passed over (default 30)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the optimisations")
    parser.add_argument(
        "--candidates",
        default=None,
        help=f"comma-separated, some of {','.join(CANDIDATES)} (default: the reported sweep)",
    )
    parser.add_argument(
        "--control",
        default=None,
        help="candidate whose settings the pixel-ascent control row runs with (default: default)",
    )
    parser.add_argument(
        "--reference-classes",
        type=int,
        default=None,
        help="classes the Xplique reference is timed on (default 2; 0: no reference)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 classes, the preview and its control, no reference"
    )
    parser.add_argument("--out", default="benchmarks/results/defaults", help="output folder")
    parser.add_argument(
        "--fresh", action="store_true", help="recompute what an earlier run saved in --out"
    )
    args = parser.parse_args(argv)
    fill_defaults(args, QUICK if args.quick else FULL)
    args.candidates = choice_list(parser, args.candidates, CANDIDATES, "--candidates")
    if args.control not in CANDIDATES:
        parser.error(f"--control: unknown {args.control}; choose from {', '.join(CANDIDATES)}")
    return args


def control_candidate(name: str) -> tuple[str, dict]:
    """Pixel ascent with candidate ``name``'s settings: the negative control row."""
    label, fields = CANDIDATES[name]
    return f"pixel ascent, {label} (negative control)", {**fields, "method": "pixel"}


def run_candidate(loaded, classes: list[int], fields: dict, seed: int) -> tuple[object, dict]:
    """Warm-up then timed :func:`maco_tf.visualize` of ``classes``; images and timings."""
    import maco_tf
    from maco_tf.targets.units import class_logits

    objective = class_logits(
        loaded.model, classes, loaded.logits_layer, class_names=loaded.class_names
    )
    config = maco_tf.RunConfig(values_range=loaded.values_range, seed=seed, **fields)
    started = time.perf_counter()
    maco_tf.visualize(objective, config, image_ids=classes, steps=1)
    warm_up = time.perf_counter() - started
    started = time.perf_counter()
    visualization = maco_tf.visualize(objective, config, image_ids=classes)
    seconds = time.perf_counter() - started
    timing = {
        "seconds": seconds,
        "seconds_per_image": seconds / len(classes),
        "warm_up_s": warm_up,
        "settings": visualization.settings,
    }
    return visualization.images, timing


def reference_time(loaded, classes: list[int], seed: int, progress: Progress) -> float:
    """Xplique's ``maco`` seconds per image at 128 steps, 16 crops, 512² (saved once done)."""
    fingerprint = {"classes": classes, "seed": seed}
    saved = progress.load("reference", fingerprint)
    if saved:
        return saved[0]["seconds_per_image"]
    setup = Setup(loaded, 16, 512, cli_defaults(), seed)
    seconds = run_xplique_maco(setup, classes, 128).seconds_per_image
    progress.save("reference", fingerprint, {"seconds_per_image": seconds})
    return seconds


def scored_candidate(name, label, fields, loaded, classes, judges, seed, progress) -> tuple:
    """One candidate's row and images, run and scored, or taken back from ``progress``."""
    from quality.scoring import score

    fingerprint = {"classes": classes, "seed": seed, "fields": fields}
    saved = progress.load(name, fingerprint)
    if saved:
        return saved
    generated, timing = run_candidate(loaded, classes, fields, seed)
    row = {
        "candidate": name,
        "label": label,
        "fields": {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()},
        "steps": timing["settings"]["steps"],
        **timing,
        **score(generated, classes, judges, loaded.values_range),
    }
    progress.save(name, fingerprint, row, generated)
    print(
        f"  {name}: {row['seconds_per_image']:.1f} s/image (+{row['warm_up_s']:.1f} s "
        f"warm-up), judge top-1 {row['judge_top1']:.2f}, top-5 {row['judge_top5']:.2f}, "
        f"robust top-1 {row['robust_top1']:.2f}, p {row['judge_p']:.3f}",
        flush=True,
    )
    return row, generated


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from quality.scoring import score_photos, start_session

    started = time.perf_counter()
    command, loaded, judges = start_session("benchmarks/bench_defaults.py", sys.argv[1:])
    classes = draw_classes(args.classes, args.class_seed, skip=args.skip)
    names = loaded.class_names
    print(f"classes: {', '.join(f'{c} {names[c]}' for c in classes)}", flush=True)
    progress = Progress(args.out, fresh=args.fresh)

    reference = None
    if args.reference_classes:
        reference = reference_time(loaded, classes[: args.reference_classes], args.seed, progress)
        print(f"  Xplique maco, 128 steps, 16 crops, 512²: {reference:.1f} s/image", flush=True)

    runs = [(name, *CANDIDATES[name]) for name in args.candidates]
    runs.append((f"pixel_{args.control}", *control_candidate(args.control)))
    rows, images = [], {}
    for name, label, fields in runs:
        row, generated = scored_candidate(
            name, label, fields, loaded, classes, judges, args.seed, progress
        )
        if reference:
            row["fraction_of_reference"] = row["seconds_per_image"] / reference
        rows.append(row)
        images[label] = generated
    photos = {"label": "labelled ImageNet photos (ceiling)", **score_photos(judges)}

    table = report.markdown_table([*rows, photos])
    if reference:
        table += f"\n\nXplique 2.0.2 `maco`, 128 steps, 16 crops, 512²: {reference:.1f} s / image"
    report.write_run(
        args.out,
        command,
        table,
        classes,
        names,
        {
            "reference_s_per_image": reference,
            "control": args.control,
            "rows": rows,
            "photos": photos,
            "wall_time_s": time.perf_counter() - started,
        },
    )
    report.image_sheet(
        os.path.join(args.out, "images.png"), images, classes, names, loaded.values_range
    )
    report.plot_sweep(
        os.path.join(args.out, "sweep.png"),
        rows,
        reference,
        f"EfficientNet-Lite0 optimised, EfficientNet-Lite1 judge, {len(classes)} classes",
    )
    print(f"\n{table}\nwritten to {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

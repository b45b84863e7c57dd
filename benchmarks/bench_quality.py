"""Methods side by side on EfficientNet-Lite0, judged by EfficientNet-Lite1, at equal wall time.

Methods (``--methods``; see ``benchmarks/quality/methods.py``):

* ``xplique_maco``: Xplique 2.0.2's own ``maco``, one class per call, its arguments but
  ``nb_steps`` and ``nb_crops`` (``--xplique-crops``; ``custom_shape`` ``--xplique-size``);
* ``xplique_fourier``: Xplique 2.0.2's own ``optimize`` (Fourier, its defaults), all classes in
  one call;
* ``horama_maco``: Horama 0.3.0's own ``maco`` on the PyTorch EfficientNet-Lite0 built from
  the same checkpoint, one class per call, its defaults but the steps, ``image_size``
  (``--xplique-size``), ``crops_per_iteration`` (``--xplique-crops``), the model's input size
  and range; only with ``--torch-python PATH``, an interpreter with torch and horama (a
  separate venv; skipped with a note otherwise; never in CI);
* ``dropin``: ``maco_tf.maco`` with the same arguments as ``xplique_maco``;
* ``cli``: ``maco_tf.visualize`` with the command line's defaults (``maco_tf.RunConfig``'s
  when it exists); ``cli_fourier`` and ``cli_pixel``: the same settings, other
  parameterisations, on maco_tf's loop. ``cli_pixel`` is the negative control: plain pixel
  ascent, grey noise to a person, with the same loop and budget; a judge column that gives it
  the class measures transfer of adversarial patterns, not recognition.

The labelled ImageNet photos (the 20 of the foolbox wheel) are scored as a last row: the
ceiling of every judge column.

Classes: ``--classes`` drawn with ``--class-seed`` among the ImageNet classes the project never
tuned on or named (``benchmarks/quality/classes.py``), or ``--class-list``.

Equal wall time (default): every method's cost per image (a per-call overhead plus seconds per
step, from two probe runs in this process, side by side) is measured first; the budget is the
predicted time per image of Xplique's ``maco`` at ``--reference-steps`` (or ``--budget-s``),
and each method runs the number of steps that fits it. ``--steps N`` gives every method N
steps instead. ``--curve`` adds fixed-step runs (quality versus measured time per image); with
``--steps``, the main run is the curve's first point.

Scores (``benchmarks/quality/scoring.py``): judge (EfficientNet-Lite1, not optimised) top-1,
top-5 and mean probability of the target on the whole image; the robust judge (the same judge
after low-pass round trips to 64 and 112 px, a 10-degree rotation and JPEG at quality 50, and
their mean: ``maco_tf.outputs.recognition``); self-recognition on Lite0; plausibility (cosine
similarity of the judge's features to natural photos) and a small-sample FID against them.

Outputs in ``--out``: ``table.md``, ``results.json`` (every per-image number), ``curve.png``
and ``images.png`` (thumbnails of every method's images of the equal-time run; and
``images_lowpass64.png``, the same after the 64-px round trip: what the robust judge sees).
Every cost
probe and scored run is saved in ``--out``/progress as soon as it is done: the same command
run again after an interruption takes back what was done with the same settings and goes on
(``--fresh`` recomputes everything).

    python benchmarks/bench_quality.py                  # 30 classes, equal time, curve
    python benchmarks/bench_quality.py --quick          # 2 classes, few steps: checks it all
    python benchmarks/bench_quality.py --steps 128 --no-curve --methods xplique_maco,dropin
    python benchmarks/bench_quality.py --torch-python /path/to/venv/bin/python   # + Horama
    python benchmarks/bench_quality.py --classes 5 --steps 16 --curve 32,64   # a curve only
    python benchmarks/bench_quality.py --skip 30 --classes 10 ...   # tuning classes only
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
from quality.methods import METHODS, Cost, Setup, cli_defaults, measure_cost  # noqa: E402
from quality.options import choice_list, fill_defaults  # noqa: E402
from quality.progress import Progress  # noqa: E402

FULL = {
    "classes": 30,
    "curve": "32,64,128,256",
    "reference_steps": 128,
    "probe": "8,24",
    "xplique_size": 512,
    "xplique_crops": 16,
}
QUICK = {
    "classes": 2,
    "curve": "4,8",
    "reference_steps": 8,
    "probe": "2,6",
    "xplique_size": 256,
    "xplique_crops": 8,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=None, help="classes drawn (default 30)")
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        help="pass over the first N classes of the draw (tuning: --skip 30, never the reported)",
    )
    parser.add_argument("--class-seed", type=int, default=0, help="seed of the class draw")
    parser.add_argument("--class-list", default=None, help="explicit classes (names or indices)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the optimisations")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated, some of {','.join(METHODS)} (default all)",
    )
    parser.add_argument("--steps", type=int, default=None, help="fixed steps for every method")
    parser.add_argument(
        "--reference-steps",
        type=int,
        default=None,
        help="budget = Xplique maco's time per image at this many steps (default 128)",
    )
    parser.add_argument("--budget-s", type=float, default=None, help="budget, s per image")
    parser.add_argument("--probe", default=None, help="steps of the two cost probes (8,24)")
    parser.add_argument("--curve", default=None, help="fixed steps of the quality-time curve")
    parser.add_argument("--curve-classes", type=int, default=None, help="classes of the curve")
    parser.add_argument("--no-curve", action="store_true", help="skip the curve")
    parser.add_argument("--xplique-size", type=int, default=None, help="custom_shape side (512)")
    parser.add_argument("--xplique-crops", type=int, default=None, help="nb_crops (16)")
    parser.add_argument(
        "--torch-python",
        default=None,
        help="interpreter with torch and horama==0.3.0 for horama_maco (optional; never in CI)",
    )
    parser.add_argument("--quick", action="store_true", help="2 classes, few steps, small images")
    parser.add_argument("--out", default="benchmarks/results/quality", help="output folder")
    parser.add_argument(
        "--fresh", action="store_true", help="recompute what an earlier run saved in --out"
    )
    args = parser.parse_args(argv)
    fill_defaults(args, QUICK if args.quick else FULL)
    args.methods = choice_list(parser, args.methods, METHODS, "--methods")
    args.probe = tuple(int(v) for v in args.probe.split(","))
    args.curve = [] if args.no_curve else [int(v) for v in args.curve.split(",")]
    return args


def choose_classes(args: argparse.Namespace) -> list[int]:
    if args.class_list:
        from maco_tf.models.zoo import resolve_classes

        return resolve_classes(args.class_list)
    return draw_classes(args.classes, args.class_seed, skip=args.skip)


def _fingerprint(setup, classes, **more) -> dict:
    """What a saved piece of a run depends on (see ``quality/progress.py``)."""
    return {
        "classes": list(classes),
        "seed": setup.seed,
        "xplique_crops": setup.xplique_crops,
        "xplique_size": setup.xplique_size,
        "cli": setup.cli,
        **more,
    }


def measure_all(methods, setup, classes, probe, progress) -> dict:
    costs = {}
    for method in methods:
        fingerprint = _fingerprint(setup, classes, probe=list(probe))
        saved = progress.load(f"cost_{method.name}", fingerprint)
        if saved:
            row = saved[0]
            costs[method.name] = Cost(
                row["overhead_s"], row["step_s"], row["batch"], tuple(map(tuple, row["probes"]))
            )
        else:
            costs[method.name] = measure_cost(method, setup, classes, *probe)
            progress.save(f"cost_{method.name}", fingerprint, vars(costs[method.name]))
        cost = costs[method.name]
        print(
            f"  cost {method.name}: {cost.step_s:.3f} s/step/image + {cost.overhead_s:.1f} s "
            f"overhead (batch {cost.batch}; probes {cost.probes})",
            flush=True,
        )
    return costs


def run_and_score(method, setup, classes, steps, judges, progress) -> tuple[dict, object]:
    """One method's images of ``classes`` at ``steps`` and their scores (saved at once)."""
    from quality.scoring import score

    key = f"{method.name}_{steps}steps_{len(classes)}classes"
    fingerprint = _fingerprint(setup, classes, method=method.name, steps=steps)
    saved = progress.load(key, fingerprint)
    if saved:
        return saved
    run = method.run(setup, classes, steps)
    row = {
        "method": method.name,
        "label": method.label,
        "steps": steps,
        "seconds": run.seconds,
        "seconds_per_image": run.seconds_per_image,
        "settings": run.settings,
        **score(run.images, classes, judges, setup.loaded.values_range),
    }
    progress.save(key, fingerprint, row, run.images)
    print(
        f"  {method.name}: {steps} steps, {run.seconds_per_image:.1f} s/image, judge top-1 "
        f"{row['judge_top1']:.2f}, robust top-1 {row['robust_top1']:.2f}, p {row['judge_p']:.3f}",
        flush=True,
    )
    return row, run.images


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from quality.scoring import score_photos, start_session

    started = time.perf_counter()
    command, loaded, judges = start_session("benchmarks/bench_quality.py", sys.argv[1:])
    classes = choose_classes(args)
    names = loaded.class_names
    setup = Setup(
        loaded, args.xplique_crops, args.xplique_size, cli_defaults(), args.seed, args.torch_python
    )
    print(f"classes: {', '.join(f'{c} {names[c]}' for c in classes)}")
    print(f"cli defaults ({setup.cli['source']}): {setup.cli}")

    methods, skipped = [], {}
    for name in args.methods:
        why = METHODS[name].available(setup)
        if why:
            skipped[name] = why
            print(f"  skipped {name}: {why}")
        else:
            methods.append(METHODS[name])

    progress = Progress(args.out, fresh=args.fresh)
    costs = measure_all(methods, setup, classes, args.probe, progress)
    if args.steps is not None:
        budget, plan = None, {m.name: args.steps for m in methods}
    else:
        reference = costs.get("xplique_maco")
        if args.budget_s is None and reference is None:
            raise SystemExit("equal time needs xplique_maco in --methods, or --budget-s")
        budget = args.budget_s or reference.seconds(args.reference_steps)
        plan = {m.name: costs[m.name].steps_within(budget) for m in methods}
        if args.budget_s is None:
            plan["xplique_maco"] = args.reference_steps
        print(f"budget {budget:.1f} s/image -> steps {plan}", flush=True)

    rows, images = [], {}
    for method in methods:
        row, generated = run_and_score(method, setup, classes, plan[method.name], judges, progress)
        row["step_s"] = costs[method.name].step_s
        rows.append(row)
        images[method.label] = generated
    photos = {"label": "labelled ImageNet photos (reference)", **score_photos(judges)}

    curve_classes = classes[: args.curve_classes] if args.curve_classes else classes
    curves: dict[str, list[dict]] = {}
    main_on_curve = budget is None and curve_classes == classes
    for method, row in zip(methods, rows, strict=True):
        # a fixed-step main run on the curve's classes is the curve's first point
        curves[method.label] = [row] if main_on_curve and args.curve else []
        for steps in args.curve:
            row, _ = run_and_score(method, setup, curve_classes, steps, judges, progress)
            curves[method.label].append(row)

    title = "equal wall time" if budget else f"{args.steps} steps each"
    table = report.markdown_table([*rows, photos])
    report.write_run(
        args.out,
        command,
        table,
        classes,
        names,
        {
            "budget_s_per_image": budget,
            "steps": plan,
            "costs": {k: vars(v) for k, v in costs.items()},
            "skipped": skipped,
            "setup": {
                "xplique_crops": setup.xplique_crops,
                "xplique_size": setup.xplique_size,
                "cli": setup.cli,
                "seed": setup.seed,
            },
            "rows": rows,
            "photos": photos,
            "curve_classes": curve_classes,
            "curves": curves,
            "wall_time_s": time.perf_counter() - started,
        },
    )
    report.image_sheet(
        os.path.join(args.out, "images.png"), images, classes, names, loaded.values_range
    )
    report.degraded_sheet(
        os.path.join(args.out, "images_lowpass64.png"),
        images,
        classes,
        names,
        loaded.values_range,
        "lowpass64",
    )
    if curves and args.curve:
        curve_steps = ([args.steps] if main_on_curve else []) + args.curve
        report.plot_curves(
            os.path.join(args.out, "curve.png"),
            curves,
            f"EfficientNet-Lite0 optimised, EfficientNet-Lite1 judge, {len(curve_classes)} "
            f"classes, steps {','.join(map(str, curve_steps))}",
        )
    print(f"\n{title}" + (f", budget {budget:.1f} s/image" if budget else "") + f"\n{table}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print(f"written to {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

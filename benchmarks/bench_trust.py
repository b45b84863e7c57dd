"""Trust check of MACO, Fourier and pixel visualizations on the offline EfficientNet-Lite0.

For each ImageNet class, one image per method is optimised on the class logit with the same
steps, crops, image size and seed (one batched drop-in call per method). Each image is then
scored by :func:`maco_tf.outputs.trust.trust_check` (Geirhos et al.'s path similarity)
against a pool of natural images: the bundled photographs of ``bench_quality`` (scikit-image,
scikit-learn, matplotlib), six views each, plus the other scikit-image photographs and
textures. Per class, the ``k`` views that excite its logit most are the references, every
other view the baseline; the layers are the default 16, spread over the network's depth.

Prints a markdown table (score per class and method, and the mean), and writes two figures:
the visualizations with their scores, and the mean per-layer profile of each method.

    python benchmarks/bench_trust.py                      # 4 classes, 64 steps, 16 crops
    python benchmarks/bench_trust.py --steps 8 --crops 4  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

METHODS = ("maco", "fourier", "pixel")
#: Classes with a bundled photo: espresso, Egyptian Mau, missile, military uniform.
DEFAULT_CLASSES = "967,285,657,652"
#: scikit-image photographs and textures added to the pool (no class of their own).
EXTRA_PHOTOS = (
    "astronaut",
    "camera",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "brick",
    "grass",
    "gravel",
    "coins",
    "clock",
    "moon",
)
FIGURES = Path(__file__).resolve().parent.parent / "docs" / "images"


def photo_pool(size: int = 224) -> tuple[np.ndarray, list[str]]:
    """Views of every bundled photograph, ``(N, size, size, 3)`` in [0, 255], and their names."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_quality import PHOTO_CLASSES, _load_photo, photo_views

    names = list(PHOTO_CLASSES.values()) + [f"skimage {name}" for name in EXTRA_PHOTOS]
    views, labels = [], []
    for name in names:
        try:
            image = _load_photo(name)
        except (ImportError, OSError) as exc:  # sklearn / matplotlib are optional here
            print(f"skipping {name}: {exc}")
            continue
        if image.ndim == 2 or image.shape[-1] == 1:
            image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
        views.append(photo_views(image, size))
        labels += [f"{name} #{index}" for index in range(len(views[-1]))]
    return np.concatenate(views), labels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--classes", default=DEFAULT_CLASSES, help="ImageNet names or indices")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="side of the optimised images")
    parser.add_argument("--k", type=int, default=8, help="references per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--json", help="write the reports to this JSON file")
    return parser.parse_args(argv)


def visualize_all(loaded: object, classes: list[int], args: argparse.Namespace) -> dict:
    """``{method: (C, H, W, 3) images in [0, 255]}`` and the objective."""
    import maco_tf
    from maco_tf.targets import class_logits

    objective = class_logits(loaded.model, classes, loaded.logits_layer)
    images = {}
    for method in METHODS:
        start = time.perf_counter()
        image, _ = getattr(maco_tf, method)(
            objective,
            nb_steps=args.steps,
            nb_crops=args.crops,
            values_range=loaded.values_range,
            custom_shape=(args.size, args.size),
            seed=args.seed,
        )
        images[method] = image.reshape(len(classes), *image.shape[-3:])
        print(f"{method}: {time.perf_counter() - start:.0f} s")
    return {"objective": objective, "images": images}


def without_first_layer(report: object) -> object:
    """The report on its layers after the first (the stem convolution of EfficientNet)."""
    from maco_tf.outputs.trust import TrustReport

    return TrustReport(
        report.names,
        report.layers[1:],
        report.visualization[:, 1:],
        report.natural[:, 1:],
        report.baseline[:, 1:],
    )


def print_table(classes: list[int], names: list[str], reports: dict) -> None:
    print("\n| class | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for row, (index, name) in enumerate(zip(classes, names, strict=True)):
        cells = [f"{reports[method].scores[row]:.2f}" for method in METHODS]
        print(f"| {name} ({index}) | " + " | ".join(cells) + " |")
    means = [f"**{np.mean(reports[method].scores):.2f}**" for method in METHODS]
    print("| mean | " + " | ".join(means) + " |")
    below = [f"{reports[method].below_baseline.mean():.0%}" for method in METHODS]
    print("| layers below baseline | " + " | ".join(below) + " |")


def save_figures(names: list[str], images: dict, reports: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    rows, columns = len(names), len(METHODS)
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.5 * rows), squeeze=False)
    for row in range(rows):
        for column, method in enumerate(METHODS):
            axis = axes[row, column]
            axis.imshow(np.clip(images[method][row], 0, 255).astype(np.uint8))
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{method}: {reports[method].scores[row]:.2f}", fontsize=9)
            if column == 0:
                axis.set_ylabel(names[row], fontsize=9)
    figure.suptitle("trust score (1: as natural as the top photos, 0: as unrelated photos)")
    figure.tight_layout()
    figure.savefig(FIGURES / "trust_methods.png", dpi=80)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(10, 3.8))
    first = reports[METHODS[0]]
    depth = np.arange(len(first.layers))
    axis.plot(depth, first.natural.mean(axis=0), "k-", label="top photos (to one another)")
    axis.plot(depth, first.baseline.mean(axis=0), "k--", label="other photos (baseline)")
    for method in METHODS:
        axis.plot(depth, reports[method].visualization.mean(axis=0), "o-", label=method)
    axis.set_xticks(depth)
    axis.set_xticklabels(first.layers, rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("Spearman correlation\nwith the top photos")
    axis.set_title("EfficientNet-Lite0, mean over classes", fontsize=10)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(FIGURES / "trust_profile.png", dpi=90)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import maco_tf
    from maco_tf.models.zoo.imagenet import get_imagenet_classes, resolve_classes
    from maco_tf.outputs.trust import trust_check

    loaded = maco_tf.load_model()
    classes = resolve_classes(args.classes)
    table = get_imagenet_classes()
    names = [table[index] for index in classes]
    photos, _ = photo_pool(loaded.input_size[0])
    print(f"{len(photos)} photo views; classes {names}")
    run = visualize_all(loaded, classes, args)
    start = time.perf_counter()
    reports = {
        method: trust_check(
            run["objective"],
            run["images"][method],
            photos,
            k=args.k,
            values_range=loaded.values_range,
            photos_range=(0, 255),
        )
        for method in METHODS
    }
    print(f"trust checks: {time.perf_counter() - start:.0f} s")
    print_table(classes, names, reports)
    print(f"\nWithout the first layer ({reports['maco'].layers[0]}):")
    print_table(classes, names, {m: without_first_layer(r) for m, r in reports.items()})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({method: report.to_dict() for method, report in reports.items()}, handle)
    print("\nMACO, per layer:\n" + reports["maco"].summary())
    if not args.no_figures:
        save_figures(names, run["images"], reports)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

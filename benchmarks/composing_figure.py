"""The figure of docs/composing.md: one class on EfficientNet-Lite0 with and without each term.

Every column is the same run (same seed, the project's defaults at a small budget) with one
regulariser subtracted from the objective or one transformation listed in ``transforms``::

    python benchmarks/composing_figure.py                 # 48 steps, 256² images
    python benchmarks/composing_figure.py --steps 24 --size 224
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

import maco_tf  # noqa: E402
from maco_tf import targets  # noqa: E402
from maco_tf.models.zoo import get_imagenet_classes, load_efficientnet_lite0  # noqa: E402
from maco_tf.outputs.render import to_uint8  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "composing.png"
RANGE = (0.0, 255.0)
#: (column title, regulariser term or None, transforms): weights for inputs in [0, 255].
VARIANTS = (
    ("objective alone", None, ()),
    ("- 0.5 total_variation()", ("total_variation", 0.5), ()),
    ("- 0.2 l1(127.5)", ("l1", 0.2), ()),
    ("- 0.05 blur_penalty(1)", ("blur_penalty", 0.05), ()),
    ("jitter:16", None, ("jitter:16",)),
    ("rotate:15", None, ("rotate:15",)),
    ("scale:0.2", None, ("scale:0.2",)),
    ("blur:1.5", None, ("blur:1.5",)),
)


def term(name: str) -> maco_tf.core.regularizers.Regularizer:
    """The regulariser ``name`` (``l1`` drawn to the middle of [0, 255])."""
    if name == "l1":
        return maco_tf.l1(127.5)
    if name == "blur_penalty":
        return maco_tf.blur_penalty(1.0)
    return getattr(maco_tf, name)()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--class-name", default="goldfish")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    model = load_efficientnet_lite0()
    classes = get_imagenet_classes()
    base = targets.class_logits(model, classes.index(args.class_name), class_names=classes)
    settings = dict(steps=args.steps, size=args.size, values_range=RANGE, seed=0)
    figure = Figure(figsize=(2.0 * len(VARIANTS), 2.35))
    for column, (title, penalty, transforms) in enumerate(VARIANTS):
        objective = base if penalty is None else base - penalty[1] * term(penalty[0])
        result = maco_tf.visualize(objective, transforms=transforms, **settings)
        axis = figure.add_subplot(1, len(VARIANTS), column + 1)
        axis.imshow(to_uint8(result.images[0], RANGE))
        axis.set_title(title, fontsize=8)
        axis.axis("off")
        print(f"{title:28s} objective {float(result.objective_values[0]):8.2f}", flush=True)
    figure.tight_layout(pad=0.3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

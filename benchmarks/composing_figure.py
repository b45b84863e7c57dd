"""The figure of docs/composing.md: one class on EfficientNet-Lite0 with and without each term.

Every column is the same run (same seed, the project's defaults at a small budget) with one
regulariser subtracted from the objective or one transformation listed in ``transforms``::

    python benchmarks/composing_figure.py                 # 24 steps, 224² images
    python benchmarks/composing_figure.py --steps 64 --size 320
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

import maco_tf  # noqa: E402
from maco_tf import targets  # noqa: E402
from maco_tf.models.zoo import get_imagenet_classes, load_efficientnet_lite0  # noqa: E402
from maco_tf.outputs.render import to_uint8  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "composing.png"
RANGE = (0.0, 255.0)
#: (column title, regulariser term or None, transforms). The weights are for inputs in
#: [0, 255] and Xplique's neuron loss (the logit / 1000, about 0.01 here): each penalty is
#: about a third of the objective at the start.
VARIANTS = (
    ("objective alone", None, ()),
    ("- 2e-4 total_variation()", ("total_variation", 2e-4), ()),
    ("- 1e-4 l1(127.5)", ("l1", 1e-4), ()),
    ("- 5e-5 blur_penalty(1)", ("blur_penalty", 5e-5), ()),
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
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--size", type=int, default=224)
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
        print(f"{title:28s} objective {float(result.objective_values[0]):9.5f}", flush=True)
    figure.tight_layout(pad=0.3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    image = Image.open(buffer).convert("RGB")
    image.quantize(256).save(args.out, optimize=True)  # the docs keep figures under 300 KB
    print(f"wrote {args.out} ({args.out.stat().st_size // 1000} KB)")


if __name__ == "__main__":
    main()

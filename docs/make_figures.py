"""Render the figures of the documentation site into ``docs/images/``.

Everything runs on the CPU with the offline EfficientNet-Lite0 and offline photos
(``skimage.data``, scikit-learn's sample images, matplotlib's Grace Hopper), with few
optimisation steps so that the whole set takes a few minutes::

    python docs/make_figures.py                 # all figures, 64 steps
    python docs/make_figures.py --steps 16 --only methods,objectives
    python docs/make_figures.py --readme-from q10   # quickstart.png and transparency.png, from
                                                    # the output of docs/quality.md's command

Each PNG is kept under 300 KB (re-saved with a 256-colour palette when needed).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

import maco_tf  # noqa: E402
from maco_tf import targets  # noqa: E402
from maco_tf.models.zoo import get_imagenet_classes, load_efficientnet_lite0  # noqa: E402
from maco_tf.outputs.combine import explain_class  # noqa: E402
from maco_tf.outputs.render import heatmap, to_rgba, to_uint8  # noqa: E402

OUT = Path(__file__).resolve().parent / "images"
MAX_BYTES = 300_000
#: Figures made by ``maco-tf visualize`` (README, index, quality), never overwritten here.
RESERVED = ("quickstart", "transparency")
RANGE = (0.0, 255.0)
CROPS = 8
SIZE = (256, 256)
#: Flat index of channel 0 at the centre (row 3, column 3) of top_conv's 7 x 7 x 1280 output.
CENTRE_UNIT = (3 * 7 + 3) * 1280


def photos() -> dict[str, np.ndarray]:
    """The offline photos, uint8 RGB."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "astronaut": data.astronaut(),
        "china": china,
        "flower": flower,
        "hopper": np.asarray(Image.open(hopper).convert("RGB")),
    }


def save_figure(figure: Figure, name: str, dpi: int = 100) -> Path:
    """Save a figure as PNG under ``MAX_BYTES`` (palette PNG when the RGB one is larger)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return save_png_small(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), name)


def save_png_small(picture: Image.Image, name: str) -> Path:
    """Write ``picture`` as ``OUT/name.png``, quantised to 256 colours if it is too large."""
    if name in RESERVED:
        raise ValueError(f"{name}.png is made by the command line (--readme-from)")
    path = OUT / f"{name}.png"
    OUT.mkdir(parents=True, exist_ok=True)
    picture.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True
        )
    size = path.stat().st_size
    print(f"  {path.name}: {picture.size[0]}x{picture.size[1]}, {size / 1000:.0f} KB")
    if size > MAX_BYTES:
        raise SystemExit(f"{path} is {size} bytes, over {MAX_BYTES}; lower the dpi")
    return path


def over_white(image: np.ndarray, transparency: np.ndarray) -> np.ndarray:
    """The image with its transparency as alpha, composited over white (as in the paper)."""
    rgba = to_rgba(image, transparency, RANGE).astype(np.float64)
    alpha = rgba[..., 3:] / 255.0
    return np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def panels(rows: int, cols: int, size: float = 2.2) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows x cols`` image panels without axes."""
    figure = Figure(figsize=(size * cols, size * rows * 1.12), layout="constrained")
    axes = np.asarray(figure.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return figure, axes


def box_sizes(steps: int) -> np.ndarray:
    """The command line's crop schedule: 100 % of the side down to 30 %."""
    return np.linspace(1.0, 0.3, steps, dtype=np.float32)


# ----------------------------------------------------------------------------- figures


def fig_phase_magnitude(context: dict) -> None:
    """Why MACO keeps the magnitude and optimises the phase: the phase carries the structure."""
    shots = context["photos"]
    size = 256

    def square(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        crop = Image.fromarray(image[top : top + side, left : left + side])
        return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS), np.float64)

    stack = np.stack([square(image) for image in shots.values()])
    spectra = np.fft.fft2(stack, axes=(1, 2))
    mean_magnitude = np.abs(spectra).mean(axis=0)
    coffee = list(shots).index("coffee")
    rng = np.random.default_rng(0)
    # one random phase shared by the colour channels (the channels of photos are correlated)
    random_phase = np.angle(np.fft.fft2(rng.normal(size=(size, size, 1)), axes=(0, 1)))

    def synth(magnitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
        image = np.real(np.fft.ifft2(magnitude * np.exp(1j * phase), axes=(0, 1)))
        low, high = np.percentile(image, [0.5, 99.5])
        return np.clip((image - low) / (high - low), 0, 1)

    phase = np.angle(spectra[coffee])
    figure, axes = panels(1, 4)
    shown = [
        (stack[coffee] / 255.0, "photo"),
        (synth(np.abs(spectra[coffee]), random_phase), "its magnitude,\nrandom phase"),
        (synth(mean_magnitude, phase), "average magnitude of\n7 photos, its phase"),
        (synth(mean_magnitude, random_phase), "average magnitude,\nrandom phase"),
    ]
    for ax, (image, title) in zip(axes[0], shown, strict=True):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
    save_figure(figure, "phase_magnitude")


def _method_runs(context: dict) -> dict[str, maco_tf.Visualization]:
    """MACO, Fourier and pixel visualizations of espresso and goldfish (cached in context)."""
    if "methods" not in context:
        model, steps = context["model"], context["steps"]
        objective = targets.class_logits(model, [967, 1], class_names=context["classes"])
        runs = {}
        for method in ("maco", "fourier", "pixel"):
            start = time.perf_counter()
            runs[method] = maco_tf.visualize(
                objective,
                method=method,
                steps=steps,
                crops=CROPS,
                box_size=box_sizes(steps),
                whole_views=0,
                noise=0.08,
                values_range=RANGE,
                size=SIZE,
                seed=0,
                batch_size=2,
            )
            print(f"  {method}: {time.perf_counter() - start:.0f} s")
        context["methods"] = runs
    return context["methods"]


def fig_methods(context: dict) -> None:
    """MACO vs Fourier vs pixel on the same loop, crops, noise and seed."""
    runs = _method_runs(context)
    figure, axes = panels(2, 3)
    titles = {"maco": "MACO (phase only)", "fourier": "Fourier (Olah et al.)", "pixel": "pixels"}
    for col, (method, run) in enumerate(runs.items()):
        for row, name in enumerate(run.names):
            axes[row, col].imshow(to_uint8(run.images[row], RANGE))
            axes[row, col].set_title(f"{titles[method]}: {name}", fontsize=9)
    save_figure(figure, "methods")


def fig_loss(context: dict) -> None:
    """Objective value per step for each parameterization."""
    runs = _method_runs(context)
    figure = Figure(figsize=(6.4, 3.0), layout="constrained")
    ax = figure.subplots()
    for color, (method, run) in enumerate(runs.items()):
        for index, name in enumerate(run.names):
            style = "-" if index == 0 else "--"
            # the loss is the mean of the masked logits layer: x 1000 gives the logit
            values = run.loss_history[:, index] * 1000
            ax.plot(values, style, color=f"C{color}", label=f"{method}: {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("class logit (mean over crops)")
    ax.legend(fontsize=8, ncols=3)
    ax.grid(alpha=0.3)
    save_figure(figure, "loss", dpi=90)


def fig_transparency(context: dict) -> None:
    """A MACO image, its transparency map, and the image with the transparency as alpha."""
    run = _method_runs(context)["maco"]
    figure, axes = panels(2, 3)
    for row, name in enumerate(run.names):
        image, transparency = run.images[row], run.transparency[row]
        shown = [
            (to_uint8(image, RANGE), f"MACO: {name}"),
            (heatmap(transparency), "transparency (accumulated |dL/dx|)"),
            (over_white(image, transparency), "transparency as alpha"),
        ]
        for col, (picture, title) in enumerate(shown):
            axes[row, col].imshow(picture)
            axes[row, col].set_title(title, fontsize=9)
    save_figure(figure, "maco_transparency")


def fig_objectives(context: dict) -> None:
    """Class logit, channels at two depths, a neuron, a combination of objectives."""
    model, steps, classes = context["model"], context["steps"], context["classes"]
    espresso = targets.class_logits(model, 967, class_names=classes)
    jobs = [
        ("class logit: espresso", espresso),
        ("channel 9 of block4a", targets.channel(model, "block4a_project_bn", 9)),
        ("channel 0 of top_conv", targets.channel(model, "top_conv", 0)),
        ("neuron: centre of top_conv ch. 0", targets.neuron(model, "top_conv", CENTRE_UNIT)),
        (
            "espresso + goldfish",
            espresso + targets.class_logits(model, 1, class_names=classes),
        ),
    ]
    figure, axes = panels(1, len(jobs))
    for ax, (title, objective) in zip(axes[0], jobs, strict=True):
        start = time.perf_counter()
        run = maco_tf.visualize(
            objective,
            steps=steps,
            crops=CROPS,
            box_size=box_sizes(steps),
            whole_views=0,
            noise=0.08,
            values_range=RANGE,
            size=SIZE,
            seed=0,
        )
        print(f"  {title}: {time.perf_counter() - start:.0f} s")
        ax.imshow(over_white(run.images[0], run.transparency[0]))
        ax.set_title(title, fontsize=8)
    save_figure(figure, "objectives")


def fig_combine(context: dict) -> None:
    """explain_class: MACO image of espresso beside Saliency, Grad-CAM and RISE of photos."""
    shots = context["photos"]
    start = time.perf_counter()
    explanation = explain_class(
        context["model"],
        "espresso",
        [shots["coffee"], shots["chelsea"]],
        methods=("Saliency", "GradCAM", "RISE"),
        method_kwargs={"RISE": {"nb_samples": 8 * context["steps"]}},
        values_range=RANGE,
        visualization={"steps": context["steps"]},
    )
    print(f"  explain_class: {time.perf_counter() - start:.0f} s")
    save_figure(explanation.plot(cell_size=2.2), "combine", dpi=90)


def square_photo(photo: np.ndarray, side: int = 224) -> np.ndarray:
    """The centre square of a uint8 photo, resized to ``side``, float32 in ``RANGE``."""
    import tensorflow as tf

    height, width = photo.shape[:2]
    crop = min(height, width)
    top, left = (height - crop) // 2, (width - crop) // 2
    square = photo[top : top + crop, left : left + crop, :3].astype(np.float32)
    resized = tf.image.resize(square[None], (side, side), antialias=True)[0].numpy()
    return np.clip(resized, *RANGE)


#: Seed photo and the class each is accentuated towards in the accentuation figure.
ACCENTS = (("chelsea", "goldfish"), ("coffee", "espresso"), ("hopper", "sunglasses"))


def fig_accentuation(context: dict) -> None:
    """Seed photos, their accentuations towards a class, transparency; prints the measures."""
    import tensorflow as tf

    model, classes = context["model"], context["classes"]
    seeds = np.stack([square_photo(context["photos"][photo]) for photo, _ in ACCENTS])
    ids = [classes.index(name) for _, name in ACCENTS]
    objective = targets.class_logits(model, ids, class_names=classes)
    run = maco_tf.accentuate(objective, seeds, steps=context["steps"], values_range=RANGE, seed=0)
    before = tf.nn.softmax(model(run.seeds)).numpy()[np.arange(len(ids)), ids]
    after = tf.nn.softmax(model(run.images)).numpy()[np.arange(len(ids)), ids]
    print(f"  {context['steps']} steps, {run.elapsed_s / len(run):.0f} s per image")
    figure, axes = panels(len(ids), 3)
    for row, (photo, name) in enumerate(ACCENTS):
        print(
            f"  {photo} -> {name}: objective {run.objective_before[row]:+.4f} -> "
            f"{run.objective_after[row]:+.4f}, p {before[row]:.4f} -> {after[row]:.4f}, "
            f"RMS distance {run.seed_distance[row]:.4f}"
        )
        image, transparency = run.images[row], run.transparency[row]
        shown = [
            (to_uint8(run.seeds[row], RANGE), f"seed (p {name} {before[row]:.3f})"),
            (to_uint8(image, RANGE), f"accentuated (p {after[row]:.3f})"),
            (over_white(image, transparency), "transparency as alpha"),
        ]
        for col, (picture, title) in enumerate(shown):
            axes[row, col].imshow(picture)
            axes[row, col].set_title(title, fontsize=9)
    save_figure(figure, "accentuation")


def fig_snapshots(context: dict) -> None:
    """One optimisation per class, kept every eighth of the run (``snapshots=``)."""
    steps = context["steps"]
    result = maco_tf.visualize(
        targets.class_logits(context["model"], [967, 1], class_names=context["classes"]),
        steps=steps,
        crops=CROPS,
        size=SIZE,
        values_range=RANGE,
        seed=0,
        snapshots=max(1, steps // 8),
    )
    count = result.snapshots.shape[1]
    figure, axes = panels(len(result), count, size=1.5)
    for row, name in enumerate(result.names):
        for col, step in enumerate(result.snapshot_steps):
            axes[row, col].imshow(to_uint8(result.snapshots[row, col], RANGE))
            axes[row, col].set_title(
                f"{name}, step {step}" if col == 0 else f"step {step}", fontsize=8
            )
    save_figure(figure, "snapshots", dpi=90)


FIGURES: dict[str, Callable[[dict], None]] = {
    "phase_magnitude": fig_phase_magnitude,
    "methods": fig_methods,
    "loss": fig_loss,
    "maco_transparency": fig_transparency,
    "objectives": fig_objectives,
    "combine": fig_combine,
    "accentuation": fig_accentuation,
    "snapshots": fig_snapshots,
}


def readme_figures(folder: Path, tile: int = 176) -> None:
    """The quick-start figures from a ``maco-tf visualize`` output folder (10 classes).

    ``quickstart.png``: the images, 5 per row; ``transparency.png``: the first five with their
    transparency as alpha over white. Nothing is optimised here: the pictures are the
    command line's own output.
    """
    import json

    records = json.loads((folder / "results.json").read_text())["targets"]
    if len(records) != 10:
        raise SystemExit(f"{folder} holds {len(records)} targets; the figures show 10")
    grid = Image.new("RGB", (5 * tile, 2 * tile))
    strip = Image.new("RGB", (5 * tile, tile))
    for position, record in enumerate(records):
        image = Image.open(folder / record["files"]["image"]).convert("RGB")
        grid.paste(
            image.resize((tile, tile), Image.LANCZOS),
            (tile * (position % 5), tile * (position // 5)),
        )
        if position < 5:
            rgba = Image.open(folder / record["files"]["rgba"]).convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            flat = Image.alpha_composite(white, rgba).convert("RGB")
            strip.paste(flat.resize((tile, tile), Image.LANCZOS), (tile * position, 0))
    for name, picture in (("quickstart", grid), ("transparency", strip)):
        path = OUT / f"{name}.png"
        picture.save(path, optimize=True)
        kilobytes = path.stat().st_size / 1000
        print(f"  {path.name}: {picture.size[0]}x{picture.size[1]}, {kilobytes:.0f} KB")


def main(argv: list[str] | None = None) -> int:
    """Render the chosen figures."""
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="optimisation steps (default 64)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {list(FIGURES)}")
    parser.add_argument("--out", type=Path, default=None, help="output folder (docs/images)")
    parser.add_argument(
        "--readme-from",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="only make quickstart.png and transparency.png, from this maco-tf visualize folder",
    )
    args = parser.parse_args(argv)
    OUT = args.out or OUT
    if args.readme_from is not None:
        readme_figures(args.readme_from)
        return 0
    chosen = [name for name in args.only.split(",") if name] or list(FIGURES)
    unknown = sorted(set(chosen) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    context = {
        "model": load_efficientnet_lite0(),
        "classes": get_imagenet_classes(),
        "photos": photos(),
        "steps": args.steps,
    }
    for name in chosen:
        print(f"{name}:")
        start = time.perf_counter()
        FIGURES[name](context)
        print(f"  done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tables, JSON, the quality-versus-time plot and image sheets of a quality run."""

from __future__ import annotations

import json
import os
import platform

import numpy as np


def machine_description() -> str:
    """One line: host, OS, CPU count, accelerators, library versions."""
    import keras
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return (
        f"{platform.platform()} | {platform.machine()}, {os.cpu_count()} CPU cores | "
        f"GPU: {', '.join(gpus) if gpus else 'none'} | Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, load average "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )


def _fmt(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


COLUMNS = (
    ("steps", "steps", 0),
    ("seconds_per_image", "s / image", 1),
    ("step_s", "s / step", 3),
    ("judge_top1", "judge top-1", 2),
    ("judge_top5", "judge top-5", 2),
    ("judge_p", "judge p", 3),
    ("lowpass64_top1", "low-pass 64 top-1", 2),
    ("lowpass112_top1", "low-pass 112 top-1", 2),
    ("rotate10_top1", "rotate 10° top-1", 2),
    ("jpeg50_top1", "JPEG 50 top-1", 2),
    ("robust_top1", "robust top-1", 2),
    ("robust_p", "robust p", 3),
    ("self_top1", "self top-1", 2),
    ("self_p", "self p", 3),
    ("plausibility", "plausibility", 3),
    ("fid", "FID", 0),
)


def markdown_table(rows: list[dict]) -> str:
    """A markdown table, one row per entry (``label`` plus the :data:`COLUMNS`)."""
    header = "| method | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    lines = [header, rule]
    for row in rows:
        cells = [_fmt(row.get(key), digits) for key, _, digits in COLUMNS]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: str, payload: dict) -> None:
    """``payload`` as indented JSON (tuples become lists, numpy scalars numbers)."""

    def default(value: object) -> object:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        return str(value)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=1, default=default)


def write_run(
    out: str, command: str, table: str, classes: list[int], names: list[str], payload: dict
) -> None:
    """``table.md`` (the table under the command) and ``results.json`` in ``out``.

    The JSON holds the command, the machine, the classes and their names, then ``payload``.
    """
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "table.md"), "w") as handle:
        handle.write(f"<!-- {command} -->\n{table}\n")
    header = {
        "command": command,
        "machine": machine_description(),
        "classes": classes,
        "class_names": [names[c] for c in classes],
    }
    write_json(os.path.join(out, "results.json"), {**header, **payload})


#: The two scores the quality plots show, one panel each, and their axis titles.
JUDGE_AXES = {"judge_top1": "judge top-1 rate", "judge_p": "judge mean p(target)"}


def _finish_judge_figure(figure, axes, path: str, title: str, legend: str) -> None:
    """Log-time x axes, score y axes from 0 to 1, legend, title; saved to ``path`` and closed."""
    import matplotlib.pyplot as plt

    for axis, name in zip(axes, JUDGE_AXES.values(), strict=True):
        axis.set_xscale("log")
        axis.set_xlabel("wall time per image (s, log)")
        axis.set_ylabel(name)
        axis.set_ylim(-0.03, 1.03)
        axis.grid(alpha=0.3)
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7, loc=legend)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_curves(path: str, curves: dict[str, list[dict]], title: str) -> None:
    """Judge top-1 and mean target probability against seconds per image, per method.

    ``curves`` maps a method label to its points (``seconds_per_image``, ``judge_top1``,
    ``judge_p``, ``steps``), in increasing steps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, points in curves.items():
        if not points:
            continue
        seconds = [p["seconds_per_image"] for p in points]
        for axis, key in zip(axes, JUDGE_AXES, strict=True):
            axis.plot(seconds, [p[key] for p in points], marker="o", label=label)
            for point in points:
                axis.annotate(
                    str(point["steps"]),
                    (point["seconds_per_image"], point[key]),
                    textcoords="offset points",
                    xytext=(3, 3),
                    fontsize=7,
                )
    _finish_judge_figure(figure, axes, path, title, legend="best")


def plot_sweep(path: str, rows: list[dict], reference_s: float | None, title: str) -> None:
    """Judge top-1 and mean target probability against seconds per image, one point a setting.

    ``rows`` carry ``label``, ``seconds_per_image``, ``judge_top1`` and ``judge_p``;
    ``reference_s`` (Xplique's ``maco`` time per image) draws the reference and its quarter.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    colours, markers = plt.get_cmap("tab10"), "osD^vP*Xh<>p"
    for axis, key in zip(axes, JUDGE_AXES, strict=True):
        for index, row in enumerate(rows):  # one colour and marker a setting, named in the legend
            axis.plot(
                row["seconds_per_image"],
                row[key],
                marker=markers[index % len(markers)],
                color=colours(index % 10),
                linestyle="none",
                label=row["label"],
            )
        if reference_s:
            axis.axvline(reference_s, color="tab:red", lw=1, label="Xplique maco, 128 steps")
            axis.axvline(reference_s / 4, color="tab:red", lw=1, ls="--", label="a quarter of it")
    _finish_judge_figure(figure, axes, path, title, legend="lower right")


def image_sheet(
    path: str,
    images: dict[str, np.ndarray],
    classes: list[int],
    names: list[str],
    values_range: tuple[float, float],
    thumb: int = 128,
) -> None:
    """One row per method, one column per class, thumbnails of the images (PNG)."""
    from PIL import Image, ImageDraw

    labels = list(images)
    margin = 210
    sheet = Image.new("RGB", (margin + thumb * len(classes), 18 + thumb * len(labels)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, target in enumerate(classes):
        draw.text((margin + column * thumb + 2, 2), names[target][:20], fill="black")
    low, high = values_range
    for row, label in enumerate(labels):
        draw.text((2, 18 + row * thumb + thumb // 2), label[:34], fill="black")
        for column, image in enumerate(images[label]):
            pixels = np.clip((image - low) / (high - low) * 255.0, 0, 255).astype(np.uint8)
            tile = Image.fromarray(pixels).resize((thumb, thumb), Image.BILINEAR)
            sheet.paste(tile, (margin + column * thumb, 18 + row * thumb))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)


def degraded_sheet(
    path: str,
    images: dict[str, np.ndarray],
    classes: list[int],
    names: list[str],
    values_range: tuple[float, float],
    degradation: str,
) -> None:
    """:func:`image_sheet` of the images after ``degradation``, each row beside its original.

    ``degradation`` is a name of :func:`maco_tf.outputs.recognition.degrade` (``lowpass64``).
    """
    from maco_tf.outputs.recognition import degrade

    rows = {}
    for label, batch in images.items():
        rows[label] = batch
        short = label[: 32 - len(degradation)]  # image_sheet shows 34 characters
        rows[f"{short}, {degradation}"] = degrade(batch, degradation, tuple(values_range))
    image_sheet(path, rows, classes, names, values_range)

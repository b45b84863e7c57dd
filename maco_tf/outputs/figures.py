"""Figures of a class explanation: the MACO image beside attribution heatmaps of real images.

:func:`plot_explanation` draws a :class:`~maco_tf.outputs.combine.ClassExplanation` (what
:meth:`~maco_tf.outputs.combine.ClassExplanation.plot` returns): row 0 the MACO image over
white with its transparency as alpha, then each method's attribution of it; one row per real
image after, titled with the model's top-1 class and the explained class's probability, with
each method's attribution as a heatmap over the image. Heatmaps are scaled per map as Xplique's
``plot_attributions`` does (:func:`normalise_attribution`). Matplotlib is imported when a
figure is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maco_tf.models.images import resize_images
from maco_tf.outputs.render import to_rgba, to_uint8

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from maco_tf.outputs.combine import ClassExplanation

__all__ = ["HeatmapStyle", "normalise_attribution", "over_white", "plot_explanation"]

#: Font size of the panel titles.
_TITLE_SIZE = 9


@dataclass(frozen=True)
class HeatmapStyle:
    """How attribution maps are drawn over their images (see :func:`plot_explanation`)."""

    cmap: str = "jet"
    alpha: float = 0.5
    percentile: float = 99.5
    absolute: bool = True


def plot_explanation(
    explanation: ClassExplanation,
    style: HeatmapStyle | None = None,
    cell_size: float = 2.4,
    dpi: float | None = None,
) -> Figure:
    """The figure of a class explanation (layout in the module docstring).

    Parameters
    ----------
    explanation
        A :class:`~maco_tf.outputs.combine.ClassExplanation`.
    style
        Colormap, opacity, clipping percentile and magnitude of the heatmaps; default
        :class:`HeatmapStyle` ().
    cell_size
        Side of one panel, in inches.
    dpi
        Resolution of the figure; default matplotlib's ``figure.dpi``.

    Returns
    -------
    figure
        A ``matplotlib.figure.Figure``, not registered with pyplot.
    """
    from matplotlib.figure import Figure

    style = style or HeatmapStyle()
    rows, cols = 1 + len(explanation.images), 1 + max(len(explanation.methods), 1)
    figure = Figure(
        figsize=(cell_size * cols, cell_size * rows * 1.15), dpi=dpi, layout="constrained"
    )
    axes = np.asarray(figure.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    _maco_row(axes[0], explanation, style)
    for row in range(len(explanation.images)):
        _photo_row(axes[row + 1], explanation, row, style)
    return figure


def _maco_row(axes: np.ndarray, explanation: ClassExplanation, style: HeatmapStyle) -> None:
    """The MACO image over white, then each method's attribution of it (when computed)."""
    title = f"MACO: {explanation.class_name}"
    if explanation.visualization_prediction is not None:
        top = explanation.label(int(np.argmax(explanation.visualization_prediction)))
        title += f"\ntop-1: {top}, p={explanation.visualization_probability:.2f}"
    rgba = to_rgba(explanation.image, explanation.transparency, explanation.values_range)
    axes[0].imshow(over_white(rgba))
    axes[0].set_title(title, fontsize=_TITLE_SIZE)
    if explanation.visualization_attributions is None:
        return
    small = resize_images(explanation.image[None], explanation.images.shape[1:3])[0]
    small = to_uint8(small, explanation.values_range)
    for col, name in enumerate(explanation.methods, start=1):
        _overlay(axes[col], small, explanation.visualization_attributions[name], style)
        axes[col].set_title(f"{name} (MACO)", fontsize=_TITLE_SIZE)


def _photo_row(
    axes: np.ndarray, explanation: ClassExplanation, row: int, style: HeatmapStyle
) -> None:
    """Real image ``row`` with its top-1 class, then each method's attribution over it."""
    photo = to_uint8(explanation.images[row], explanation.values_range)
    if photo.shape[-1] == 1:
        photo = np.repeat(photo, 3, axis=-1)
    axes[0].imshow(photo)
    top = explanation.label(int(explanation.predicted_classes[row]))
    probability = explanation.class_probability[row]
    axes[0].set_title(
        f"top-1: {top}\np({explanation.class_name})={probability:.2f}", fontsize=_TITLE_SIZE
    )
    for col, name in enumerate(explanation.methods, start=1):
        _overlay(axes[col], photo, explanation.attributions[name][row], style)
        axes[col].set_title(name, fontsize=_TITLE_SIZE)


def _overlay(ax: Axes, picture: np.ndarray, attribution: np.ndarray, style: HeatmapStyle) -> None:
    """``picture`` (uint8) with the scaled ``attribution`` drawn over it."""
    if picture.shape[-1] == 1:
        picture = np.repeat(picture, 3, axis=-1)
    ax.imshow(picture)
    ax.imshow(
        normalise_attribution(attribution, style.percentile, style.absolute),
        cmap=style.cmap,
        alpha=style.alpha,
        vmin=0.0,
        vmax=1.0,
    )


def over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA uint8 image over white (as the MACO paper shows transparency)."""
    alpha = rgba[..., 3:4].astype(np.float64) / 255.0
    rgb = rgba[..., :3].astype(np.float64) * alpha + 255.0 * (1.0 - alpha)
    return np.round(rgb).astype(np.uint8)


def normalise_attribution(attribution: np.ndarray, percentile: float, absolute: bool) -> np.ndarray:
    """An attribution map scaled to [0, 1] for display, as Xplique's ``plot_attributions``.

    Values are clipped to their ``[100 - percentile, percentile]`` percentiles, then mapped
    linearly (minimum to 0, maximum to 1): maps with a large offset, such as RISE's, still
    show their variations. Non-finite values count as 0; ``absolute`` takes magnitudes first.
    """
    values = np.asarray(attribution, dtype=np.float64)
    values = np.where(np.isfinite(values), values, 0.0)
    if absolute:
        values = np.abs(values)
    low, high = np.percentile(values, 100.0 - percentile), np.percentile(values, percentile)
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((np.clip(values, low, high) - low) / (high - low)).astype(np.float32)

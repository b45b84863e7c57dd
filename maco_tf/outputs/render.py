"""Turn images and transparency maps into displayable arrays and PNG files.

The paper shows a MACO image with its transparency map as alpha channel: pixels whose
gradient mattered little during the optimisation fade out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from maco_tf.files import write_atomically


def to_uint8(image: np.ndarray, values_range: Sequence[float] = (-1, 1)) -> np.ndarray:
    """Map an image with values in ``values_range`` to uint8 ``[0, 255]`` (clipped).

    Parameters
    ----------
    image
        ``(H, W, C)`` with C = 1 or 3.
    values_range
        ``(low, high)`` of the image values.

    Returns
    -------
    image
        ``(H, W, C)`` uint8.
    """
    low, high = float(values_range[0]), float(values_range[1])
    unit = (np.asarray(image, dtype=np.float64) - low) / (high - low)
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def importance(transparency: np.ndarray, percentile: float = 80.0) -> np.ndarray:
    """Normalised importance ``(H, W)`` in [0, 1] from an accumulated gradient map.

    The map is averaged over channels, clipped at its ``percentile`` (so a few extreme
    pixels do not flatten the rest) and divided by its maximum, as Xplique's ``plot_maco``
    does. A map without signal (all zeros) gives zeros.

    Parameters
    ----------
    transparency
        ``(H, W, C)`` or ``(H, W)`` non-negative map.
    percentile
        Values above this percentile are fully opaque.

    Returns
    -------
    alpha
        ``(H, W)`` float32 in [0, 1].
    """
    alpha = np.asarray(transparency, dtype=np.float64)
    if alpha.ndim == 3:
        alpha = alpha.mean(axis=-1)
    ceiling = np.percentile(alpha, percentile)
    if not np.isfinite(ceiling) or ceiling <= 0:
        ceiling = alpha.max()
    if not np.isfinite(ceiling) or ceiling <= 0:
        return np.zeros(alpha.shape, dtype=np.float32)
    return (np.clip(alpha, 0.0, ceiling) / ceiling).astype(np.float32)


def to_rgba(
    image: np.ndarray,
    transparency: np.ndarray,
    values_range: Sequence[float] = (-1, 1),
    percentile: float = 80.0,
) -> np.ndarray:
    """The image with its importance as alpha channel: ``(H, W, 4)`` uint8.

    Grayscale images are repeated to RGB.
    """
    rgb = to_uint8(image, values_range)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    alpha = np.round(importance(transparency, percentile) * 255.0).astype(np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def heatmap(
    transparency: np.ndarray, cmap: str = "inferno", percentile: float = 99.0
) -> np.ndarray:
    """Colour-mapped importance map ``(H, W, 3)`` uint8.

    Parameters
    ----------
    transparency
        ``(H, W, C)`` or ``(H, W)`` accumulated gradient magnitude.
    cmap
        A matplotlib colormap name.
    percentile
        Clipping percentile (see :func:`importance`).
    """
    from matplotlib import colormaps

    colors = colormaps[cmap](importance(transparency, percentile))[..., :3]
    return np.round(colors * 255.0).astype(np.uint8)


def save_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, 1|3|4)`` array as PNG, atomically.

    The file is written under a temporary name in the same folder and renamed, so an
    interrupted run never leaves a truncated PNG behind.

    Returns
    -------
    path
        The written path.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"save_png expects uint8 pixels, got {array.dtype}; use to_uint8 first")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    image = Image.fromarray(array)
    write_atomically(path, lambda handle: image.save(handle, format="PNG"))
    return path


def save_visualization(
    folder: str | os.PathLike,
    stem: str,
    image: np.ndarray,
    transparency: np.ndarray,
    values_range: Sequence[float] = (-1, 1),
) -> dict[str, Path]:
    """Save ``<stem>.png``, ``<stem>_rgba.png`` and ``<stem>_heatmap.png`` in ``folder``.

    Returns
    -------
    paths
        ``{"image": ..., "rgba": ..., "heatmap": ...}``.
    """
    folder = Path(folder)
    return {
        "image": save_png(folder / f"{stem}.png", to_uint8(image, values_range)),
        "rgba": save_png(folder / f"{stem}_rgba.png", to_rgba(image, transparency, values_range)),
        "heatmap": save_png(folder / f"{stem}_heatmap.png", heatmap(transparency)),
    }

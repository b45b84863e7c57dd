"""Natural-image magnitude spectra: the fixed magnitude MACO keeps while it optimises the phase.

A magnitude is stored as an array of shape ``(C, H, W // 2 + 1)``: one real 2-D FFT magnitude per
channel, in the layout of ``numpy.fft.rfft2`` (rows: frequencies ``fftfreq(H)``, columns:
``rfftfreq(W)``). For RGB it lives in the decorrelated colour basis of :mod:`maco_tf.core.color`,
the basis in which the image is synthesised.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from maco_tf.core.color import decorrelate
from maco_tf.errors import SpectrumError

XPLIQUE_SPECTRUM_FILE = "spectrum_decorrelated.npy"


def xplique_spectrum_path() -> Path:
    """Locate the ImageNet magnitude spectrum shipped by the installed Xplique package.

    The package is found without importing it (importing Xplique takes seconds).

    Returns
    -------
    path
        Path of ``xplique/features_visualizations/spectrum_decorrelated.npy``.
    """
    spec = importlib.util.find_spec("xplique")
    if spec is None or not spec.submodule_search_locations:
        raise SpectrumError(
            "xplique is not installed, so its ImageNet spectrum is unavailable; "
            "install it with `pip install xplique>=2.0.2` or pass magnitude_dataset=... "
            "(maco_dataset= in the drop-in maco)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "features_visualizations"
    path = path / XPLIQUE_SPECTRUM_FILE
    if not path.is_file():
        raise SpectrumError(f"Xplique's spectrum file is missing at {path}; reinstall xplique.")
    return path


def spectrum_shape(height: int, width: int) -> tuple[int, int]:
    """Shape of the real FFT of an (height, width) image: ``(height, width // 2 + 1)``."""
    return height, width // 2 + 1


def resize_magnitude(
    magnitude: np.ndarray, height: int, width: int, source_width: int | None = None
) -> np.ndarray:
    """Resample a magnitude spectrum to the spectrum of an (height, width) image.

    Frequencies are matched in cycles per pixel (DC to DC, Nyquist to Nyquist), with linear
    interpolation on the *sorted* frequency grid, so the wrap-around of negative row
    frequencies in the FFT layout is respected (a plain image resize of the FFT layout would
    blend positive and negative frequencies). The DC bin is rescaled by the square root of the
    pixel-count ratio, so the mean colour keeps its share of the image's energy.

    Parameters
    ----------
    magnitude
        Array ``(C, H0, W0 // 2 + 1)``.
    height, width
        Target image size.
    source_width
        Original width ``W0``; by default the even one, ``2 * (W0 // 2)``.

    Returns
    -------
    magnitude
        Array ``(C, height, width // 2 + 1)``, float32.
    """
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.ndim != 3:
        raise SpectrumError(f"a magnitude spectrum has shape (C, H, W//2+1), got {magnitude.shape}")
    channels, src_h, src_wr = magnitude.shape
    src_w = source_width if source_width is not None else 2 * (src_wr - 1)
    if (src_h, src_w) == (height, width):
        return magnitude.astype(np.float32)
    src_fy = np.fft.fftshift(np.fft.fftfreq(src_h))
    src_fx = np.fft.rfftfreq(src_w)
    shifted = np.fft.fftshift(magnitude, axes=1)
    dst_fy = np.clip(np.fft.fftfreq(height), src_fy[0], src_fy[-1])
    dst_fx = np.clip(np.fft.rfftfreq(width), src_fx[0], src_fx[-1])
    grid_y, grid_x = np.meshgrid(dst_fy, dst_fx, indexing="ij")
    points = np.stack([grid_y.ravel(), grid_x.ravel()], axis=-1)
    out = np.empty((channels, height, width // 2 + 1), dtype=np.float32)
    for c in range(channels):
        interp = RegularGridInterpolator((src_fy, src_fx), shifted[c], method="linear")
        out[c] = interp(points).reshape(grid_y.shape)
    # The DC bin is the sum of the pixels (grows like the pixel count), the other bins of a
    # natural image like its square root: relative to them, the DC scales by sqrt(ratio).
    # Without this, a 32 px image keeps 99.8 % of its energy in the mean colour: flat.
    out[:, 0, 0] *= np.sqrt((height * width) / (src_h * src_w))
    return out


def imagenet_magnitude(height: int, width: int) -> np.ndarray:
    """ImageNet's average magnitude spectrum (Xplique's file) resampled to (height, width).

    Returns
    -------
    magnitude
        Array ``(3, height, width // 2 + 1)`` in the decorrelated colour basis.
    """
    return resize_magnitude(np.load(xplique_spectrum_path()), height, width)


def _iter_image_batches(dataset: object) -> Iterable[np.ndarray]:
    """Yield float32 batches (B, H, W, C) from an array, a tf.data.Dataset or an iterable."""
    if (
        isinstance(dataset, np.ndarray)
        or hasattr(dataset, "numpy")
        and not hasattr(dataset, "element_spec")
    ):
        items: Iterable = [np.asarray(dataset)]
    elif hasattr(dataset, "as_numpy_iterator"):
        items = dataset.as_numpy_iterator()
    else:
        items = dataset
    for item in items:
        if isinstance(item, (tuple, list)) and not isinstance(item, np.ndarray):
            item = item[0]  # (images, labels) pairs: keep the images
        batch = np.asarray(item, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4:
            raise SpectrumError(
                f"magnitude_dataset must give images (H, W, C) or batches (B, H, W, C); got an "
                f"item of shape {batch.shape}"
            )
        yield batch


def dataset_magnitude(
    dataset: object, height: int, width: int, channels: int | None = None
) -> np.ndarray:
    """Average magnitude spectrum of a set of images, in the basis used for synthesis.

    RGB images are moved to the decorrelated colour basis before the FFT, because the MACO
    image is synthesised in that basis and only then mixed back to RGB. Any other channel
    count (grayscale, multispectral) is used as is.

    Parameters
    ----------
    dataset
        A ``tf.data.Dataset`` of images or batches (or of ``(images, labels)`` pairs), a numpy
        array ``(N, H, W, C)``, or any iterable of such arrays.
    height, width
        Size of the image to synthesise; the average spectrum is resampled to it.
    channels
        Expected channel count (the model's); a mismatch raises :class:`SpectrumError`.

    Returns
    -------
    magnitude
        Array ``(C, height, width // 2 + 1)``, float32.
    """
    total = None
    count = 0
    shape_seen: tuple[int, ...] = ()
    for batch in _iter_image_batches(dataset):
        if channels is not None and batch.shape[-1] != channels:
            raise SpectrumError(
                f"magnitude_dataset has {batch.shape[-1]} channel(s) but the model takes "
                f"{channels}; give images with {channels} channel(s)"
            )
        if total is not None and batch.shape[1:] != shape_seen:
            raise SpectrumError(
                f"magnitude_dataset images must share one size; got {shape_seen} then "
                f"{batch.shape[1:]}"
            )
        shape_seen = batch.shape[1:]
        if batch.shape[-1] == 3:
            batch = decorrelate(batch)
        spectra = np.abs(np.fft.rfft2(np.moveaxis(batch, -1, 1), axes=(-2, -1)))
        total = spectra.sum(axis=0) if total is None else total + spectra.sum(axis=0)
        count += batch.shape[0]
    if total is None or count == 0:
        raise SpectrumError("magnitude_dataset is empty: give at least one image")
    mean = total / count
    if not np.all(np.isfinite(mean)):
        raise SpectrumError("magnitude_dataset contains NaN or infinite pixel values")
    return resize_magnitude(mean, height, width, source_width=shape_seen[1])

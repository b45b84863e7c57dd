"""Real photographs available offline: labelled ImageNet photos and bundled natural photos.

Two reference sets, both read from files that installed packages ship (nothing is downloaded):

* :func:`imagenet_photos`: the 20 labelled ImageNet photos of the ``foolbox`` 3.3.4 wheel
  (MIT license), ``foolbox/data/imagenet_NN_LABEL.jpg`` where ``LABEL`` is the ImageNet class
  index. The files are located through the wheel's installed metadata
  (:func:`importlib.metadata.distribution`); foolbox itself is never imported, so it can be
  installed without its dependencies: ``pip install --no-deps foolbox==3.3.4``.
* :func:`natural_photos`: those 20 photos plus the photographs bundled with scikit-image
  (``astronaut``, ``chelsea``, ``coffee``, ``rocket``, ``motorcycle``), scikit-learn's sample
  images (``china``, ``flower``; only when scikit-learn is installed) and matplotlib's
  ``grace_hopper``: the reference set of natural images for plausibility and FID.

Every photo is returned as a square: the centre square of the whole shorter side, resized
(bilinear, antialiased) to ``size x size``, as uint8 RGB.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maco_tf.errors import MacoError

__all__ = [
    "BUNDLED_PHOTOS",
    "DEFAULT_PHOTO_SIZE",
    "FOOLBOX_INSTALL",
    "PhotoDataError",
    "bundled_photo",
    "imagenet_photos",
    "natural_photos",
    "square_photo",
]

#: Side of the square photos, in pixels, unless asked otherwise.
DEFAULT_PHOTO_SIZE = 224
#: The command that installs the labelled ImageNet photos (foolbox's data, not its code).
FOOLBOX_INSTALL = "pip install --no-deps foolbox==3.3.4"
_FOOLBOX_DATA = "foolbox/data"
_IMAGENET_FILE = re.compile(r"imagenet_(\d+)_(\d+)\.jpg")
_OPTIONAL_PACKAGES = ("sklearn",)


class PhotoDataError(MacoError):
    """Photos that are asked for are not installed (the message names the package to install)."""


# ------------------------------------------------------------------------------ squares


def square_photo(image: np.ndarray, size: int = DEFAULT_PHOTO_SIZE) -> np.ndarray:
    """Centre square of a photo (whole shorter side), resized to ``size x size``.

    Parameters
    ----------
    image
        ``(H, W)`` grey or ``(H, W, C)`` RGB / RGBA uint8 image.
    size
        Side of the result, in pixels (>= 1).

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8 RGB (grey is repeated, alpha dropped).

    Raises
    ------
    PhotoDataError
        For a ``size`` that is not a positive integer.
    """
    from PIL import Image

    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise PhotoDataError(f"size must be a positive integer (pixels); got {size!r}")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = np.ascontiguousarray(array[top : top + side, left : left + side, :3])
    resized = Image.fromarray(crop).resize((int(size), int(size)), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _read_jpeg(path: Path) -> np.ndarray:
    """A bundled photo file as uint8 RGB (:func:`maco_tf.models.images.read_array`)."""
    from maco_tf.models.images import read_array

    return read_array(path, 3, what="bundled photo")


# ----------------------------------------------------------------------- ImageNet photos


def _foolbox_data() -> Path | None:
    """The installed ``foolbox/data`` folder, or None when the wheel is not installed."""
    try:
        distribution = importlib.metadata.distribution("foolbox")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(distribution.locate_file(_FOOLBOX_DATA)))
    return folder if folder.is_dir() else None


def _foolbox_files() -> list[tuple[int, Path]]:
    """``(ImageNet class, path)`` of foolbox's labelled photos, sorted by file name."""
    folder = _foolbox_data()
    paths = sorted(folder.glob("imagenet_*.jpg")) if folder is not None else []
    found = [(match, path) for path in paths if (match := _IMAGENET_FILE.fullmatch(path.name))]
    if not found:
        raise PhotoDataError(
            "the labelled ImageNet photos come from the data of the foolbox 3.3.4 wheel, which "
            f"is not installed: {FOOLBOX_INSTALL} (maco_tf reads its files and never imports "
            "foolbox)"
        )
    return [(int(match.group(2)), path) for match, path in found]


def imagenet_photos(size: int = DEFAULT_PHOTO_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The 20 labelled ImageNet photos of the foolbox wheel, as squares.

    Parameters
    ----------
    size
        Side of each square photo, in pixels; pass a model's input size to feed it directly.

    Returns
    -------
    images
        ``(20, size, size, 3)`` uint8 RGB, in the order of the file names.
    labels
        ``(20,)`` int64 ImageNet class indices (0 to 999).

    Raises
    ------
    PhotoDataError
        When the foolbox wheel is not installed (the message gives the ``pip`` line), or for
        a bad ``size``.
    """
    files = _foolbox_files()
    images = np.stack([square_photo(_read_jpeg(path), size) for _, path in files])
    labels = np.array([label for label, _ in files], dtype=np.int64)
    return images, labels


# ------------------------------------------------------------------------ bundled photos


@dataclass(frozen=True)
class _Bundled:
    """Where a bundled photograph lives: the package (import name) and its key there."""

    package: str
    key: str


_BUNDLED = {
    "astronaut": _Bundled("skimage", "astronaut"),
    "chelsea": _Bundled("skimage", "chelsea"),
    "coffee": _Bundled("skimage", "coffee"),
    "rocket": _Bundled("skimage", "rocket"),
    "motorcycle": _Bundled("skimage", "stereo_motorcycle"),
    "china": _Bundled("sklearn", "china.jpg"),
    "flower": _Bundled("sklearn", "flower.jpg"),
    "grace_hopper": _Bundled("matplotlib", "grace_hopper.jpg"),
}
#: Names of the photographs bundled with installed packages, in the order of natural_photos.
BUNDLED_PHOTOS = tuple(_BUNDLED)
_PIP_NAMES = {"sklearn": "scikit-learn", "skimage": "scikit-image"}


def _read_bundled(source: _Bundled) -> np.ndarray:
    if source.package == "skimage":
        from skimage import data

        image = getattr(data, source.key)()
        return image[0] if isinstance(image, tuple) else image  # stereo pair: left view
    if source.package == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(source.key)
    import matplotlib.cbook

    return _read_jpeg(Path(str(matplotlib.cbook.get_sample_data(source.key, asfileobj=False))))


def bundled_photo(name: str) -> np.ndarray:
    """One photograph of :data:`BUNDLED_PHOTOS` at its own size.

    Parameters
    ----------
    name
        One of :data:`BUNDLED_PHOTOS` (``"coffee"``, ``"china"``, ``"grace_hopper"``...).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.

    Raises
    ------
    PhotoDataError
        For an unknown name, or when the package holding the photo is not installed.
    """
    try:
        source = _BUNDLED[name]
    except KeyError:
        known = ", ".join(BUNDLED_PHOTOS)
        raise PhotoDataError(f"unknown bundled photo {name!r}; choose one of {known}") from None
    try:
        return np.asarray(_read_bundled(source), dtype=np.uint8)[..., :3]
    except ImportError as exc:
        package = _PIP_NAMES.get(source.package, source.package)
        raise PhotoDataError(
            f"photo {name!r} is shipped by {package}, which is not installed: pip install {package}"
        ) from exc


def _available_bundled() -> list[str]:
    """Names of the bundled photos whose package is installed (scikit-learn is optional)."""
    return [
        name
        for name, source in _BUNDLED.items()
        if source.package not in _OPTIONAL_PACKAGES
        or importlib.util.find_spec(source.package) is not None
    ]


def natural_photos(size: int = DEFAULT_PHOTO_SIZE) -> np.ndarray:
    """Reference natural images: the labelled ImageNet photos, then the bundled photos.

    Parameters
    ----------
    size
        Side of each square photo, in pixels.

    Returns
    -------
    numpy.ndarray
        ``(N, size, size, 3)`` uint8 RGB: the 20 photos of :func:`imagenet_photos`, then the
        :data:`BUNDLED_PHOTOS` in their order (``china`` and ``flower`` only when scikit-learn
        is installed): N is 28, or 26 without scikit-learn.

    Raises
    ------
    PhotoDataError
        When the foolbox wheel is not installed, or for a bad ``size``.
    """
    imagenet, _ = imagenet_photos(size)
    bundled = [square_photo(bundled_photo(name), size) for name in _available_bundled()]
    return np.concatenate([imagenet, np.stack(bundled)])

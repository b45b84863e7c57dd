"""The atlas's photo copies: photos read leniently (:mod:`maco_tf.models.images`), JPEGs written."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from maco_tf.core.limits import Limits
from maco_tf.files import write_atomically
from maco_tf.models import images

__all__ = ["open_rgb", "photo_size", "reduced_copy", "save_jpeg"]

JPEG_QUALITY = 85


def open_rgb(path: Path, channels: int = 3) -> Image.Image | None:
    """The photo as RGB (or grey with ``channels=1``), upright, or None if it cannot be read.

    Read by :func:`maco_tf.models.images.read_image` within the bounds of
    :meth:`Limits.from_environment <maco_tf.core.limits.Limits.from_environment>`: a file that
    is not regular, over the pixel bound or not decodable is None.
    """
    bounds = Limits.from_environment().image_bounds()
    try:
        return images.read_image(path, channels, what="example image", bounds=bounds)
    except images.ImageReadError:
        return None


def save_jpeg(path: Path, image: Image.Image) -> None:
    """Write a JPEG atomically (:func:`maco_tf.files.write_atomically`)."""
    write_atomically(path, lambda handle: image.save(handle, format="JPEG", quality=JPEG_QUALITY))


def photo_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, ``(0, 0)`` if it cannot be read."""
    try:
        return images.image_size(path, bounds=Limits.from_environment().image_bounds())
    except images.ImageReadError:
        return (0, 0)


def reduced_copy(source: Path, target: Path, side: int) -> bool:
    """Make ``target`` a JPEG of ``source`` fitted in ``side`` x ``side``, unless it is up to date.

    Returns
    -------
    readable
        False (writing nothing) if ``source`` cannot be read as an image.
    """
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return True
    image = open_rgb(source)
    if image is None:
        return False
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    save_jpeg(target, image)
    return True

"""Reading photos and writing the atlas's JPEG copies of them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from maco_tf.files import write_atomically

__all__ = ["image_size", "open_rgb", "reduced_copy", "save_jpeg"]

JPEG_QUALITY = 85


def open_rgb(path: Path) -> Image.Image | None:
    """The image as RGB (EXIF orientation applied), or None if it cannot be read."""
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def save_jpeg(path: Path, image: Image.Image) -> None:
    """Write a JPEG atomically (:func:`maco_tf.files.write_atomically`)."""
    write_atomically(path, lambda handle: image.save(handle, format="JPEG", quality=JPEG_QUALITY))


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, ``(0, 0)`` if it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
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

"""Tests for the offline reference photos: foolbox's labelled ImageNet photos and bundled ones."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import numpy as np
import pytest

from maco_tf.errors import MacoError
from maco_tf.models.zoo import photos
from maco_tf.models.zoo.photos import (
    BUNDLED_PHOTOS,
    FOOLBOX_INSTALL,
    PhotoDataError,
    bundled_photo,
    imagenet_photos,
    natural_photos,
    square_photo,
)


def test_imagenet_photos_are_labelled_squares() -> None:
    images, labels = imagenet_photos(64)
    assert images.shape == (20, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (20,) and labels.dtype == np.int64
    assert labels[0] == 243 and labels[-1] == 305  # imagenet_00_243.jpg ... imagenet_19_305.jpg
    assert ((labels >= 0) & (labels < 1000)).all()
    assert images.std(axis=(1, 2, 3)).min() > 10  # real photos, not blank


def test_foolbox_is_never_imported() -> None:
    imagenet_photos(32)
    assert "foolbox" not in sys.modules


def test_missing_foolbox_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(photos.importlib.metadata, "distribution", not_installed)
    with pytest.raises(PhotoDataError) as info:
        imagenet_photos()
    assert FOOLBOX_INSTALL in str(info.value)
    assert isinstance(info.value, MacoError)
    with pytest.raises(PhotoDataError, match="--no-deps foolbox"):
        natural_photos()


def test_natural_photos_gather_every_bundled_source() -> None:
    with_sklearn = importlib.util.find_spec("sklearn") is not None
    images = natural_photos(48)
    assert images.shape == (28 if with_sklearn else 26, 48, 48, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:20], imagenet_photos(48)[0])
    np.testing.assert_array_equal(images[-1], square_photo(bundled_photo("grace_hopper"), 48))


@pytest.mark.parametrize("name", BUNDLED_PHOTOS)
def test_bundled_photos_are_rgb(name: str) -> None:
    if name in ("china", "flower"):
        pytest.importorskip("sklearn")
    image = bundled_photo(name)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert min(image.shape[:2]) >= 256


def test_unknown_bundled_photo_lists_the_names() -> None:
    with pytest.raises(PhotoDataError, match="astronaut, chelsea"):
        bundled_photo("lena")


def test_square_photo_takes_the_centre() -> None:
    image = np.zeros((10, 30), dtype=np.uint8)
    image[:, 10:20] = 200  # the centre square is bright, the sides dark
    square = square_photo(image, 5)
    assert square.shape == (5, 5, 3)
    assert square.min() == 200


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_square_photo_refuses_bad_sizes(size: object) -> None:
    with pytest.raises(PhotoDataError, match="size must be a positive integer"):
        square_photo(np.zeros((4, 4, 3), np.uint8), size)

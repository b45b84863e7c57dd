"""Arrays into a model (:mod:`maco_tf.models.images.arrays`): unwrapping, batch checks, value
ranges, resizing, batched calls and photos of any size."""

import numpy as np
import pytest

from maco_tf.errors import InvalidSettingError
from maco_tf.models.images import (
    ModelInputError,
    as_images,
    center_crop,
    check_channels,
    map_range,
    prepare_batch,
    prepare_photos,
    prepared_batches,
    resize_images,
    resolve_ranges,
    run_batches,
    unwrap_model,
)


class _Loaded:
    """Stands in for a LoadedModel: a Keras model with its declared range and logits layer."""

    def __init__(self, model):
        self.model, self.values_range, self.logits_layer = model, [0, 255], "logits"


def test_unwrap_model_reads_what_a_loaded_model_declares(tiny_model):
    assert unwrap_model(tiny_model) == (tiny_model, None, None)
    assert unwrap_model(_Loaded(tiny_model)) == (tiny_model, (0.0, 255.0), "logits")
    with pytest.raises(ModelInputError, match="keras.Model or a maco_tf.LoadedModel, not str"):
        unwrap_model("model.keras")


def test_as_images_checks_the_batch_and_takes_a_visualization_range():
    class Vis:
        images = np.zeros((2, 4, 4, 3))
        values_range = (-1, 1)

    array, values_range = as_images(Vis(), "images", None)
    assert array.dtype == np.float32 and array.shape == (2, 4, 4, 3)
    assert values_range == (-1.0, 1.0)
    assert as_images(Vis(), "images", (0, 1))[1] == (0.0, 1.0)
    for bad, match in (
        (np.zeros((4, 4, 3)), "add a batch axis"),
        (np.zeros((0, 4, 4, 3)), "empty"),
        (np.zeros((1, 0, 4, 3)), "size 0"),
        (np.full((1, 2, 2, 3), np.nan), "NaN"),
    ):
        with pytest.raises(ModelInputError, match=match):
            as_images(bad, "images", None)


def test_check_channels_names_both_counts(tiny_model):
    check_channels(np.zeros((1, 8, 8, 3)), "images", tiny_model)
    with pytest.raises(ModelInputError, match="1 channel.* takes 3-channel"):
        check_channels(np.zeros((1, 8, 8, 1)), "images", tiny_model)


def test_ranges_default_to_each_other():
    assert resolve_ranges(None, None, None) == (None, None)
    assert resolve_ranges((0.0, 255.0), None, None) == ((0.0, 255.0), (0.0, 255.0))
    assert resolve_ranges(None, (0.0, 1.0), None) == ((0.0, 1.0), (0.0, 1.0))
    assert resolve_ranges((0.0, 255.0), (0.0, 1.0), (-1, 1)) == ((0.0, 1.0), (-1.0, 1.0))


def test_map_range_is_linear_and_keeps_unknown_ranges():
    values = np.array([0.0, 127.5, 255.0])
    np.testing.assert_allclose(map_range(values, (0, 255), (-1, 1)), [-1, 0, 1])
    assert map_range(values, None, (0, 1)).dtype == np.float32
    np.testing.assert_array_equal(map_range(values, (0, 255), (0, 255)), values)


def test_resize_keeps_constant_images_and_prepare_batch_fits_the_model(tiny_model):
    constant = np.full((2, 10, 14, 3), 0.25, np.float32)
    resized = resize_images(constant, (5, 7))
    assert resized.shape == (2, 5, 7, 3)
    np.testing.assert_allclose(resized, 0.25, atol=1e-6)
    height, width, _ = tiny_model.input_shape[1:]
    batch = prepare_batch(constant * 255, tiny_model, (0.0, 255.0), (0.0, 1.0))
    assert batch.shape == (2, height, width, 3)
    np.testing.assert_allclose(batch, 0.25, atol=1e-5)


def test_batches_cover_the_images_in_order(tiny_model):
    height, width, _ = tiny_model.input_shape[1:]
    images = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((1, height, width, 3))
    sizes = [len(b) for b in prepared_batches(images, tiny_model, (None, None), 2)]
    assert sizes == [2, 2, 1]
    means = run_batches(lambda x: x.mean(axis=(1, 2, 3)), images, tiny_model, (None, None), 2)
    np.testing.assert_allclose(means, np.arange(5))
    with pytest.raises(ModelInputError, match="batch_size"):
        list(prepared_batches(images, tiny_model, (None, None), 0))


def test_center_crop_keeps_the_middle_at_the_aspect():
    image = np.arange(6 * 10).reshape(6, 10)
    np.testing.assert_array_equal(center_crop(image, 1.0), image[:, 2:8])
    np.testing.assert_array_equal(center_crop(image, 10 / 3), image[1:4])


def test_prepare_photos_of_any_size_and_kind():
    grey = np.full((30, 60), 255, np.uint8)  # uint8: read as 0-255
    rgba = np.zeros((20, 20, 4), np.float32)  # floats: already in values_range
    batch = prepare_photos([grey, rgba], (8, 8, 3), (0.0, 1.0))
    assert batch.shape == (2, 8, 8, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(batch[1], 0.0, atol=1e-6)
    with pytest.raises(InvalidSettingError, match="no real image"):
        prepare_photos([], (8, 8, 3), (0.0, 1.0))
    with pytest.raises(InvalidSettingError, match="image 0 has 2 channels"):
        prepare_photos(np.zeros((1, 4, 4, 2)), (8, 8, 3), (0.0, 1.0))

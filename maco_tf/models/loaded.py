"""A loaded model and its input contract, and the errors of loading one.

Apart from :mod:`maco_tf.models.loading` so that the loaders of other sources
(:mod:`maco_tf.models.hub`) return the same record without importing the dispatcher that
calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras

from maco_tf.errors import MacoError
from maco_tf.models.zoo import ImageNetClasses

__all__ = ["LoadedModel", "ModelLoadError", "UnknownModelError"]


class UnknownModelError(MacoError):
    """The model name is neither a file, a folder, the zoo model nor a Keras application."""


class ModelLoadError(MacoError):
    """A model file or folder is missing, unreadable or not usable, or weights cannot be had."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for :func:`maco_tf.visualize`, with its preprocessing contract.

    Attributes
    ----------
    model
        The Keras model (single image input, fixed size).
    name
        Short name (``"efficientnet_lite0"``, ``"mobilenetv2_1.00_224"``, the file stem...).
    values_range
        Range of the input pixel values the model expects.
    input_size
        ``(height, width)`` of its input.
    logits_layer
        Layer (name or path) whose output are the class logits, or None if unknown.
    class_names
        ImageNet classes when the model classifies ImageNet, else None.
    source
        What was loaded: ``"zoo"``, ``"keras.applications"``, ``"file"`` or ``"savedmodel"``.
    identity
        A string identifying the weights (name and weights, or path, size and modification
        time): equal identities give equal images for equal settings.
    notes
        Changes made to the model while loading (softmax removed, output chosen...).
    range_reason
        Why ``values_range`` is believed (``"keras.applications ResNet50V2"``,
        ``"--values-range / values_range="``...).
    """

    model: keras.Model
    name: str
    values_range: tuple[float, float]
    input_size: tuple[int, int]
    logits_layer: str | None
    class_names: ImageNetClasses | None = None
    source: str = "zoo"
    identity: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    range_reason: str = ""

    def describe_range(self) -> str:
        """One line: ``input range [-1, 1]: keras.applications ResNet50V2``."""
        low, high = self.values_range
        reason = f": {self.range_reason}" if self.range_reason else ""
        return f"input range [{low:g}, {high:g}]{reason}"

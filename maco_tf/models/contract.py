"""The input contract of a model: which pixel values it expects, inferred and explained.

A model says nothing of the range of pixel values it was trained on; feeding ``[0, 255]`` to a
network that expects ``[-1, 1]`` makes every image wrong without an error. :func:`infer_contract`
reads it from the model itself, going in from its input (into a nested model when the first
layer is one), and at each level looking at:

1. the ``keras.applications`` model it is (:mod:`maco_tf.models.applications`: its name and a
   few of its layer names): ``resnet50v2`` or ``mobilenet*`` take ``[-1, 1]``; ``resnet50`` and
   ``vgg*`` take caffe input and ``densenet*`` torch input, for which a preprocessing layer is
   to be put in front so that they take RGB ``[0, 255]``; ``efficientnet*``, ``convnext*`` and
   ``mobilenetv3*`` take ``[0, 255]`` and normalise inside;
2. a preprocessing layer at its input: ``Rescaling`` (the range it maps onto ``[0, 1]`` or
   ``[-1, 1]``), ``Normalization`` (``[0, 255]`` or ``[0, 1]`` from its mean) or
   :class:`~maco_tf.models.applications.ImageNetPreprocessing`.

Otherwise it raises :class:`ModelContractError`, which names ``--values-range`` /
``values_range=``. An explicit range always wins over the inference (the callers' job).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from maco_tf.errors import MacoError
from maco_tf.models.applications import (
    APPLICATIONS,
    PREPROCESSING_RANGES,
    Application,
    ImageNetPreprocessing,
)

__all__ = [
    "USUAL_RANGES",
    "InputContract",
    "ModelContractError",
    "explicit_contract",
    "find_application",
    "infer_contract",
]

#: The ranges models usually take, for error messages.
USUAL_RANGES = "0,255 (most Keras models), -1,1 (MobileNet, ResNet V2, Inception) or 0,1"

_CANDIDATE_RANGES = ((0.0, 255.0), (0.0, 1.0), (-1.0, 1.0))
_NORMALISED_RANGES = ((0.0, 1.0), (-1.0, 1.0))


class ModelContractError(MacoError):
    """The pixel range a model expects cannot be inferred: give it explicitly."""


@dataclass(frozen=True)
class InputContract:
    """What a model's input expects, and why it is believed.

    Attributes
    ----------
    values_range
        Range of the pixel values to feed (after ``preprocessing``, if any, is put in front).
    reason
        Where it comes from: ``"keras.applications ResNet50V2"``, ``"Rescaling(scale=0.00392,
        offset=0) at the input"``, ``"--values-range / values_range="``.
    preprocessing
        ``"caffe"`` or ``"torch"`` when such a layer must be put in front of the model for it to
        take RGB ``values_range``; None otherwise.
    application
        The ``keras.applications`` model recognised, if any (its training size serves open
        input sizes).
    """

    values_range: tuple[float, float]
    reason: str
    preprocessing: str | None = None
    application: Application | None = None

    def describe(self) -> str:
        """One line for the start of a run: ``input range [-1, 1]: keras.applications ...``."""
        low, high = self.values_range
        return f"input range [{low:g}, {high:g}]: {self.reason}"


def explicit_contract(
    values_range: tuple[float, float], model: keras.Model | None = None
) -> InputContract:
    """The contract of an explicit ``values_range`` (the application is still recognised)."""
    application = None if model is None else find_application(model)
    return InputContract(values_range, "--values-range / values_range=", None, application)


def _layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _front(model: keras.Model) -> Iterator[tuple[keras.Model, object]]:
    """``(model, its first layer)``, then the same inside that layer while it is a model."""
    seen = 0
    while isinstance(model, keras.Model) and seen < 32:
        layers = _layers(model)
        if not layers:
            return
        yield model, layers[0]
        model, seen = layers[0], seen + 1


def _recognise(model: keras.Model) -> Application | None:
    names = {layer.name for layer in model.layers}
    return next((app for app in APPLICATIONS.values() if app.matches(model.name, names)), None)


def find_application(model: keras.Model) -> Application | None:
    """The ``keras.applications`` model that ``model`` is or starts with, if any.

    Parameters
    ----------
    model
        A Keras model.

    Returns
    -------
    application
        The recognised application (by name and layer names), or None.
    """
    for level, _ in _front(model):
        found = _recognise(level)
        if found is not None:
            return found
    return None


def _values(value: object) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64).reshape(-1)


def _close(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) <= 0.02 and abs(a[1] - b[1]) <= 0.02


def _rescaling_range(layer: keras.layers.Rescaling) -> tuple[float, float] | None:
    scale, offset = _values(layer.scale), _values(layer.offset)
    if scale.size == 0 or not np.all(scale > 0):
        return None
    for low, high in _CANDIDATE_RANGES:
        mapped = (float(np.mean(scale * low + offset)), float(np.mean(scale * high + offset)))
        if any(_close(mapped, target) for target in _NORMALISED_RANGES):
            return low, high
    return None


def _normalization_range(layer: keras.layers.Normalization) -> tuple[float, float] | None:
    try:
        mean = _values(layer.mean)
    except (AttributeError, TypeError, ValueError):
        return None
    if mean.size == 0 or not np.all(np.isfinite(mean)):
        return None
    if np.all((mean > 20) & (mean < 235)):
        return 0.0, 255.0
    if np.all((mean > 0.1) & (mean < 0.9)):
        return 0.0, 1.0
    return None


def _preprocessing(layer: object) -> tuple[tuple[float, float], str] | None:
    """The range a preprocessing layer at the input implies, and its description."""
    if isinstance(layer, ImageNetPreprocessing):
        return (0.0, 255.0), f"{getattr(layer, 'mode', 'ImageNet')} preprocessing layer"
    if isinstance(layer, keras.layers.Rescaling):
        found = _rescaling_range(layer)
        if found is not None:
            scale, offset = _values(layer.scale), _values(layer.offset)
            text = f"Rescaling(scale={np.mean(scale):.4g}, offset={np.mean(offset):.4g})"
            return found, text
    if isinstance(layer, keras.layers.Normalization):
        found = _normalization_range(layer)
        if found is not None:
            return found, "Normalization layer with mean " + (
                "in 0-255" if found[1] > 1 else "in 0-1"
            )
    return None


def _from_application(app: Application, own: tuple | None, where: str) -> InputContract:
    """The contract of a recognised application, given the preprocessing layer at its input."""
    name = f"keras.applications {app.constructor}"
    if own is not None:
        inside = "preprocessing inside" if app.preprocessing == "raw" else f"{own[1]} in front"
        return InputContract(own[0], f"{name} ({inside})", None, app)
    convention = app.preprocessing if app.preprocessing != "raw" else app.without_own
    if convention in ("caffe", "torch"):
        reason = f"{name} ({convention} preprocessing layer put in front of {where!r})"
        return InputContract(PREPROCESSING_RANGES[convention], reason, convention, app)
    suffix = " (built without its own preprocessing)" if app.preprocessing == "raw" else ""
    return InputContract(PREPROCESSING_RANGES[convention], f"{name}{suffix}", None, app)


def infer_contract(model: keras.Model) -> InputContract:
    """Infer the pixel range a model expects from its structure (see the module docstring).

    Parameters
    ----------
    model
        A Keras model with defined inputs (functional or Sequential, possibly nesting others).

    Returns
    -------
    contract
        The range, its reason, and the preprocessing layer to put in front if any.

    Raises
    ------
    ModelContractError
        When neither a known application nor a preprocessing layer tells the range.
    """
    for level, first in _front(model):
        app = _recognise(level)
        own = _preprocessing(first)
        if app is not None:
            return _from_application(app, own, level.name)
        if own is not None:
            where = "the input" if level is model else f"the input of {level.name!r}"
            return InputContract(own[0], f"{own[1]} at {where}")
    raise ModelContractError(
        f"cannot tell which pixel values model {model.name!r} expects (no known "
        f"keras.applications model, no Rescaling or Normalization layer at its input): give "
        f"--values-range LOW,HIGH (Python: values_range=(low, high)), usually {USUAL_RANGES}"
    )

"""Resource bounds of a run, checked before anything is allocated.

See :class:`Limits`; :class:`~maco_tf.RunConfig` checks its knobs against them when built, and
:func:`~maco_tf.visualize` the memory of a compiled batch once the model's input is known.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from maco_tf.checks import check_int
from maco_tf.errors import InvalidSettingError
from maco_tf.models.images import ImageBounds

__all__ = ["Limits", "held_activation_values"]

#: Bytes per float32 value.
_FLOAT_BYTES = 4
#: What a compiled loop holds whatever its size (traced graph, kernels, per-thread buffers):
#: measured 48 to 266 MiB above the loaded model (tiny CNN, EfficientNet-Lite0; it varies with
#: the number of threads).
RUNTIME_BYTES = 384 * 2**20
#: View-sized float32 tensors a step holds per view: the crop, its resized and noisy copies.
VIEW_COPIES = 3
#: Image-sized float32 tensors a step holds per image: the parameters and their two optimizer
#: slots, the complex spectrum, each synthesis step (inverse FFT, colour mixing, squashing),
#: their gradients, the transparency; measured 21 at 2048 x 2048 (tiny CNN, 8 crops).
IMAGE_TENSORS = 24
#: Layers whose gradient needs none of their inputs or outputs kept (affine or shape-only).
_KEEP_NOTHING = frozenset(
    {
        "InputLayer", "BatchNormalization", "Add", "Subtract", "Average", "Rescaling",
        "Normalization", "Reshape", "Flatten", "Dropout", "SpatialDropout2D", "ZeroPadding2D",
        "Cropping2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "AveragePooling2D",
        "Concatenate", "Permute", "Identity",
    }
)  # fmt: skip
#: Layers whose gradient reads their output (ReLU and the like): the output is kept.
_KEEP_OUTPUT = frozenset({"ReLU", "Softmax", "ELU", "LeakyReLU"})
#: Layers that are linear in their input (weights aside): their inputs are kept.
_KEEP_INPUT = frozenset(
    {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "EinsumDense"}
)


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidSettingError(
            f"environment variable {name}={text!r} is not an integer; unset it or give a "
            f"positive integer"
        ) from None
    return check_int(value, name, 1)


@dataclass(frozen=True)
class Limits:
    """Resource bounds a run is checked against before anything is allocated.

    They refuse settings that would exhaust a machine's memory or run for days (an image side
    of 100,000 pixels, 10**12 steps) with a clear message instead of an out-of-memory crash.
    A big machine raises them explicitly, in Python with ``RunConfig(..., limits=Limits(...))``
    or, for the command line too, with the environment variables ``MACO_TF_<FIELD>``
    (``MACO_TF_MAX_SIZE``, ``MACO_TF_MAX_IMAGE_PIXELS``...; read by :meth:`from_environment`,
    the default of :attr:`RunConfig.limits`).

    Attributes
    ----------
    max_size
        Largest image side, in pixels.
    max_steps
        Largest number of optimisation steps.
    max_batch_memory
        Largest estimate, in bytes, of what one compiled batch holds at a step: the views fed
        to the model (``batch_size * crops`` views at the model's input size) and the
        image-sized tensors (parameters, images, gradients, transparency, optimizer slots) of
        its images. The model's own activations come on top.
    max_image_pixels
        Largest ``width * height`` of a photo read (``--image``, ``--examples``, photo
        loaders), checked from its header before decoding.
    max_examples
        Largest number of photos of an ``--examples`` folder (every command).
    max_example_pixels
        Largest sum of the declared pixels of an ``--examples`` folder's photos.
    """

    max_size: int = 4096
    max_steps: int = 100_000
    max_batch_memory: int = 4 * 2**30
    max_image_pixels: int = ImageBounds.max_image_pixels
    max_examples: int = ImageBounds.max_examples
    max_example_pixels: int = ImageBounds.max_example_pixels

    def __post_init__(self) -> None:
        for name in _FIELDS:
            check_int(getattr(self, name), f"Limits.{name}", 1)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The default limits, each overridden by its environment variable when set.

        Parameters
        ----------
        environ
            Where to read ``MACO_TF_MAX_SIZE``, ``MACO_TF_MAX_STEPS``,
            ``MACO_TF_MAX_BATCH_MEMORY`` (bytes), ``MACO_TF_MAX_IMAGE_PIXELS``,
            ``MACO_TF_MAX_EXAMPLES`` and ``MACO_TF_MAX_EXAMPLE_PIXELS``; default ``os.environ``.

        Returns
        -------
        limits
            The bounds.

        Raises
        ------
        InvalidSettingError
            When a variable is set to something other than a positive integer.
        """
        environ = os.environ if environ is None else environ
        return cls(
            **{
                name: _env_int(environ, f"MACO_TF_{name.upper()}", getattr(cls, name))
                for name in _FIELDS
            }
        )

    def image_bounds(self) -> ImageBounds:
        """The bounds of the photo readers (:mod:`maco_tf.models.images`)."""
        return ImageBounds(self.max_image_pixels, self.max_examples, self.max_example_pixels)

    def refusal(self, knob: str, value: object, limit: str) -> InvalidSettingError:
        """The error for ``knob=value`` over the bound ``limit`` (a field name of this class)."""
        variable = f"MACO_TF_{limit.upper()}"
        return InvalidSettingError(
            f"{knob}={value} is over the limit {limit}={getattr(self, limit)}; lower {knob}, "
            f"or raise the limit with RunConfig(limits=Limits({limit}=...)) or the environment "
            f"variable {variable}"
        )

    def check_batch_memory(
        self,
        batch_size: int,
        crops: int,
        input_shape: Sequence[int],
        image_shape: Sequence[int],
        activation_values: int = 0,
    ) -> int:
        """Estimate what one compiled batch holds at a step and refuse it over the bound.

        The estimate covers what TensorFlow holds above the loaded model: the compiled loop
        (:data:`RUNTIME_BYTES`), per view the activations the model keeps for the gradient
        (``activation_values``) and :data:`VIEW_COPIES` copies of the view, and per image
        :data:`IMAGE_TENSORS` image-sized tensors (parameters, spectrum, synthesis, their
        gradients, optimizer slots). Measured peaks stay below it (``tests/test_limits.py``).

        Parameters
        ----------
        batch_size
            Images optimised together.
        crops
            Views per image and step (0 counts as one: the whole image).
        input_shape
            ``(height, width, channels)`` of the model input (the views' shape).
        image_shape
            ``(height, width, channels)`` of the images.
        activation_values
            float32 values the model keeps per view for the gradient
            (:func:`held_activation_values`); 0 leaves the model out.

        Returns
        -------
        estimate
            Bytes.

        Raises
        ------
        InvalidSettingError
            When the estimate is over :attr:`max_batch_memory`; the message gives the
            estimate, the knobs that make it and how to raise the limit.
        """
        estimate = batch_memory(batch_size, crops, input_shape, image_shape, activation_values)
        if estimate > self.max_batch_memory:
            raise InvalidSettingError(
                f"one batch would hold about {estimate / 2**30:.1f} GiB (batch_size={batch_size} "
                f"x crops={max(crops, 1)} views of {'x'.join(map(str, input_shape))} and "
                f"{batch_size} images of {'x'.join(map(str, image_shape))}), over the limit "
                f"max_batch_memory={self.max_batch_memory} bytes; lower crops, size or "
                f"batch_size (--crops, --size, --batch-size), or raise the limit with "
                f"RunConfig(limits=Limits(max_batch_memory=...)) or the environment variable "
                f"MACO_TF_MAX_BATCH_MEMORY"
            )
        return estimate

    def images_per_batch(
        self,
        wanted: int,
        crops: int,
        input_shape: Sequence[int],
        image_shape: Sequence[int],
        activation_values: int = 0,
        multiple: int = 1,
    ) -> int:
        """The largest batch size up to ``wanted`` (a multiple of ``multiple``) within the bound.

        For a batch size chosen automatically: it shrinks to fit rather than being refused.
        ``multiple`` when even that does not fit (:meth:`check_batch_memory` then refuses it).
        """
        size = max(multiple, wanted - wanted % multiple)
        while size > multiple and (
            batch_memory(size, crops, input_shape, image_shape, activation_values)
            > self.max_batch_memory
        ):
            size -= multiple
        return size


def batch_memory(
    batch_size: int,
    crops: int,
    input_shape: Sequence[int],
    image_shape: Sequence[int],
    activation_values: int = 0,
) -> int:
    """Bytes one compiled batch holds at a step (see :meth:`Limits.check_batch_memory`)."""
    views = batch_size * max(crops, 1)
    view_values = activation_values + VIEW_COPIES * math.prod(input_shape)
    image_values = IMAGE_TENSORS * math.prod(image_shape)
    return RUNTIME_BYTES + (views * view_values + batch_size * image_values) * _FLOAT_BYTES


def _layers(model: object) -> list[object]:
    """The layers of a Keras model, those of nested models included (duck-typed: no Keras)."""
    found = []
    for layer in getattr(model, "layers", ()):
        found.extend(_layers(layer) if hasattr(layer, "layers") else [layer])
    return found


def _tensors(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return [tensor for item in value for tensor in _tensors(item)]
    if isinstance(value, dict):
        return [tensor for item in value.values() for tensor in _tensors(item)]
    return [value] if hasattr(value, "shape") else []


def _values(tensor: object) -> int:
    shape = tuple(tensor.shape)[1:]
    return math.prod(shape) if all(isinstance(d, int) for d in shape) else 0


def held_activation_values(model: object) -> int:
    """float32 values per example a Keras model keeps for its gradient, and its largest output.

    Counted once per tensor: the inputs of linear layers (convolutions, dense), the outputs of
    ReLU-like layers, both for other layers (activations, custom layers), none for affine or
    shape-only layers (batch normalisation, additions, reshapes); plus twice the largest layer
    output (what a step holds transiently: an output being made and a gradient). An upper
    bound of what TensorFlow holds (measured: 0.35 x the sum of the layer outputs of
    EfficientNet-Lite0, against 0.46 x counted here).

    Parameters
    ----------
    model
        A built Keras model (functional or sequential).

    Returns
    -------
    values
        float32 values per example (per view).
    """
    kept: dict[int, int] = {}
    largest = 0
    for layer in _layers(model):
        name = type(layer).__name__
        try:
            inputs, outputs = _tensors(layer.input), _tensors(layer.output)
        except (AttributeError, ValueError, TypeError):
            continue
        largest = max([largest, *map(_values, outputs)])
        if name in _KEEP_NOTHING:
            continue
        linear = getattr(getattr(layer, "activation", None), "__name__", "linear") == "linear"
        held = []
        if name not in _KEEP_OUTPUT:
            held += inputs
        if name not in _KEEP_INPUT or not linear:
            held += outputs
        for tensor in held:
            kept[id(tensor)] = _values(tensor)
    return sum(kept.values()) + 2 * largest


#: The bounds, each read from the environment variable ``MACO_TF_<NAME>``.
_FIELDS = tuple(field.name for field in dataclasses.fields(Limits))

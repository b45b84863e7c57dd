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

__all__ = ["Limits"]

#: Bytes per float32 value.
_FLOAT_BYTES = 4
#: Image-sized float32 tensors a batch holds per image: parameters (or their image), the
#: rendered image, its gradient, the transparency and two optimizer slots.
_IMAGE_TENSORS = 6


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
    ) -> int:
        """Estimate what one compiled batch holds at a step and refuse it over the bound.

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
        views = batch_size * max(crops, 1)
        view_bytes = views * math.prod(input_shape) * _FLOAT_BYTES
        image_bytes = batch_size * _IMAGE_TENSORS * math.prod(image_shape) * _FLOAT_BYTES
        estimate = view_bytes + image_bytes
        if estimate > self.max_batch_memory:
            raise InvalidSettingError(
                f"one batch would hold about {estimate / 2**30:.1f} GiB (batch_size={batch_size} "
                f"x crops={max(crops, 1)} views of {'x'.join(map(str, input_shape))} and "
                f"{batch_size} images of {'x'.join(map(str, image_shape))}), over the limit "
                f"max_batch_memory={self.max_batch_memory} bytes; lower crops, size or "
                f"batch_size, or raise the limit with RunConfig(limits=Limits("
                f"max_batch_memory=...)) or the environment variable MACO_TF_MAX_BATCH_MEMORY"
            )
        return estimate


#: The bounds, each read from the environment variable ``MACO_TF_<NAME>``.
_FIELDS = tuple(field.name for field in dataclasses.fields(Limits))

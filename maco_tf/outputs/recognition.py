"""Robust recognition: whether a judge still sees the class once invisible detail is removed.

A classifier can give its class to a pattern that a person sees as grey noise: pixel-space
ascent on one network makes such patterns, and they transfer to networks of the same family.
What such patterns rely on is mostly detail people do not see or do not rely on: energy at the
highest frequencies, the exact pixel grid, the fine structure JPEG discards. Robust recognition
removes it before judging: each image is degraded, then classified as
:func:`~maco_tf.outputs.metrics.self_recognition` does (top-1, top-5, probability of the
target).

Degradations are named by a kind and a number (:data:`DEFAULT_DEGRADATIONS`):

* ``lowpass<s>``: a low-pass round trip; the image is resized (bilinear, antialiased) so that
  its longer side is ``s`` pixels, then back to its size (bilinear). ``lowpass64`` keeps what
  a 64-pixel thumbnail shows. Images whose longer side is at most ``s`` are left as they are;
* ``rotate<d>``: a rotation by ``d`` degrees about the image centre (bilinear, edges
  reflected): the pixel grid moves under the pattern;
* ``jpeg<q>``: a JPEG round trip at quality ``q`` (1 to 100; 4:2:0 chroma), on the image
  quantised to 8 bits over its ``values_range``.

The summary (:attr:`RobustRecognition.top1_rate`, "robust top-1") is the mean over the
degradations of their top-1 rates; the undegraded scores are kept apart
(:attr:`RobustRecognition.plain`).

Input conventions and errors are those of :mod:`maco_tf.outputs.metrics`: a batch
``(N, H, W, C)`` or a :class:`~maco_tf.Visualization`, ``values_range`` the images' range
(default: the Visualization's, else the model's), class indices per image or one for all,
bad input raises :data:`~maco_tf.outputs.features.MetricInputError`.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maco_tf.models.images import (
    DEFAULT_BATCH_SIZE,
    ImagesLike,
    ModelLike,
    as_images,
    unwrap_model,
)
from maco_tf.outputs.features import MetricInputError
from maco_tf.outputs.judges import default_judge
from maco_tf.outputs.metrics import RecognitionScores, self_recognition

__all__ = [
    "DEFAULT_DEGRADATIONS",
    "RobustRecognition",
    "degrade",
    "robust_recognition",
]

#: The degradations of :func:`robust_recognition` unless others are named: low-pass round trips
#: to 64 and 112 pixels, a 10-degree rotation, JPEG at quality 50.
DEFAULT_DEGRADATIONS = ("lowpass64", "lowpass112", "rotate10", "jpeg50")

_NAME = re.compile(r"(lowpass|rotate|jpeg)(\d+)")
_LIMITS = {"lowpass": (2, 100_000), "rotate": (1, 180), "jpeg": (1, 100)}
_KINDS = "lowpass<side px>, rotate<degrees>, jpeg<quality>"


@dataclass(frozen=True)
class RobustRecognition:
    """How one model classifies a batch of images, as given and after each degradation.

    Attributes
    ----------
    plain
        Scores on the images as given (:func:`~maco_tf.outputs.metrics.self_recognition`).
    degraded
        ``{degradation name: scores}`` in the order the degradations were given.
    """

    plain: RecognitionScores
    degraded: dict[str, RecognitionScores]

    def __len__(self) -> int:
        return len(self.plain)

    @property
    def top1_rate(self) -> float:
        """Robust top-1: mean over the degradations of the fraction of images ranked top-1."""
        return float(np.mean([scores.top1_rate for scores in self.degraded.values()]))

    def topk_rate(self, k: int) -> float:
        """Mean over the degradations of the fraction of images whose target is in the top ``k``."""
        return float(np.mean([scores.topk_rate(k) for scores in self.degraded.values()]))

    @property
    def mean_probability(self) -> float:
        """Mean over the degradations of the mean softmax probability of the target."""
        return float(np.mean([scores.mean_probability for scores in self.degraded.values()]))

    def summary(self) -> dict[str, float]:
        """Flat scores, as ``{name: value}``.

        ``plain_top1``, ``plain_top5``, ``plain_p``, the same three per degradation
        (``lowpass64_top1``...), and ``robust_top1``, ``robust_top5``, ``robust_p`` (their
        means over the degradations).
        """
        parts = {"plain": self.plain, **self.degraded}
        flat: dict[str, float] = {}
        for name, scores in parts.items():
            flat[f"{name}_top1"] = scores.top1_rate
            flat[f"{name}_top5"] = scores.topk_rate(5)
            flat[f"{name}_p"] = scores.mean_probability
        flat["robust_top1"] = self.top1_rate
        flat["robust_top5"] = self.topk_rate(5)
        flat["robust_p"] = self.mean_probability
        return flat


# ---------------------------------------------------------------------------- degradations


def _parse(degradation: object) -> tuple[str, int]:
    """``(kind, number)`` of a degradation name, or MetricInputError."""
    match = _NAME.fullmatch(degradation) if isinstance(degradation, str) else None
    if match is None:
        raise MetricInputError(
            f"unknown degradation {degradation!r} in degradations; name one as {_KINDS} "
            f"(e.g. {', '.join(DEFAULT_DEGRADATIONS)})"
        )
    kind, number = match.group(1), int(match.group(2))
    low, high = _LIMITS[kind]
    if not low <= number <= high:
        raise MetricInputError(
            f"degradation {degradation!r}: the {kind} number must be between {low} and {high}"
        )
    return kind, number


def _lowpass(images: np.ndarray, side: int) -> np.ndarray:
    import tensorflow as tf

    height, width = images.shape[1:3]
    if max(height, width) <= side:
        return images
    scale = side / max(height, width)
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    down = tf.image.resize(images, small, method="bilinear", antialias=True)
    return tf.image.resize(down, (height, width), method="bilinear").numpy()


def _rotate(images: np.ndarray, degrees: int) -> np.ndarray:
    import keras

    height, width = images.shape[1:3]
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    # output (x, y) samples the input at the rotated position (keras' projective convention)
    transform = [
        cos,
        -sin,
        centre_x - cos * centre_x + sin * centre_y,
        sin,
        cos,
        centre_y - sin * centre_x - cos * centre_y,
        0.0,
        0.0,
    ]
    rotated = keras.ops.image.affine_transform(
        images,
        np.tile(np.asarray(transform, np.float32), (images.shape[0], 1)),
        interpolation="bilinear",
        fill_mode="reflect",
        data_format="channels_last",
    )
    return keras.ops.convert_to_numpy(rotated)


def _jpeg(
    images: np.ndarray, quality: int, values_range: tuple[float, float] | None, name: str
) -> np.ndarray:
    from PIL import Image

    if values_range is None:
        raise MetricInputError(
            f"degradation {name!r} quantises to 8 bits and needs the images' range: give "
            f"values_range (or a model with a declared range)"
        )
    channels = images.shape[-1]
    if channels not in (1, 3):
        raise MetricInputError(
            f"degradation {name!r} needs grey or RGB images; got {channels} channels"
        )
    low, high = values_range
    pixels = np.clip(np.rint((images - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)
    out = np.empty(images.shape, np.float32)
    for index, image in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if channels == 1 else image).save(
            buffer, format="JPEG", quality=quality
        )
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32)
        out[index] = decoded.reshape(image.shape)
    return out / 255.0 * (high - low) + low


def degrade(
    images: ImagesLike, degradation: str, values_range: Sequence[float] | None = None
) -> np.ndarray:
    """One degradation of a batch of images, at their size and in their range.

    Parameters
    ----------
    images
        ``(N, H, W, C)`` images, or a :class:`~maco_tf.Visualization`.
    degradation
        ``lowpass<s>``, ``rotate<d>`` or ``jpeg<q>`` (see the module docstring).
    values_range
        Range of ``images``; default the Visualization's. Needed by ``jpeg<q>`` only.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W, C)`` float32, same range (JPEG values are quantised to 8 bits of it).

    Raises
    ------
    MetricInputError
        For bad images, an unknown degradation or one whose number is out of range, or a JPEG
        round trip without ``values_range`` or on images that are neither grey nor RGB.
    """
    array, source = as_images(images, "images", values_range)
    kind, number = _parse(degradation)
    if kind == "lowpass":
        return _lowpass(array, number).astype(np.float32, copy=False)
    if kind == "rotate":
        return _rotate(array, number).astype(np.float32, copy=False)
    return _jpeg(array, number, source, degradation)


# ----------------------------------------------------------------------------- recognition


def _check_degradations(degradations: Sequence[str]) -> list[str]:
    if isinstance(degradations, str):
        degradations = [degradations]
    names = list(degradations)
    if not names:
        raise MetricInputError("degradations is empty; name at least one (e.g. 'lowpass64')")
    for name in names:
        _parse(name)
    if len(set(names)) != len(names):
        raise MetricInputError(f"degradations names one twice: {names}")
    return names


def robust_recognition(
    images: ImagesLike,
    target_classes: int | Sequence[int],
    model: ModelLike | None = None,
    values_range: Sequence[float] | None = None,
    *,
    degradations: Sequence[str] = DEFAULT_DEGRADATIONS,
    model_range: Sequence[float] | None = None,
    from_logits: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RobustRecognition:
    """Whether a judge sees the class in the images once invisible detail is removed.

    Each image is scored as given, then after each degradation (at its own size, before the
    judge resizes it to its input), as :func:`~maco_tf.outputs.metrics.self_recognition`.

    Parameters
    ----------
    images
        ``(N, H, W, C)`` images (or a :class:`~maco_tf.Visualization`).
    target_classes
        One class index per image, or one int for all.
    model
        The judge: a Keras classifier or a :class:`~maco_tf.LoadedModel`; default
        :func:`~maco_tf.outputs.judges.default_judge` (EfficientNet-Lite1, offline zoo).
    values_range
        Range of ``images``; default: the Visualization's, else the model's.
    degradations
        Names of the degradations (see the module docstring); default
        :data:`DEFAULT_DEGRADATIONS`.
    model_range
        Range the model expects; default: the LoadedModel's, else ``values_range``.
    from_logits
        The model outputs logits (softmax applied for the probability); False: probabilities.
    batch_size
        Images per forward pass.

    Returns
    -------
    RobustRecognition
        ``plain`` and ``degraded`` scores; ``top1_rate`` (robust top-1), ``summary()``.

    Raises
    ------
    MetricInputError
        For bad images, classes or degradations (see :func:`degrade`), or a model that is
        neither a Keras model nor a LoadedModel.
    """
    names = _check_degradations(degradations)
    if model is None:
        model = default_judge()
    array, source = as_images(images, "images", values_range)
    _, declared, _ = unwrap_model(model)
    if source is None:  # the images are in the model's range
        source = tuple(model_range) if model_range is not None else declared

    def judge(batch: np.ndarray) -> RecognitionScores:
        return self_recognition(
            batch,
            target_classes,
            model,
            source,
            model_range=model_range,
            from_logits=from_logits,
            batch_size=batch_size,
        )

    plain = judge(array)  # checks classes, channels and the model before any degradation
    degraded = {name: judge(degrade(array, name, source)) for name in names}
    return RobustRecognition(plain=plain, degraded=degraded)

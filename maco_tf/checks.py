"""Checks of user input shared by every layer: integers, value ranges, image batches.

Each check returns the value in its canonical type or raises
:class:`~maco_tf.errors.InvalidSettingError` with a message that names the setting, what was
given and what is expected.
"""

from __future__ import annotations

import math

import numpy as np

from maco_tf.errors import InvalidSettingError

__all__ = [
    "FLOAT32_MAX",
    "as_float32",
    "as_image_batch",
    "check_int",
    "check_values_range",
    "is_finite_number",
]

#: Largest float32 magnitude: the compiled loop computes in float32, so a larger number (a
#: range, a weight, a penalty, a noise level) would become infinity and every value NaN.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``; booleans and non-integers are refused.

    Parameters
    ----------
    value
        What the user gave.
    name
        The setting's name, for the message.
    minimum
        Smallest valid value.

    Returns
    -------
    value
        A Python int.

    Raises
    ------
    InvalidSettingError
        For a non-integer (floats included) or a value below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidSettingError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_values_range(values_range: object, name: str = "values_range") -> tuple[float, float]:
    """``(low, high)`` as two finite floats with ``low < high``.

    Parameters
    ----------
    values_range
        Two numbers, e.g. ``(-1, 1)`` or ``[0, 255]``.
    name
        The setting's name, for the message.

    Returns
    -------
    values_range
        ``(low, high)`` floats.

    Raises
    ------
    InvalidSettingError
        When it is not two numbers, not finite in float32 (the bounds and their difference:
        images are mapped through ``high - low``), empty or reversed.
    """
    try:
        low, high = (float(v) for v in values_range)
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(
            f"{name} must be two numbers (low, high), e.g. (-1, 1); got {values_range!r}"
        ) from exc
    if not (is_finite_number(low) and is_finite_number(high) and is_finite_number(high - low)):
        raise InvalidSettingError(
            f"{name} must be finite in float32 (both bounds and their difference at most "
            f"{FLOAT32_MAX:.3g} in magnitude); got {values_range!r}"
        )
    if low == high:
        raise InvalidSettingError(f"{name} {values_range!r} is empty; give low < high")
    if low > high:
        raise InvalidSettingError(
            f"{name} {values_range!r} is reversed; give (low, high), e.g. ({high:g}, {low:g})"
        )
    return low, high


def is_finite_number(value: object) -> bool:
    """True when ``value`` converts to a float that is finite in float32.

    The compiled loop computes in float32: a number above :data:`FLOAT32_MAX` in magnitude
    (``1e39``, ``1e308``) is infinite there. Booleans convert too: check them first.
    """
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return math.isfinite(number) and abs(number) <= FLOAT32_MAX


def as_float32(values: object, name: str) -> np.ndarray:
    """``values`` as a float32 array, refused in one line unless every value is finite there.

    Parameters
    ----------
    values
        A number or an array of numbers.
    name
        The setting's name, for the message.

    Returns
    -------
    values
        The float32 array.

    Raises
    ------
    InvalidSettingError
        For values that are not numbers, NaN, or infinite in float32 (over
        :data:`FLOAT32_MAX` in magnitude, such as ``1e308``).
    """
    try:
        with np.errstate(over="ignore"):  # overflow to inf is what is refused below
            array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(f"{name} must be numbers; got {values!r} ({exc})") from None
    if not np.all(np.isfinite(array)):
        raise InvalidSettingError(
            f"{name} contains NaN or infinite values (in float32, whose largest magnitude is "
            f"{FLOAT32_MAX:.3g})"
        )
    return array


def as_image_batch(array: np.ndarray, error: type[Exception], message: str) -> np.ndarray:
    """``array`` as a batch ``(N, H, W, C)``: a single image ``(H, W, C)`` gets a batch axis.

    Parameters
    ----------
    array
        An image or a batch of images.
    error
        The exception class to raise for another rank.
    message
        The start of its message; the array's shape is appended.

    Returns
    -------
    batch
        ``array`` itself (4 axes) or ``array[None]`` (3 axes).

    Raises
    ------
    Exception
        ``error(f"{message} {array.shape}")`` when ``array`` has neither 3 nor 4 axes.
    """
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise error(f"{message} {array.shape}")
    return array

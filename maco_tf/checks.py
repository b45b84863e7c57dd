"""Checks of user settings shared by every layer: integers and value ranges.

Each check returns the value in its canonical type or raises
:class:`~maco_tf.errors.InvalidSettingError` with a message that names the setting, what was
given and what is expected.
"""

from __future__ import annotations

import math

import numpy as np

from maco_tf.errors import InvalidSettingError

__all__ = ["check_int", "check_values_range", "is_finite_number"]


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
        When it is not two numbers, not finite, empty or reversed.
    """
    try:
        low, high = (float(v) for v in values_range)
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(
            f"{name} must be two numbers (low, high), e.g. (-1, 1); got {values_range!r}"
        ) from exc
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidSettingError(f"{name} must be finite; got {values_range!r}")
    if low == high:
        raise InvalidSettingError(f"{name} {values_range!r} is empty; give low < high")
    if low > high:
        raise InvalidSettingError(
            f"{name} {values_range!r} is reversed; give (low, high), e.g. ({high:g}, {low:g})"
        )
    return low, high


def is_finite_number(value: object) -> bool:
    """True when ``value`` converts to a finite float (booleans included: check them first)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False

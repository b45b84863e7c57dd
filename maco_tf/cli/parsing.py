"""Argument types of the ``maco-tf`` flags: each turns a text into a value or an argparse error."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["box_sizes", "int_list", "noise_level", "positive_int", "shard", "values_range"]


def positive_int(minimum: int) -> Callable[[str], int]:
    """A parser of integers ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def int_list(text: str) -> list[int]:
    """``"0,3,10-12"`` -> ``[0, 3, 10, 11, 12]``."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        try:
            if sep and low:
                values.extend(range(int(low), int(high) + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated indices or ranges like 0,3,10-12; got {text!r}"
            ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"empty index list {text!r}")
    return values


def noise_level(text: str) -> float:
    """``--noise``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.08, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def box_sizes(text: str) -> tuple[float, float]:
    """``--box-size``: ``START,END``, both in ``(0, 1]``."""
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START,END such as 1,0.3; got {text!r}"
        ) from None
    if not (0 < start <= 1 and 0 < end <= 1):
        raise argparse.ArgumentTypeError(f"crop sizes must lie in (0, 1]; got {text!r}")
    return start, end


def values_range(text: str) -> tuple[float, float]:
    """``--values-range``: ``LOW,HIGH``, finite, ``LOW < HIGH``."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 0,255; got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise argparse.ArgumentTypeError(f"expected finite LOW < HIGH; got {text!r}")
    return low, high


def shard(text: str) -> tuple[int, int]:
    """``--shard``: ``"1/4"`` -> ``(1, 4)``; requires ``0 <= I < N``."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4; got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N; got {text!r}")
    return i, n

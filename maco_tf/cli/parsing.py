"""Argument types of the ``maco-tf`` flags: each turns a text into a value or an argparse error."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence

from maco_tf.checks import FLOAT32_MAX, check_values_range, is_finite_number
from maco_tf.errors import InvalidSettingError
from maco_tf.runs.index_lists import IndexListError, parse_indices

__all__ = [
    "box_sizes",
    "int_list",
    "join_negative_values",
    "non_negative_number",
    "positive_int",
    "shard",
    "value_flags",
    "values_range",
]

#: A command-line word that is a value starting with a minus sign (``-1,1``, ``-.5``, ``-3``).
_NEGATIVE_VALUE_RE = re.compile(r"-\.?\d")


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
    """``"0,3,10-12"`` -> ``[0, 3, 10, 11, 12]``.

    See :func:`maco_tf.runs.index_lists.parse_indices`.
    """
    try:
        return parse_indices(text)
    except IndexListError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _finite_number(text: str, strictly_positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.08, got {text!r}") from None
    if not is_finite_number(value) or value < 0 or (strictly_positive and value == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise argparse.ArgumentTypeError(
            f"expected a finite number {bound} (at most {FLOAT32_MAX:.3g}, the float32 "
            f"limit), got {text!r}"
        )
    return value


def non_negative_number(text: str) -> float:
    """``--noise``, ``--penalty``: a finite number >= 0."""
    return _finite_number(text, strictly_positive=False)


def positive_number(text: str) -> float:
    """``--phase-spread``: a finite number > 0."""
    return _finite_number(text, strictly_positive=True)


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
    if not low < high:
        raise argparse.ArgumentTypeError(f"expected finite LOW < HIGH; got {text!r}")
    try:
        return check_values_range((low, high), "--values-range")
    except InvalidSettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def value_flags(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings of ``parser`` and its sub-commands that take exactly one value."""
    flags: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                flags |= value_flags(command)
        elif action.option_strings and action.nargs is None:
            flags.update(action.option_strings)
    return flags


def join_negative_values(argv: Sequence[str], flags: set[str]) -> list[str]:
    """``[..., "--values-range", "-1,1", ...]`` -> ``[..., "--values-range=-1,1", ...]``.

    argparse reads a word such as ``-1,1`` after a flag as another flag ("expected one
    argument"); a value of one of ``flags`` that starts with a minus sign and a digit is joined
    to its flag, which argparse then reads as the value. Words after ``--`` are left alone.
    """
    words = list(argv)
    joined: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        if word == "--":
            return joined + words[position:]
        following = words[position + 1] if position + 1 < len(words) else ""
        if word in flags and _NEGATIVE_VALUE_RE.match(following):
            joined.append(f"{word}={following}")
            position += 2
        else:
            joined.append(word)
            position += 1
    return joined

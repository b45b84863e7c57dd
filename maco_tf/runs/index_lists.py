"""Index lists such as ``0,3,10-12``: parsed, with ranges checked before they are expanded."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from maco_tf.errors import MacoError

__all__ = ["MAX_INDICES", "IndexListError", "expand_class_spec", "parse_indices"]

#: Most indices one list may hold (each becomes one image).
MAX_INDICES = 100_000
_RANGE_RE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")
_EXAMPLE = "comma-separated indices or ranges like 0,3,10-12"
T = TypeVar("T")


class IndexListError(MacoError):
    """An index list that is malformed, has a reversed range, or is too long."""


def _range(low: int, high: int, text: str) -> range:
    if high < low:
        raise IndexListError(f"reversed range {low}-{high} in {text!r}; write {high}-{low}")
    return range(low, high + 1)


def _entries(text: str, single: Callable[[str], T]) -> list[T | range]:
    """The comma-separated entries of ``text``: ranges ``LOW-HIGH`` as ranges, others ``single``."""
    entries: list[T | range] = []
    for part in text.split(","):
        matched = _RANGE_RE.fullmatch(part)
        entries.append(_range(int(matched[1]), int(matched[2]), text) if matched else single(part))
    count = sum(len(e) if isinstance(e, range) else 1 for e in entries)
    if count > MAX_INDICES:
        raise IndexListError(
            f"{text!r} holds {count} indices, more than the {MAX_INDICES} one run may make "
            f"(one image each); give a smaller range"
        )
    return entries


def _flat(entries: list[T | range]) -> list[T | int]:
    return [v for e in entries for v in (e if isinstance(e, range) else (e,))]


def parse_indices(text: str) -> list[int]:
    """``"0,3,10-12"`` -> ``[0, 3, 10, 11, 12]`` (single entries may be negative).

    Raises
    ------
    IndexListError
        For an entry that is neither an integer nor a range ``LOW-HIGH``, a reversed range,
        an empty list, or more than :data:`MAX_INDICES` indices (counted before expanding).
    """
    try:
        values = _flat(_entries(text, int))
    except IndexListError:
        raise
    except ValueError:  # an entry that is not an integer
        raise IndexListError(f"expected {_EXAMPLE}; got {text!r}") from None
    if not values:
        raise IndexListError(f"empty index list {text!r}")
    return values


def expand_class_spec(spec: str) -> list[str]:
    """The entries of a ``--classes`` value, each index range ``LOW-HIGH`` expanded.

    ``"espresso,0-2"`` -> ``["espresso", "0", "1", "2"]``; names (even with hyphens) are kept.

    Raises
    ------
    IndexListError
        For a reversed range, or more than :data:`MAX_INDICES` entries (counted before
        expanding).
    """
    return [str(entry) for entry in _flat(_entries(spec, str))]

"""Exceptions raised by maco_tf for user mistakes.

Every error raised on bad input derives from :class:`MacoError` (itself a ``ValueError``)
so that callers, and the command line, can tell a user mistake from a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MacoError(ValueError):
    """Base class of the errors maco_tf raises for bad input."""


class InvalidSettingError(MacoError):
    """An optimisation setting (steps, range, shape, schedule...) is not valid."""


class IncompatibleModelError(MacoError):
    """The model cannot be visualised as given (no image input, unknown input size...)."""


class UnknownLayerError(MacoError):
    """A layer name or path does not exist in the model."""


class SpectrumError(MacoError):
    """The magnitude spectrum cannot be built (wrong channel count, empty dataset...)."""


def suggest(query: str, candidates: Iterable[str], limit: int = 5) -> list[str]:
    """Return the candidates closest to ``query``: close spellings first, then substrings.

    Parameters
    ----------
    query
        What the user typed.
    candidates
        Valid names.
    limit
        Maximum number of suggestions.

    Returns
    -------
    suggestions
        Up to ``limit`` names, best first, without duplicates.
    """
    candidates = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(query.lower(), list(lowered), n=limit, cutoff=0.6)
    found = [lowered[c] for c in close]
    needle = query.lower()
    for cand in candidates:
        if len(found) >= limit:
            break
        if needle and needle in cand.lower() and cand not in found:
            found.append(cand)
    return found[:limit]


def format_suggestions(suggestions: list[str]) -> str:
    """Format suggestions as ``"; did you mean: a, b, c?"`` (empty when there are none)."""
    if not suggestions:
        return ""
    return "; did you mean: " + ", ".join(suggestions) + "?"

"""The one check of the indices and names that targets, tokens and concepts are given."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maco_tf.errors import MacoError

__all__ = ["TargetIndexError", "check_indices", "check_names"]


class TargetIndexError(MacoError):
    """A class, neuron, channel, feature or concept index is not valid for its layer."""


def check_indices(
    ids: int | Sequence[int],
    size: int,
    what: str,
    where: str,
    error: type[TargetIndexError] = TargetIndexError,
) -> list[int]:
    """``ids`` (one or several) as a list of ints in ``[0, size)``.

    Parameters
    ----------
    ids
        An integer or a sequence of integers.
    size
        Number of valid indices.
    what
        What an index designates, for the message ("channel", "concept"...).
    where
        What holds them, for the message ("layer 'conv1' with 8 channels").
    error
        The error class to raise (a :class:`TargetIndexError`).

    Returns
    -------
    ids
        The indices, in the given order.

    Raises
    ------
    TargetIndexError
        ``error``, for no index, a non-integer or one out of range (with the valid range).
    """
    values = [ids] if isinstance(ids, (int, np.integer)) else list(ids)
    if not values:
        raise error(f"no {what} index given")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise error(f"{what} indices must be integers, got {value!r}")
        if not 0 <= int(value) < size:
            raise error(f"{what} {value} is out of range for {where} (valid: 0-{size - 1})")
    return [int(value) for value in values]


def check_names(names: str | Sequence[str] | None, default: list[str]) -> list[str]:
    """The names of the objectives: ``default`` when None, else as many as it has.

    Parameters
    ----------
    names
        One name, a sequence of names, or None.
    default
        The default names, one per objective.

    Returns
    -------
    names
        A list of ``len(default)`` strings.

    Raises
    ------
    MacoError
        When the number of names differs from the number of objectives.
    """
    if names is None:
        return default
    names = [names] if isinstance(names, str) else [str(n) for n in names]
    if len(names) != len(default):
        raise MacoError(f"got {len(names)} names for {len(default)} objectives")
    return names

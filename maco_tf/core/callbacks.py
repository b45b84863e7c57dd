"""What a run does between its compiled calls: snapshots, callbacks and early stopping.

The compiled loop runs ``steps_per_call`` steps per call (see
:class:`~maco_tf.core.engine.CompiledLoop`). Between two calls, :class:`BatchWatcher` keeps the
images every ``snapshots`` steps, hands a :class:`Progress` to each callback and decides
whether the objective has plateaued (:func:`plateaued`). None of it touches the traced
function: a run with callbacks runs the same graph as one without.

A callback is any callable taking a :class:`Progress`; it receives the current images only
if it has a true ``wants_images`` attribute (rendering them costs a pass of the
parameterization), as :class:`Callback` subclasses can set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from maco_tf.errors import InvalidSettingError

__all__ = [
    "PLATEAU_TOLERANCE",
    "BatchWatcher",
    "Callback",
    "Progress",
    "check_callbacks",
    "plateaued",
    "snapshot_steps",
]

#: Relative gain below which two windows of objective values count as a plateau.
PLATEAU_TOLERANCE = 0.01


@dataclass(frozen=True)
class Progress:
    """What a callback receives after each compiled call of a batch.

    Attributes
    ----------
    step
        Steps done so far in this batch (the images are those after ``step`` steps).
    steps
        Steps the run asks for (``RunConfig.steps``).
    values
        ``(count, n)`` objective value of each of the call's steps (steps ``step - count``
        to ``step - 1``), per image of the batch.
    names
        The ``n`` images' names (objective combinations).
    batch
        Index of the batch (images ``first .. first + n - 1`` of the run).
    first
        Index in the run of the batch's first image.
    images
        ``(n, H, W, C)`` current images in the run's value range, if the callback has a
        true ``wants_images`` attribute; else None.
    """

    step: int
    steps: int
    values: np.ndarray
    names: tuple[str, ...]
    batch: int
    first: int
    images: np.ndarray | None = None


class Callback:
    """Base of callbacks: override :meth:`__call__`; set ``wants_images = True`` to get images."""

    wants_images: bool = False

    def __call__(self, progress: Progress) -> None:
        """Called after each compiled call with the batch's :class:`Progress`."""


def check_callbacks(callbacks: object) -> tuple[Callable[[Progress], object], ...]:
    """``callbacks`` as a tuple of callables (None: none).

    Raises
    ------
    InvalidSettingError
        If it is not a sequence of callables.
    """
    if callbacks is None:
        return ()
    if callable(callbacks):
        callbacks = [callbacks]
    if not isinstance(callbacks, Sequence) or not all(callable(c) for c in callbacks):
        raise InvalidSettingError(
            f"callbacks must be a list of callables taking a maco_tf.Progress; got {callbacks!r}"
        )
    return tuple(callbacks)


def plateaued(values: np.ndarray, window: int, tolerance: float = PLATEAU_TOLERANCE) -> bool:
    """Whether every image's objective has plateaued over the last ``2 * window`` steps.

    Let ``recent`` be an image's mean objective value over the last ``window`` steps and
    ``before`` its mean over the ``window`` steps before those. The image has plateaued when
    ``recent - before <= tolerance * |before|``: the last window gained less than
    ``tolerance`` (1 %) of the earlier window's value. Steps whose value is not finite are
    left out of the means (an image with no finite value in a window has plateaued).

    Parameters
    ----------
    values
        ``(steps_done, n)`` objective values of the steps run so far (higher is better).
    window
        Steps per window (``RunConfig.early_stop``).
    tolerance
        Relative gain that still counts as a plateau.

    Returns
    -------
    plateaued
        False while fewer than ``2 * window`` steps are done; else whether every image has
        plateaued.
    """
    if values.shape[0] < 2 * window:
        return False
    recent = _finite_mean(values[-window:])
    before = _finite_mean(values[-2 * window : -window])
    gained = recent - before > tolerance * np.abs(before)
    return not bool(np.any(gained & np.isfinite(recent) & np.isfinite(before)))


def _finite_mean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the finite values (NaN where there is none)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=0)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass
class BatchWatcher:
    """The hook (:data:`~maco_tf.core.engine.ChunkHook`) of one batch's run.

    Attributes
    ----------
    count
        Real images of the batch (its first rows; the others are padding).
    steps
        Steps of the run.
    names, batch, first
        As :class:`Progress`.
    every
        Keep the images every ``every`` steps (``RunConfig.snapshots``), or None.
    window
        ``RunConfig.early_stop``, or None.
    callbacks
        Called with a :class:`Progress` after each call.
    history
        The values received so far, per call.
    snapshots
        ``[(step, images)]`` kept so far.
    stopped
        Whether the objective plateaued and the run was stopped.
    """

    count: int
    steps: int
    names: tuple[str, ...]
    batch: int = 0
    first: int = 0
    every: int | None = None
    window: int | None = None
    callbacks: tuple[Callable[[Progress], object], ...] = ()
    history: list[np.ndarray] = field(default_factory=list)
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)
    stopped: bool = False

    @property
    def active(self) -> bool:
        """Whether there is anything to do between calls (else the loop runs without a hook)."""
        return bool(self.every or self.window or self.callbacks)

    def __call__(self, step: int, values: np.ndarray, render: Callable[[], np.ndarray]) -> bool:
        """Keep a snapshot, call the callbacks, and say whether to stop (a plateau)."""
        values = values[:, : self.count]
        self.history.append(values)
        rendered: list[np.ndarray] = []

        def images() -> np.ndarray:
            if not rendered:
                rendered.append(render()[: self.count])
            return rendered[0]

        if self.every and step % self.every == 0:
            self.snapshots.append((step, images()))
        for callback in self.callbacks:
            wanted = images() if getattr(callback, "wants_images", False) else None
            callback(Progress(step, self.steps, values, self.names, self.batch, self.first, wanted))
        if self.window and plateaued(np.concatenate(self.history), self.window):
            self.stopped = True
        return self.stopped

    def snapshot_at(self, step: int, final: np.ndarray, steps_run: int) -> np.ndarray:
        """The images after ``min(step, steps_run)`` steps (``final``: after ``steps_run``)."""
        if step >= steps_run:
            return final
        for kept_step, images in self.snapshots:
            if kept_step == step:
                return images
        raise KeyError(f"no snapshot at step {step}")


def snapshot_steps(every: int, steps_run: int) -> np.ndarray:
    """The multiples of ``every`` up to ``steps_run``, and ``steps_run`` itself (int array)."""
    steps = list(range(every, steps_run + 1, every))
    if not steps or steps[-1] != steps_run:
        steps.append(steps_run)
    return np.asarray(steps, dtype=np.int64)

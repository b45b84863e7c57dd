"""A ready-made callback that logs a run to TensorBoard through ``tf.summary``.

``maco_tf.visualize(objective, callbacks=[maco_tf.TensorBoardLogger("logs")])`` writes each
image's objective value at every step (tag ``objective/<name>``) and, with ``images=True``,
the images after each compiled call (tag ``images/<name>``); ``tensorboard --logdir logs``
shows them. Batches restart at step 1: the tags of their images differ by name.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from maco_tf.core.callbacks import Callback, Progress
from maco_tf.outputs.render import to_uint8

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Callback):
    """Log objective values (and images) to a TensorBoard event file in ``logdir``.

    Parameters
    ----------
    logdir
        Folder of the event files (created when the first call is logged).
    images
        Also log the images after each compiled call (they are rendered for it).
    values_range
        Value range of the images, to map them to pixels (the run's ``values_range``).

    Attributes
    ----------
    wants_images
        ``images``: the run hands the images to this callback only when true.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        images: bool = False,
        values_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        self.logdir = os.fspath(logdir)
        self.wants_images = bool(images)
        self.values_range = (float(values_range[0]), float(values_range[1]))
        self._writer: tf.summary.SummaryWriter | None = None

    @property
    def writer(self) -> tf.summary.SummaryWriter:
        """The summary writer of ``logdir`` (made on first use)."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.logdir)
        return self._writer

    def __call__(self, progress: Progress) -> None:
        """Write the call's objective values (step ``k`` = after ``k`` steps) and images."""
        count = progress.values.shape[0]
        with self.writer.as_default():
            for offset, row in enumerate(progress.values):
                step = progress.step - count + offset + 1
                for name, value in zip(progress.names, row, strict=True):
                    tf.summary.scalar(f"objective/{name}", float(value), step=step)
            if progress.images is not None:
                for name, image in zip(progress.names, progress.images, strict=True):
                    pixels = to_uint8(image, self.values_range)[np.newaxis]
                    tf.summary.image(f"images/{name}", pixels, step=progress.step)
        self.writer.flush()

    def close(self) -> None:
        """Close the event file (a later call opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

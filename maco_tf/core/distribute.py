"""``tf.distribute`` for the command line: which strategy, who writes, what workers agree on.

The optimisation itself is distributed by the engine (see :mod:`maco_tf.core.engine`): give
:func:`maco_tf.visualize` a strategy, or call it inside ``strategy.scope()``. This module serves
``maco-tf visualize`` and ``maco-tf atlas``:

* :func:`make_strategy` turns ``--strategy auto|none|mirrored|multi-worker`` into a strategy:
  ``MirroredStrategy`` spreads each batch of objectives over the GPUs of one machine;
  ``MultiWorkerMirroredStrategy`` over the workers that ``TF_CONFIG`` lists (one process per
  machine, all started with the same command).
* Only the chief writes files (:attr:`Distribution.is_chief`); the other workers compute the
  same chunks in lockstep and write into a scratch folder that is deleted afterwards.
* Before the first chunk the workers check that they run the same settings and adopt the
  chief's list of pending targets (:meth:`Distribution.agree`), so a worker whose output
  folder differs (another machine's disk) cannot fall out of step.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from maco_tf.errors import MacoError

__all__ = ["STRATEGIES", "Distribution", "DistributionError", "make_strategy"]

#: Values of ``--strategy``.
STRATEGIES = ("auto", "none", "mirrored", "multi-worker")


class DistributionError(MacoError):
    """A strategy cannot be made, or the workers of a cluster disagree."""


def _cluster_tasks() -> int:
    """Number of tasks (chief + workers) that ``TF_CONFIG`` lists; 0 without ``TF_CONFIG``."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return 0
    try:
        config = json.loads(text)
        cluster = config["cluster"]
        return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DistributionError(
            f"TF_CONFIG is not valid ({type(exc).__name__}: {exc}); expected JSON such as "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
            '"index": 0}}'
        ) from None


def make_strategy(name: str = "auto") -> tf.distribute.Strategy | None:
    """The strategy that ``--strategy name`` asks for (None: no distribution).

    Parameters
    ----------
    name
        ``"none"``; ``"mirrored"`` (every GPU of this machine, or its CPU without GPUs);
        ``"multi-worker"`` (the cluster of ``TF_CONFIG``); ``"auto"``: multi-worker when
        ``TF_CONFIG`` lists several tasks, mirrored when this machine has several GPUs,
        else none. Create it before other TensorFlow work: ``MultiWorkerMirroredStrategy``
        must be made at the start of the program.

    Returns
    -------
    strategy
        The strategy, or None.
    """
    if name not in STRATEGIES:
        raise DistributionError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    tasks = _cluster_tasks()
    if name == "auto":
        if tasks > 1:
            name = "multi-worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            return None
    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if tasks == 0:
        raise DistributionError(
            "--strategy multi-worker needs TF_CONFIG, the cluster description: set it on every "
            'machine, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' (index 1 on the second), and start the '
            "same command on each"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def fingerprint(*parts: object) -> int:
    """A 31-bit checksum of JSON-serialisable ``parts`` (for comparing workers' settings)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


@dataclass(frozen=True)
class Distribution:
    """A strategy (or none) and the role of this process in it.

    Attributes
    ----------
    strategy
        What :func:`maco_tf.visualize` is given; None: one device.
    """

    strategy: tf.distribute.Strategy | None = None

    @property
    def replicas(self) -> int:
        """Replicas in sync (1 without a strategy)."""
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the results (always, without multi-worker training)."""
        return self.strategy is None or bool(self.strategy.extended.should_checkpoint)

    def describe(self) -> str:
        """E.g. ``"MirroredStrategy, 2 replicas"``, or ``"none"``."""
        if self.strategy is None:
            return "none"
        kind = type(self.strategy).__name__
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            kind = "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
        return f"{kind}, {self.replicas} replicas"

    def agree(self, settings_key: int, pending: Sequence[int], total: int) -> list[int]:
        """Check that every worker runs the same settings; return the chief's pending targets.

        Parameters
        ----------
        settings_key
            :func:`fingerprint` of everything that must be equal on all workers (settings,
            targets, batch size).
        pending
            Positions of the targets this process found unfinished.
        total
            Number of targets.

        Returns
        -------
        pending
            The chief's ``pending`` (this process's own without a strategy).
        """
        if self.strategy is None or self.replicas == 1:
            return list(pending)
        # The keys first: the pending masks of workers with other targets differ in length.
        mine = np.array([float(settings_key)])
        if self._sum(np.abs(self._chief_values(mine) - mine))[0] != 0.0:
            raise DistributionError(
                "the workers of the cluster run different settings, targets or batch sizes: "
                "start the same command (same flags, same model) on every worker"
            )
        mask = np.zeros(total, np.float64)
        mask[list(pending)] = 1.0
        return [int(p) for p in np.flatnonzero(self._chief_values(mask) > 0.5)]

    def _chief_values(self, vector: np.ndarray) -> np.ndarray:
        """The chief's (replica 0's) ``vector``, on every worker."""
        strategy = self.strategy

        @tf.function
        def exchange(values):
            def per_replica():
                context = tf.distribute.get_replica_context()
                first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float64)
                return first * values

            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(per_replica), None)

        return exchange(tf.constant(vector, tf.float64)).numpy()

    def _sum(self, vector: np.ndarray) -> np.ndarray:
        """Sum of ``vector`` over all replicas of all workers."""
        strategy = self.strategy

        @tf.function
        def exchange(values):
            per_replica = strategy.run(lambda: tf.identity(values))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, None)

        return exchange(tf.constant(vector, tf.float64)).numpy()

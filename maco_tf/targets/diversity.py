"""Diversity as a term of the objective, written as in Lucid: ``objective - w * diversity(layer)``.

The term is the mean pairwise cosine similarity of the Gram matrices (channel co-activations)
of the images of a batch at a spatial layer
(:func:`~maco_tf.core.objectives.batch_similarity`). Subtracting it pushes the images of a batch
apart; the images of a batch are then optimised *jointly*, so give ``batch_size`` a multiple of
``copies`` to keep the copies of a target in one batch::

    objective = maco_tf.targets.channel(model, "conv3", 5) - 50 * maco_tf.diversity("conv2")
    result = maco_tf.visualize(objective, copies=4, batch_size=4)
"""

from __future__ import annotations

import dataclasses

from maco_tf.checks import is_finite_number
from maco_tf.core.objectives import (
    BatchTerm,
    CompiledObjective,
    ComposedObjective,
    Term,
    batch_similarity,
)
from maco_tf.errors import InvalidSettingError
from maco_tf.models.layers import layer_output

__all__ = ["DiverseObjective", "Diversity", "diversity"]

#: An objective with diversity terms (any :class:`~maco_tf.core.objectives.ComposedObjective`).
DiverseObjective = ComposedObjective


class Diversity(Term):
    """A weighted diversity term, to add to or subtract from an objective.

    Parameters
    ----------
    layer
        Spatial layer (name, index or nested path); None: the layer of the objective's first
        sub-objective, which must be spatial.
    weight
        Factor of the similarity in the objective (the sign included: ``objective - 5 *
        diversity()`` has weight -5).
    """

    def __init__(self, layer: str | int | None = None, weight: float = 1.0):  # noqa: D107
        if isinstance(weight, bool) or not is_finite_number(weight):
            raise InvalidSettingError(f"a diversity weight must be a finite number; got {weight!r}")
        self.layer = layer
        self.weight = float(weight)

    def __repr__(self) -> str:
        return f"Diversity(layer={self.layer!r}, weight={self.weight:g})"

    def scaled(self, weight: float) -> Diversity:
        """The same term with ``weight``."""
        return Diversity(self.layer, weight)

    def batch_term(self, compiled: CompiledObjective) -> BatchTerm:
        """The engine's form of the term for an objective's model.

        Raises
        ------
        InvalidSettingError
            When the layer is not spatial ``(batch, height, width, channels)``.
        """
        if self.layer is None:
            output, where = compiled.outputs[0], "the objective's first layer"
        else:
            output, where = layer_output(compiled.model, self.layer), f"layer {self.layer!r}"
        if len(output.shape) != 4:
            raise InvalidSettingError(
                f"diversity needs a spatial layer (batch, height, width, channels) and "
                f"{where} has shape {tuple(output.shape)}; give one, e.g. diversity('conv2')"
            )
        return BatchTerm("diversity", output, batch_similarity, self.weight)

    def apply(self, compiled: CompiledObjective) -> CompiledObjective:
        """``compiled`` with the diversity as a batch term."""
        term = self.batch_term(compiled)
        return dataclasses.replace(compiled, batch_terms=(*compiled.batch_terms, term))

    def _alone(self) -> str:
        return (
            "a diversity term alone has nothing to maximise; add it to an objective, e.g. "
            "objective - 10 * maco_tf.diversity('conv2')"
        )


def diversity(layer: str | int | None = None) -> Diversity:
    """Lucid's diversity term on ``layer``, to subtract from an objective.

    Parameters
    ----------
    layer
        A spatial layer (name, index or nested path); None: the layer of the objective's
        first sub-objective.

    Returns
    -------
    term
        A term of weight 1: ``objective - w * diversity(layer)`` subtracts ``w`` times the
        mean pairwise cosine similarity of the batch's Gram matrices (per image) from the
        objective.
    """
    return Diversity(layer)

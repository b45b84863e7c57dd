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

from xplique.features_visualizations import Objective

from maco_tf.checks import is_finite_number
from maco_tf.core.objectives import (
    BatchTerm,
    CompiledObjective,
    batch_similarity,
    compile_objective,
)
from maco_tf.errors import InvalidSettingError
from maco_tf.models.layers import layer_output

__all__ = ["DiverseObjective", "Diversity", "diversity"]


class Diversity(Objective):
    """A weighted diversity term, to add to or subtract from an objective.

    It derives from Xplique's ``Objective`` only so that ``objective - term`` reaches this
    class's operators first; it holds no sub-objective and cannot be visualised alone.

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

    def __mul__(self, factor: float) -> Diversity:
        if isinstance(factor, bool) or not is_finite_number(factor):
            return NotImplemented
        return Diversity(self.layer, self.weight * float(factor))

    __rmul__ = __mul__

    def __neg__(self) -> Diversity:
        return Diversity(self.layer, -self.weight)

    def __radd__(self, objective: object) -> DiverseObjective:
        return DiverseObjective(objective, (self,))

    def __rsub__(self, objective: object) -> DiverseObjective:
        return DiverseObjective(objective, (-self,))

    def __add__(self, other: object) -> DiverseObjective:
        raise InvalidSettingError(_ALONE)

    __sub__ = __add__

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

    def to_compiled(self) -> CompiledObjective:
        """Refused: a diversity term has nothing to maximise on its own."""
        raise InvalidSettingError(_ALONE)


_ALONE = (
    "a diversity term alone has nothing to maximise; add it to an objective, e.g. "
    "objective - 10 * maco_tf.diversity('conv2')"
)


class DiverseObjective:
    """An objective with diversity terms, as :func:`maco_tf.visualize` takes it.

    Parameters
    ----------
    objective
        An Xplique ``Objective`` (or anything :func:`~maco_tf.core.objectives.compile_objective`
        reads).
    terms
        Diversity terms added to it.
    """

    def __init__(self, objective: object, terms: tuple[Diversity, ...]):  # noqa: D107
        self.objective = objective
        self.terms = tuple(terms)

    def __repr__(self) -> str:
        return f"DiverseObjective({self.objective!r}, {self.terms!r})"

    def __add__(self, other: object) -> DiverseObjective:
        if isinstance(other, Diversity):
            return DiverseObjective(self.objective, (*self.terms, other))
        if isinstance(other, DiverseObjective):
            return DiverseObjective(self.objective + other.objective, self.terms + other.terms)
        return DiverseObjective(self.objective + other, self.terms)

    def __sub__(self, other: object) -> DiverseObjective:
        if isinstance(other, Diversity):
            return self + (-other)
        if isinstance(other, DiverseObjective):
            raise InvalidSettingError(
                "subtracting an objective with diversity terms is ambiguous; subtract the "
                "objective and the terms separately"
            )
        return DiverseObjective(self.objective - other, self.terms)

    def to_compiled(self) -> CompiledObjective:
        """The objective compiled, with the diversity terms as batch terms."""
        compiled = compile_objective(self.objective)
        terms = tuple(term.batch_term(compiled) for term in self.terms)
        return dataclasses.replace(compiled, batch_terms=compiled.batch_terms + terms)


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

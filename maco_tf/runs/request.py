"""What a command asks for: one frozen :class:`Request`, built by the command line from its flags.

The command line (:mod:`maco_tf.cli`) parses its flags and builds one :class:`Request`; the run
machinery below it (:mod:`maco_tf.runs`, :mod:`maco_tf.atlas`) reads only that. Its field names
are the flags' (``--batch-size`` is ``batch_size``) and the :class:`~maco_tf.RunConfig`'s
(``request.config.steps``). Nothing in it is written after it is built: starting a run gives a
new request (:meth:`Request.with_distribution`, :meth:`Request.for_model`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from maco_tf.core.config import RunConfig
from maco_tf.core.distribute import Distribution

__all__ = ["ModelSpec", "Request", "TargetSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """The model flags: ``--model`` and how to read it (the :func:`maco_tf.load_model` arguments).

    Attributes
    ----------
    model
        ``--model``: a zoo or ``keras.applications`` name, or a file or folder; None: the default.
    values_range
        ``--values-range``; None: inferred from the model.
    input_size, custom_objects, output
        ``--input-size``, ``--custom-objects``, ``--output``; None: the model's own.
    """

    model: str | None = None
    values_range: tuple[float, float] | None = None
    input_size: int | None = None
    custom_objects: str | None = None
    output: str | None = None

    def options(self) -> dict:
        """The :func:`maco_tf.load_model` keyword arguments besides the model itself."""
        return {
            "values_range": self.values_range,
            "input_size": self.input_size,
            "custom_objects": self.custom_objects,
            "output": self.output,
        }


@dataclass(frozen=True)
class TargetSpec:
    """The target flags: ``--classes``, or ``--layer`` with ``--channel/--neuron/--direction``.

    All None: no target chosen (the atlas's default is every class).
    """

    classes: str | None = None
    layer: str | None = None
    channel: list[int] | None = None
    neuron: list[int] | None = None
    direction: str | None = None

    def units_given(self) -> list[str]:
        """The names of the unit flags given (``["channel"]``...)."""
        return [
            name for name in ("channel", "neuron", "direction") if getattr(self, name) is not None
        ]

    def asks_for_units(self) -> bool:
        """Whether ``--layer`` or one of its unit flags is given."""
        return self.layer is not None or bool(self.units_given())


@dataclass(frozen=True)
class Request:
    """One command's request: the run's settings, its model, targets, output and extras.

    Attributes
    ----------
    config
        The run's :class:`~maco_tf.RunConfig` (``config.engine`` holds ``--batch-size`` and
        ``--jit``). Before the model is loaded its value range is ``--values-range`` or the
        default; :meth:`for_model` puts the model's in.
    model
        The model flags (:class:`ModelSpec`).
    targets
        The target flags (:class:`TargetSpec`).
    out, overwrite, quiet
        ``--out``, ``--overwrite``, ``--quiet``.
    examples
        ``--examples``: a folder of photos; None: none.
    method_given
        Whether the command has a ``--method`` (``accentuate`` has none: its seed sets it); a
        method the model cannot take is refused only then.
    strategy
        ``--strategy``: the ``tf.distribute`` strategy to make.
    distribution
        The strategy made (:meth:`with_distribution`); a bare one before.
    image, penalty
        ``accentuate``: ``--image`` and ``--penalty``.
    shard, concepts, copies, diversity, patches, build_only
        ``atlas``: ``--shard``, ``--concepts``, ``--copies``, ``--diversity``, ``--patches``,
        ``--build-only``.
    """

    config: RunConfig
    model: ModelSpec = ModelSpec()
    targets: TargetSpec = TargetSpec()
    out: Path = Path("maco_out")
    overwrite: bool = False
    quiet: bool = False
    examples: str | None = None
    method_given: bool = True
    strategy: str = "auto"
    distribution: Distribution = dataclasses.field(default_factory=Distribution)
    image: str | None = None
    penalty: float = 1.0
    shard: tuple[int, int] = (0, 1)
    concepts: int = 0
    copies: int = 0
    diversity: float = 0.0
    patches: int = 0
    build_only: bool = False

    @property
    def batch_size(self) -> int | None:
        """``--batch-size`` (``config.engine.batch_size``); None: worked out for the run."""
        return self.config.engine.batch_size

    @property
    def jit(self) -> bool:
        """``--jit`` (``config.engine.jit_compile``)."""
        return bool(self.config.engine.jit_compile)

    def with_distribution(self, distribution: Distribution) -> Request:
        """A copy of the request with the strategy made for it."""
        return dataclasses.replace(self, distribution=distribution)

    def for_model(self, values_range: tuple[float, float]) -> Request:
        """A copy with its config in the loaded model's value range (validated again)."""
        return dataclasses.replace(
            self, config=dataclasses.replace(self.config, values_range=values_range)
        )

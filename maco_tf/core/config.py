"""The settings of one optimisation run: defaults, validation, schedules, cache key and record.

:class:`RunConfig` holds every research knob under the one name it has everywhere (Python,
command line flags, ``results.json``, the atlas): ``method``, ``steps``, ``crops``, ``size``,
``box_size``, ``whole_views``, ``noise``, ``values_range``, ``seed``, ``copies``,
``decay_power``, ``phase_spread``, ``transforms``, ``optimizer``, ``magnitude_dataset``,
``snapshots`` and ``early_stop``. Engine tuning, which changes speed but not what is
optimised, lives in :class:`EngineConfig`; resource bounds in :class:`~maco_tf.core.limits.Limits`.

A config is validated when it is built, before anything is allocated: a bad value raises
:class:`~maco_tf.errors.InvalidSettingError` naming the knob and the fix.

The defaults are the project's tuned ones (those of the command line); Xplique's ``maco``
defaults are those of the drop-in :func:`maco_tf.maco`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from maco_tf.checks import check_int, check_values_range, is_finite_number
from maco_tf.core.augment import Schedule, box_size_schedule, noise_schedule
from maco_tf.core.engine import optimizer_key
from maco_tf.core.limits import Limits
from maco_tf.core.parameterization import PHASE_SPREAD, Parameterization
from maco_tf.core.seeds import check_seed
from maco_tf.core.transforms import Transform, parse_transforms
from maco_tf.errors import InvalidSettingError

__all__ = [
    "METHODS",
    "EngineConfig",
    "Limits",
    "RunConfig",
    "comparable",
    "settings_differences",
]

METHODS = ("maco", "fourier", "pixel")

#: ``field(metadata=...)`` of a knob that reaches the compiled loop as a tensor (or not at all):
#: changing it does not need a new loop, so it is left out of the cache key.
_RUN_TIME = {"loop_key": False}


@dataclass(frozen=True)
class EngineConfig:
    """How the compiled loop runs: speed, memory and granularity, not what is optimised.

    Images for a seed do not depend on these, except at rounding level (``lanes``) and for
    ``pooled_noise`` and ``jit_compile``, which draw other (equally distributed) noise.

    Attributes
    ----------
    batch_size
        Images optimised together in one compiled loop (their crops share model batches);
        None: enough for about 128 crops per step (see
        :func:`~maco_tf.core.visualization.auto_batch_size`).
    lanes
        Sub-batches each step's crops are split into, each through its own call of the
        model; None: 2 on a CPU, 1 on a GPU or with XLA (see
        :func:`~maco_tf.core.visualization.auto_lanes`).
    steps_per_call
        Steps run inside each compiled call (progress granularity).
    pooled_noise
        Read each step's noise from a pool drawn once per compiled call at random offsets
        (one window per image and step) instead of drawing it afresh at every step. Either
        way every value is N(0, 1) + U(-1/2, 1/2), scaled.
    jit_compile
        Compile the loop with XLA.
    eager
        Run the steps as plain TensorFlow calls instead of one traced function: only for a
        user callable (a regulariser or transformation) that cannot be traced; slow.
    """

    batch_size: int | None = None
    lanes: int | None = None
    steps_per_call: int = 8
    pooled_noise: bool = True
    jit_compile: bool = False
    eager: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "lanes"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_int(getattr(self, name), name, 1))
        object.__setattr__(self, "steps_per_call", check_int(self.steps_per_call, "steps_per_call"))
        for name in ("pooled_noise", "jit_compile", "eager"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidSettingError(
                    f"{name} must be True or False; got {getattr(self, name)!r}"
                )
            object.__setattr__(self, name, bool(getattr(self, name)))

    def record(self) -> dict:
        """JSON-able ``{field: value}``."""
        return dataclasses.asdict(self)


def _check_size(size: object, limits: Limits) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    try:
        height, width = pair
    except (TypeError, ValueError):
        raise InvalidSettingError(
            f"size must be an int (a square side), (height, width), or None (the model "
            f"input); got {size!r}"
        ) from None
    height, width = check_int(height, "size", 1), check_int(width, "size", 1)
    if max(height, width) > limits.max_size:
        raise limits.refusal("size", max(height, width), "max_size")
    return height, width


def _check_schedule(value: Schedule, name: str) -> Schedule:
    """A schedule in a hashable form: sequences become tuples of floats."""
    if value is None or callable(value):
        return value
    if np.ndim(value) == 0:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidSettingError(f"{name} must be a number; got {value!r}") from None
    try:
        return tuple(float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1))
    except (TypeError, ValueError):
        raise InvalidSettingError(f"{name} must hold numbers; got {value!r}") from None


def _resolve(value: Schedule, steps: int) -> Schedule:
    """A ``(start, end)`` pair as its linear ramp (any other schedule unchanged)."""
    if isinstance(value, tuple) and len(value) == 2 and steps != 2:
        return np.linspace(value[0], value[1], steps, dtype=np.float32)
    return value


def _check_interval(value: object, name: str, most: int, bound: str) -> int | None:
    """None, or a whole number of steps from 1 to ``most`` (``bound`` says why it is the most)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidSettingError(
            f"{name} must be a whole number of steps >= 1, or None; got {value!r}"
        )
    if value > most:
        raise InvalidSettingError(f"{name}={value} is more than {bound}; use at most {most}")
    return int(value)


def _check_method(method: object) -> str | Parameterization:
    if isinstance(method, Parameterization):
        return method
    if method not in METHODS:
        raise InvalidSettingError(
            f"unknown method {method!r}; choose one of {', '.join(METHODS)} or give a "
            f"Parameterization instance"
        )
    return method


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one optimisation run, validated when built (frozen).

    Attributes
    ----------
    method
        ``"maco"`` (fixed natural magnitude, trainable phase), ``"fourier"`` (Olah et al.),
        ``"pixel"``, or a :class:`~maco_tf.core.parameterization.Parameterization` instance,
        whose own image shape and value range then replace ``size`` and ``values_range``.
    steps
        Optimisation steps.
    crops
        Views per image and step; 0: the whole image only.
    size
        Image side (an int), ``(height, width)``, or None: the model input size. At least
        the model input.
    box_size
        Average crop side per step, as a fraction of the image side: a float, ``(start, end)``
        (a linear ramp), one value per step, a callable ``step -> float``, or None (Xplique's
        ramp, 0.5 to 0.05).
    whole_views
        How many of the ``crops`` views of each step show the whole image (resized, with
        noise) instead of a random crop; values above ``crops`` mean every view is whole
        (:attr:`used_whole_views` is the number used, and recorded).
    noise
        Noise standard deviation per step, for a value range of width 2 (scaled to
        ``values_range``): a float, one value per step, a callable, or None (Xplique's log
        ramp, 1 to 1e-4).
    values_range
        ``(low, high)`` range of the model's inputs.
    seed
        Run seed in ``[0, 2**63)``; None: a random one, recorded in the result.
    copies
        Images per objective combination (consecutive in the result, named ``name #k``).
    decay_power
        Spectral decay of the Fourier baseline.
    phase_spread
        Standard deviation of MACO's standardised phase (``method="maco"``): pi, the
        default, or 1 as Xplique's ``maco`` (and this package's drop-in :func:`~maco_tf.maco`).
    optimizer
        A Keras optimizer whose configuration is used (the object itself is not modified);
        None: Nadam(1.0) for MACO (as Xplique), Adam(0.05) otherwise.
    magnitude_dataset
        Images (array, ``tf.data.Dataset`` or iterable) whose mean magnitude spectrum replaces
        the bundled ImageNet one for ``method="maco"``; required for non-RGB models.
    snapshots
        Keep the images every ``snapshots`` steps (and the last ones) in
        ``Visualization.snapshots`` (with their steps in ``snapshot_steps``);
        None: only the final images. From 1 to ``steps``. The images do not depend on it.
    early_stop
        Stop a batch of images once its objective plateaus, with a window of ``early_stop``
        steps (see :func:`~maco_tf.core.callbacks.plateaued` for the exact rule); None:
        always run ``steps`` steps. From 1 to ``steps // 2``.
    engine
        Engine tuning, see :class:`EngineConfig`.
    limits
        Resource bounds, see :class:`Limits`.

    Raises
    ------
    InvalidSettingError
        On construction, for any invalid value or one over :attr:`limits`.
    """

    method: str | Parameterization = "maco"
    steps: int = field(default=64, metadata=_RUN_TIME)
    crops: int = 8
    size: int | tuple[int, int] | None = 320
    box_size: Schedule = field(default=(1.0, 0.3), metadata=_RUN_TIME)
    whole_views: int = 2
    noise: Schedule = field(default=0.04, metadata=_RUN_TIME)
    values_range: tuple[float, float] = (-1.0, 1.0)
    seed: int | None = field(default=0, metadata=_RUN_TIME)
    copies: int = field(default=1, metadata=_RUN_TIME)
    decay_power: float = 1.0
    phase_spread: float = PHASE_SPREAD
    transforms: tuple[Transform, ...] = ()
    optimizer: keras.optimizers.Optimizer | None = None
    magnitude_dataset: object = field(default=None, compare=False, metadata=_RUN_TIME)
    snapshots: int | None = field(default=None, metadata=_RUN_TIME)
    early_stop: int | None = field(default=None, metadata=_RUN_TIME)
    engine: EngineConfig = field(default_factory=EngineConfig)
    limits: Limits = field(default_factory=Limits.from_environment, metadata=_RUN_TIME)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the fields in place, once
        if not isinstance(self.limits, Limits):
            raise InvalidSettingError(f"limits must be a Limits; got {self.limits!r}")
        if not isinstance(self.engine, EngineConfig):
            raise InvalidSettingError(f"engine must be an EngineConfig; got {self.engine!r}")
        set_(self, "method", _check_method(self.method))
        set_(self, "steps", check_int(self.steps, "steps", 1))
        if self.steps > self.limits.max_steps:
            raise self.limits.refusal("steps", self.steps, "max_steps")
        set_(self, "crops", check_int(self.crops, "crops", 0))
        set_(self, "whole_views", check_int(self.whole_views, "whole_views", 0))
        if isinstance(self.method, Parameterization):
            set_(self, "size", self.method.image_shape[:2])
            set_(self, "values_range", self.method.values_range)
        set_(self, "size", _check_size(self.size, self.limits))
        set_(self, "values_range", check_values_range(self.values_range))
        set_(self, "seed", None if self.seed is None else check_seed(self.seed))
        set_(self, "copies", check_int(self.copies, "copies", 1))
        if isinstance(self.decay_power, bool) or not is_finite_number(self.decay_power):
            raise InvalidSettingError(
                f"decay_power must be a finite number; got {self.decay_power!r}"
            )
        set_(self, "decay_power", float(self.decay_power))
        if (
            isinstance(self.phase_spread, bool)
            or not is_finite_number(self.phase_spread)
            or self.phase_spread <= 0
        ):
            raise InvalidSettingError(
                f"phase_spread must be a finite number > 0 (pi by default, 1 as Xplique); "
                f"got {self.phase_spread!r}"
            )
        set_(self, "phase_spread", float(self.phase_spread))
        set_(self, "transforms", parse_transforms(self.transforms))
        if self.optimizer is not None and not isinstance(
            self.optimizer, keras.optimizers.Optimizer
        ):
            raise InvalidSettingError(
                f"optimizer must be a keras.optimizers.Optimizer or None; got {self.optimizer!r}"
            )
        set_(
            self,
            "snapshots",
            _check_interval(self.snapshots, "snapshots", self.steps, f"the {self.steps} steps"),
        )
        set_(
            self,
            "early_stop",
            _check_interval(
                self.early_stop,
                "early_stop",
                self.steps // 2,
                f"half the {self.steps} steps (two windows are compared)",
            ),
        )
        set_(self, "box_size", _check_schedule(self.box_size, "box_size"))
        set_(self, "noise", _check_schedule(self.noise, "noise"))
        self.box_sizes()  # schedules are checked now, not when the loop starts
        self.noise_levels()

    @property
    def used_whole_views(self) -> int:
        """Whole views per image and step: ``whole_views``, at most ``crops``."""
        return min(self.whole_views, self.crops)

    @property
    def method_name(self) -> str:
        """The method's name (a Parameterization's ``name``)."""
        return self.method.name if isinstance(self.method, Parameterization) else self.method

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the knobs (the fields), in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: object) -> RunConfig:
        """A copy with some fields changed (validated again).

        Parameters
        ----------
        **changes
            Field names of this class, or of :class:`EngineConfig` (they change
            :attr:`engine`).

        Returns
        -------
        config
            The new config.

        Raises
        ------
        InvalidSettingError
            For an unknown name (the message lists the valid ones) or an invalid value.
        """
        engine_names = {f.name for f in dataclasses.fields(EngineConfig)}
        unknown = [name for name in changes if name not in self.field_names()]
        unknown = [name for name in unknown if name not in engine_names]
        if unknown:
            raise unknown_settings_error(unknown)
        engine_changes = {k: changes.pop(k) for k in list(changes) if k in engine_names}
        if engine_changes:
            engine = changes.get("engine", self.engine)
            changes["engine"] = dataclasses.replace(engine, **engine_changes)
        return dataclasses.replace(self, **changes)

    def box_sizes(self) -> np.ndarray:
        """``(steps,)`` float32 average crop side per step (fraction of the image side)."""
        return box_size_schedule(_resolve(self.box_size, self.steps), self.steps)

    def noise_levels(self) -> np.ndarray:
        """``(steps,)`` float32 noise standard deviation per step, in the model's input units."""
        width = self.values_range[1] - self.values_range[0]
        return noise_schedule(_resolve(self.noise, self.steps), self.steps) * (width / 2.0)

    def loop_key(self) -> tuple:
        """Hashable key of everything in this config that the traced loop depends on.

        Every field is in it except those marked as reaching the loop as tensors (steps,
        schedules, seed, copies, the magnitude spectrum) and the limits: a new field is part
        of the key unless it is explicitly marked, so no knob can be forgotten.
        """
        parts = []
        for item in dataclasses.fields(self):
            if item.metadata.get("loop_key", True):
                parts.append((item.name, _key_value(getattr(self, item.name))))
        return tuple(parts)

    def record(self) -> dict:
        """JSON-able description of the run, under the knobs' names (see :meth:`from_record`).

        Returns
        -------
        record
            ``{knob: value}`` for every knob but ``limits``, and ``engine`` as a dict.
            Schedules given as callables or per-step values are recorded per step;
            ``magnitude_dataset`` as ``"imagenet"`` (the bundled spectrum) or ``"custom"``.
        """
        optimizer = None
        if self.optimizer is not None:
            optimizer = _jsonable(keras.optimizers.serialize(self.optimizer))
        return {
            "method": self.method_name,
            "steps": self.steps,
            "crops": self.crops,
            "size": None if self.size is None else list(self.size),
            "box_size": _schedule_record(self.box_size, self.box_sizes),
            "whole_views": self.used_whole_views,
            "noise": _schedule_record(self.noise, lambda: noise_schedule(self.noise, self.steps)),
            "values_range": list(self.values_range),
            "seed": self.seed,
            "copies": self.copies,
            "decay_power": self.decay_power,
            "phase_spread": self.phase_spread,
            "transforms": [str(transform) for transform in self.transforms],
            "optimizer": optimizer,
            "magnitude_dataset": "imagenet" if self.magnitude_dataset is None else "custom",
            "snapshots": self.snapshots,
            "early_stop": self.early_stop,
            "engine": self.engine.record(),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object], **overrides: object) -> RunConfig:
        """The config a :meth:`record` describes (a custom magnitude dataset is not stored).

        Parameters
        ----------
        record
            A dict written by :meth:`record`; keys it lacks keep their defaults.
        **overrides
            Fields to set on top (e.g. ``magnitude_dataset=``).

        Returns
        -------
        config
            The config.
        """
        values = {k: v for k, v in record.items() if k in cls.field_names()}
        values.pop("magnitude_dataset", None)
        if isinstance(values.get("engine"), Mapping):
            values["engine"] = EngineConfig(**values["engine"])
        if isinstance(values.get("optimizer"), Mapping):
            values["optimizer"] = keras.optimizers.deserialize(dict(values["optimizer"]))
        for name in ("size", "values_range", "box_size"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        if isinstance(values.get("noise"), list):
            values["noise"] = tuple(values["noise"])
        return cls(**values).replace(**overrides)


def _key_value(value: object) -> object:
    """A field value as part of a cache key."""
    if isinstance(value, Parameterization):
        return value.cache_key()
    if isinstance(value, keras.optimizers.Optimizer):
        return optimizer_key(value)
    if isinstance(value, EngineConfig):
        return dataclasses.astuple(value)
    if isinstance(value, tuple) and all(isinstance(item, Transform) for item in value):
        return tuple(item.key() for item in value)  # Xplique's closures: by code and values
    return value


def _schedule_record(value: Schedule, resolved: Callable[[], np.ndarray]) -> object:
    """A schedule as JSON: a float, a list (a pair or per-step values), or None."""
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [float(v) for v in resolved()]


def _jsonable(value: object) -> object:
    """``value`` with NumPy scalars and tuples turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


#: Old argument names of :func:`maco_tf.visualize`, and what replaced them.
RENAMED = {
    "nb_steps": "steps",
    "nb_crops": "crops",
    "custom_shape": "size",
    "noise_intensity": "noise",
    "maco_dataset": "magnitude_dataset",
    "diversity": "an objective term: objective - w * maco_tf.diversity(layer)",
    "diversity_layer": "an objective term: objective - w * maco_tf.diversity(layer)",
}


def unknown_settings_error(names: Sequence[str]) -> InvalidSettingError:
    """The error for unknown knob names: what they were renamed to, and the valid names."""
    engine_names = tuple(f.name for f in dataclasses.fields(EngineConfig))
    hints = [f"{name} is now {RENAMED[name]}" for name in names if name in RENAMED]
    valid = ", ".join(RunConfig.field_names() + engine_names)
    return InvalidSettingError(
        f"unknown setting(s) {', '.join(map(repr, names))}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f"; valid names: {valid}"
    )


#: Record keys that say how fast a run went, not what it made: never compared.
_NOT_COMPARED = ("engine",)


def comparable(record: Mapping[str, object], ignore: Sequence[str] = ()) -> dict:
    """A record in its current form, for comparison with another.

    Records written before a knob was recorded are read with that knob at its default, and
    an int ``size`` (older records) as a square; ``engine`` and ``ignore`` are left out.

    Parameters
    ----------
    record
        :meth:`RunConfig.record` (with any extra keys, e.g. the model), as stored.
    ignore
        Other keys to leave out.

    Returns
    -------
    record
        A new dict.
    """
    defaults = RunConfig(limits=Limits()).record()
    values = {**defaults, **record}
    if isinstance(values.get("size"), int):
        values["size"] = [values["size"], values["size"]]
    skipped = (*_NOT_COMPARED, *ignore)
    return {k: v for k, v in values.items() if k not in skipped}


def settings_differences(
    old: Mapping[str, object], new: Mapping[str, object], ignore: Sequence[str] = ()
) -> list[str]:
    """What differs between two records (:meth:`RunConfig.record` plus any extra keys).

    Both are read with :func:`comparable`, so records of older versions still match.

    Parameters
    ----------
    old
        The stored record.
    new
        The current one.
    ignore
        Keys not to compare.

    Returns
    -------
    differences
        ``"<knob> <old>, now <new>"`` lines; empty when the records describe the same run.
    """
    old, new = comparable(old, ignore), comparable(new, ignore)
    keys = dict.fromkeys([*new, *old])
    return [f"{k} {old.get(k)!r}, now {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]

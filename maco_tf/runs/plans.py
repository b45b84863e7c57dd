"""What a run makes: one :class:`Target` per image, and the objective that optimises them all."""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from maco_tf.core.limits import Limits
from maco_tf.errors import MacoError
from maco_tf.models.layers import layer_label
from maco_tf.models.loading import LoadedModel
from maco_tf.models.zoo import resolve_classes
from maco_tf.runs.index_lists import MAX_INDICES, expand_class_spec
from maco_tf.targets import units as targets

__all__ = [
    "Plan",
    "Target",
    "image_ids",
    "load_directions",
    "plan_classes",
    "plan_directions",
    "plan_layer",
    "plan_units",
    "slug",
]


@dataclass(frozen=True)
class Target:
    """One image to make.

    Attributes
    ----------
    slug
        File stem of its images (letters, digits, ``._-``), unique in the plan.
    name
        Its human-readable name.
    kind
        ``"class"``, ``"channel"``, ``"neuron"``, ``"direction"`` or ``"concept"``.
    layer
        Label of the layer it lives on.
    index
        Its class, channel, neuron, direction or concept index.
    key
        Its identity: a results record with another key is not this target.
    """

    slug: str
    name: str
    kind: str
    layer: str
    index: int
    key: str


@dataclass
class Plan:
    """The full objective (one combination per target) and the target descriptions."""

    objective: object
    targets: list[Target]


def slug(text: str) -> str:
    """A safe file stem for ``text`` (:func:`maco_tf.files.is_safe_name`).

    ``/`` becomes ``__``, characters other than letters, digits and ``._-`` become ``_``;
    leading dots and underscores and trailing underscores are dropped.
    """
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in text.replace("/", "__"))
    return cleaned.lstrip("._").rstrip("_") or "target"


def _layer_label(loaded: LoadedModel, layer: str) -> str:
    return layer_label(loaded.model, layer)


def _class_ids(spec: str, loaded: LoadedModel) -> list[int]:
    entries = expand_class_spec(spec)
    if loaded.class_names is not None:
        return resolve_classes(",".join(entries))

    ids = []
    for entry in entries:
        try:
            ids.append(int(entry))
        except ValueError:
            raise MacoError(
                f"model {loaded.name!r} has no class names; give class indices, e.g. --classes "
                f"0,3 (got {entry.strip()!r})"
            ) from None
    return ids


def plan_classes(loaded: LoadedModel, spec: str, layer: str | None = None) -> Plan:
    """One target per class of ``spec`` (comma-separated names, indices or index ranges ``0-99``).

    Duplicates are dropped.

    Raises
    ------
    MacoError
        For an unknown class or layer, a name on a model without class names, or a bad range.
    """
    layer = layer or loaded.logits_layer
    ids = list(dict.fromkeys(_class_ids(spec, loaded)))
    objective = targets.class_logits(loaded.model, ids, layer, class_names=loaded.class_names)
    label = _layer_label(loaded, layer)
    plan = []
    for i, name in zip(ids, objective.names[0], strict=True):
        stem = f"{i:04d}_{slug(name)}" if loaded.class_names is not None else f"class{i:04d}"
        plan.append(Target(stem, name, "class", label, i, f"class:{label}:{i}"))
    return Plan(objective, plan)


def plan_units(loaded: LoadedModel, layer: str, kind: str, indices: Sequence[int]) -> Plan:
    """One target per channel (``kind="channel"``) or flat unit (``"neuron"``) of ``layer``."""
    make, tag = {"channel": (targets.channel, "ch"), "neuron": (targets.neuron, "n")}[kind]
    label = _layer_label(loaded, layer)
    ids = list(dict.fromkeys(indices))
    objective = make(loaded.model, layer, ids)
    plan = [
        Target(f"{slug(label)}_{tag}{i:04d}", n, kind, label, i, f"{kind}:{label}:{i}")
        for i, n in zip(ids, objective.names[0], strict=True)
    ]
    return Plan(objective, plan)


def _direction_header(path: str, handle: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` file declares, read from its header only."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not read")
    except (OSError, ValueError, SyntaxError, TypeError) as exc:
        reason = " ".join(str(exc).split())
        raise MacoError(f"cannot read direction file '{path}': {reason}") from None
    return tuple(shape), dtype


def _check_direction_header(
    path: str, shape: tuple[int, ...], dtype: np.dtype, data_bytes: int, limits: Limits
) -> None:
    """Refuse a declared array that is not 1 or 2 real axes, too many rows or too many bytes."""
    if dtype.kind == "c":
        raise MacoError(
            f"direction file '{path}' holds complex numbers ({dtype}); directions are real: "
            f"save the real part (numpy.real)"
        )
    if dtype.kind not in "fiu" or dtype.hasobject or dtype.fields is not None:
        raise MacoError(
            f"direction file '{path}' holds {dtype} values; it must hold real numbers "
            f"(float32 or float64)"
        )
    if len(shape) not in (1, 2):
        raise MacoError(
            f"direction file '{path}' holds an array of shape {shape}; give (C,) for one "
            f"direction or (N, C) for N directions"
        )
    rows = shape[0] if len(shape) == 2 else 1
    if rows > MAX_INDICES:
        raise MacoError(
            f"direction file '{path}' holds {rows} directions, more than the {MAX_INDICES} one "
            f"run may make; split it into several files"
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared > limits.max_batch_memory:
        raise MacoError(
            f"direction file '{path}' declares {declared} bytes of directions, over the limit "
            f"max_batch_memory={limits.max_batch_memory}; give fewer or shorter directions, or "
            f"raise the limit with the environment variable MACO_TF_MAX_BATCH_MEMORY"
        )
    if declared != data_bytes:
        raise MacoError(
            f"direction file '{path}' declares {shape} {dtype} values ({declared} bytes) but "
            f"holds {data_bytes} bytes of data; the file is damaged, save it again"
        )


def load_directions(path: str, limits: Limits | None = None) -> np.ndarray:
    """The direction(s) of a ``.npy`` file as float32, ``(C,)`` or ``(N, C)``.

    The header is checked before any value is read: a regular file (a FIFO is never opened),
    one or two axes of real numbers (complex refused), at most
    :data:`~maco_tf.runs.index_lists.MAX_INDICES` rows (the bound on the targets of a run), and
    exactly as many bytes of data as declared, within ``limits.max_batch_memory``. Then every
    value must be finite in float32 and no direction all zeros.

    Parameters
    ----------
    path
        The ``.npy`` file.
    limits
        The bounds; default :meth:`Limits.from_environment
        <maco_tf.core.limits.Limits.from_environment>`.

    Raises
    ------
    MacoError
        One line: the file is not a regular file or not a ``.npy`` array, its header declares
        another shape, a non-real dtype, too many rows or bytes, or a direction that is all
        zeros or not finite in float32 (it would have no gradient: an image that stays at its
        random start).
    """
    limits = Limits.from_environment() if limits is None else limits
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise MacoError(f"cannot read direction file '{path}': {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise MacoError(f"direction file '{path}' is not a regular file; give a .npy file")
    with open(path, "rb") as handle:
        shape, dtype = _direction_header(path, handle)
        data_bytes = os.fstat(handle.fileno()).st_size - handle.tell()
        _check_direction_header(path, shape, dtype, data_bytes, limits)
        handle.seek(0)
        try:
            array = np.load(handle, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MacoError(f"cannot read direction file '{path}': {exc}") from None
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
        vectors = array.astype(np.float32)
    if vectors.size == 0:
        raise MacoError(f"direction file '{path}' holds an empty array")
    rows = vectors.reshape(-1, vectors.shape[-1])
    for number, row in enumerate(rows):
        if not np.all(np.isfinite(row)):
            raise MacoError(
                f"direction {number} of '{path}' has NaN or infinite values (in float32)"
            )
        if not np.any(row):
            raise MacoError(
                f"direction {number} of '{path}' is all zeros: a direction needs a non-zero vector"
            )
    return vectors


def plan_directions(loaded: LoadedModel, layer: str, path: str) -> Plan:
    """One target per direction of the ``.npy`` file at ``path``, in the activations of a layer."""
    label = _layer_label(loaded, layer)
    objective = targets.direction(loaded.model, layer, load_directions(path))
    stem = f"{slug(label)}_{slug(Path(path).stem)}"
    plan = []
    for i, (name, vector) in enumerate(zip(objective.names[0], objective.masks[0], strict=True)):
        digest = hashlib.sha1(np.ascontiguousarray(vector).tobytes()).hexdigest()[:12]
        key = f"direction:{label}:{digest}"
        plan.append(Target(f"{stem}_dir{i:03d}", name, "direction", label, i, key))
    return Plan(objective, plan)


def plan_layer(
    loaded: LoadedModel,
    layer: str,
    *,
    channel: Sequence[int] | None = None,
    neuron: Sequence[int] | None = None,
    direction: str | None = None,
) -> Plan:
    """The units of ``layer`` given by exactly one of ``channel``, ``neuron`` or ``direction``.

    Parameters
    ----------
    loaded
        The model.
    layer
        Name, index or nested path of the layer.
    channel, neuron
        Channel indices, or flat unit indices, of the layer.
    direction
        Path of a ``.npy`` file of direction(s) in the layer's activation space.

    Raises
    ------
    MacoError
        For none or several of the three, or an unknown layer or index.
    """
    chosen = {"channel": channel, "neuron": neuron, "direction": direction}
    given = [name for name, value in chosen.items() if value is not None]
    if len(given) != 1:
        raise MacoError(
            "with --layer give exactly one of --channel, --neuron or --direction"
            + (f" (got {', '.join('--' + name for name in given)})" if given else "")
        )
    if direction is not None:
        return plan_directions(loaded, layer, direction)
    return plan_units(loaded, layer, given[0], chosen[given[0]])


def image_ids(plan: Plan) -> list[int]:
    """Random-stream id of each target.

    Its class, channel or neuron index when those are unique in the plan, else its position.
    """
    indices = [target.index for target in plan.targets]
    if len(set(indices)) == len(indices) and min(indices, default=0) >= 0:
        return indices
    return list(range(len(indices)))

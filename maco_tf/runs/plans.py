"""What a run makes: one :class:`Target` per image, and the objective that optimises them all."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maco_tf.errors import MacoError
from maco_tf.models.layers import layer_label
from maco_tf.models.loading import LoadedModel
from maco_tf.models.zoo import resolve_classes
from maco_tf.runs.indices import expand_class_spec
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


def load_directions(path: str) -> np.ndarray:
    """The direction(s) of a ``.npy`` file as float32, ``(C,)`` or ``(N, C)``.

    Raises
    ------
    MacoError
        If the file cannot be read, holds no numeric array, or a direction that is all zeros
        or not finite (it would have no gradient: an image that stays at its random start).
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MacoError(f"cannot read direction file '{path}': {exc}") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise MacoError(f"direction file '{path}' must hold one numeric array, (C,) or (N, C)")
    vectors = array.astype(np.float32)
    if vectors.size == 0:
        raise MacoError(f"direction file '{path}' holds an empty array")
    rows = vectors.reshape(-1, vectors.shape[-1]) if vectors.ndim else vectors.reshape(1, 1)
    for number, row in enumerate(rows):
        if not np.all(np.isfinite(row)):
            raise MacoError(f"direction {number} of '{path}' has NaN or infinite values")
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

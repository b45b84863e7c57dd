"""Xplique's attribution methods by name, built on a model for ``explain_class``.

:func:`attribution_methods` lists the explainers of ``xplique.attributions``; names are matched
without case or punctuation (``"Grad-CAM"``, ``"grad_cam"`` and ``"GradCAM"`` are one), and an
unknown name raises :class:`UnknownAttributionMethodError` with suggestions.
:func:`build_explainers` builds them on a model from names, classes, instances or a
``{name: kwargs}`` mapping, giving Grad-CAM-like methods :func:`last_conv_layer` unless told
otherwise; :func:`attribution_maps` checks what they return.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from maco_tf.errors import (
    IncompatibleModelError,
    InvalidSettingError,
    MacoError,
    format_suggestions,
)
from maco_tf.errors import suggest as _suggest

__all__ = [
    "UnknownAttributionMethodError",
    "attribution_maps",
    "attribution_methods",
    "build_explainers",
    "last_conv_layer",
]

_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)


class UnknownAttributionMethodError(MacoError):
    """An attribution method name is not one of Xplique's explainers."""


def _key(name: str) -> str:
    """Normalised method name: ``"Grad-CAM"``, ``"grad_cam"`` and ``"GradCAM"`` are the same."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def attribution_methods() -> dict[str, type]:
    """Xplique's attribution explainers by class name (``"Saliency"``, ``"GradCAM"``...).

    Returns
    -------
    methods
        ``{class name: explainer class}`` for every class exported by ``xplique.attributions``
        that has an ``explain`` method.
    """
    from xplique import attributions

    found = {}
    for name in getattr(attributions, "__all__", dir(attributions)):
        item = getattr(attributions, name, None)
        if inspect.isclass(item) and callable(getattr(item, "explain", None)):
            found[name] = item
    return found


def _method_class(name: str) -> type:
    """The Xplique explainer class for a (case- and punctuation-insensitive) name."""
    known = attribution_methods()
    by_key = {_key(n): cls for n, cls in known.items()}
    cls = by_key.get(_key(name))
    if cls is None:
        hints = _suggest(name, known)
        raise UnknownAttributionMethodError(
            f"unknown attribution method {name!r}{format_suggestions(hints)} "
            f"(known: {', '.join(sorted(known))}; or pass an explainer instance)"
        )
    return cls


def last_conv_layer(model: keras.Model) -> str:
    """Name of the last convolution of ``model`` with a spatial output, for Grad-CAM.

    Only the model's own layers are searched (Grad-CAM reads the layer's output in the model's
    graph); for EfficientNet-Lite0 this is ``"top_conv"``.

    Parameters
    ----------
    model
        A Keras model.

    Returns
    -------
    name
        The layer's name.

    Raises
    ------
    IncompatibleModelError
        When the model has no convolution of its own (e.g. a backbone nested as one layer):
        pass ``conv_layer=`` to :func:`~maco_tf.outputs.combine.explain_class`, or use
        another method.
    """
    for layer in reversed(model.layers):
        if isinstance(layer, _CONV_TYPES) and len(layer.output.shape) == 4:
            return layer.name
    raise IncompatibleModelError(
        f"model {model.name!r} has no convolution layer of its own for Grad-CAM; pass "
        f"conv_layer= (a 4-D layer of the model), or choose methods without a conv layer"
    )


def build_explainers(
    methods: object,
    method_kwargs: Mapping[str, Mapping[str, object]] | None,
    model: keras.Model,
    conv_layer: str | int | None,
) -> dict[str, object]:
    """``{label: explainer}`` from names, classes, instances or a ``{name: kwargs}`` mapping."""
    if isinstance(methods, (str, bytes)) or not isinstance(methods, (Sequence, Mapping)):
        methods = [methods]
    items = list(methods.items()) if isinstance(methods, Mapping) else [(m, None) for m in methods]
    if not items:
        raise InvalidSettingError("no attribution method given; e.g. methods=('Saliency',)")
    extra = {_key(str(k)): dict(v) for k, v in (method_kwargs or {}).items()}
    explainers: dict[str, object] = {}
    used_keys = set()
    for method, kwargs in items:
        if isinstance(method, str):
            cls, label = _method_class(method), method
        elif inspect.isclass(method):
            cls, label = method, method.__name__
        elif callable(getattr(method, "explain", None)):
            if kwargs:
                raise InvalidSettingError(
                    f"{type(method).__name__} is already built; its kwargs {kwargs!r} cannot apply"
                )
            explainers[_unique(type(method).__name__, explainers)] = method
            continue
        else:
            raise InvalidSettingError(
                f"methods must be Xplique method names, explainer classes or instances; got "
                f"{method!r}"
            )
        options = dict(kwargs or {})
        for key in (_key(label), _key(cls.__name__)):
            if key in extra:
                options = {**extra[key], **options}
                used_keys.add(key)
        parameters = inspect.signature(cls.__init__).parameters
        if "conv_layer" in parameters and options.get("conv_layer") is None:
            options["conv_layer"] = conv_layer if conv_layer is not None else last_conv_layer(model)
        try:
            explainers[_unique(label, explainers)] = cls(model, **options)
        except TypeError as exc:
            raise InvalidSettingError(
                f"cannot build {cls.__name__} with {options!r}: {exc}"
            ) from exc
    unused = set(extra) - used_keys
    if unused:
        raise InvalidSettingError(
            f"method_kwargs names methods that are not used: {', '.join(sorted(unused))}"
        )
    return explainers


def _unique(label: str, taken: Mapping[str, object]) -> str:
    if label not in taken:
        return label
    count = 2
    while f"{label} #{count}" in taken:
        count += 1
    return f"{label} #{count}"


def attribution_maps(explanations: object, count: int) -> np.ndarray:
    """Attributions as ``(N, h, w)`` float32 (channels averaged)."""
    maps = np.asarray(explanations, dtype=np.float32)
    if maps.ndim == 4:
        maps = maps[..., 0] if maps.shape[-1] == 1 else maps.mean(axis=-1)
    if maps.ndim != 3 or maps.shape[0] != count:
        raise IncompatibleModelError(
            f"the attribution method returned shape {np.shape(explanations)}; expected "
            f"({count}, H, W[, C]) image attributions"
        )
    return maps

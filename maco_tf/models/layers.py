"""Address any layer of a Keras model, including layers inside nested models.

A backbone used as one layer of a bigger model (``keras.Sequential([MobileNetV2(...), ...])``
or ``x = backbone(x)`` in a functional model) hides its own layers from the outer model:
``outer.get_layer("block_13_expand_relu")`` fails, and the inner layer's ``output`` lives in the
backbone's own graph, not connected to ``outer.inputs``. Here such a layer is addressed by a
*path*, ``"mobilenetv2_1.00_224/block_13_expand_relu"``, and its output is rebuilt in the outer
graph: the sub-model ``keras.Model(inner.inputs, inner_layer.output)`` is called on the tensor
that feeds the backbone in the outer model. The sub-model shares the backbone's weights.

Keras 3 forbids ``/`` in layer names, so the separator is unambiguous.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator

import keras
import numpy as np

from maco_tf.errors import IncompatibleModelError, UnknownLayerError, format_suggestions, suggest

__all__ = [
    "PATH_SEPARATOR",
    "find_layer",
    "input_in_graph",
    "is_model",
    "is_softmax_activation",
    "is_softmax_layer",
    "as_probabilities",
    "check_scope_names",
    "layer_label",
    "layer_output",
    "layer_paths",
    "model_input_size",
]

#: Separator between the names of a layer path.
PATH_SEPARATOR = "/"

_INDEX_RE = re.compile(r"[+-]?\d+")
#: Names TensorFlow accepts as name scopes (``tf.name_scope``'s pattern); Keras opens one per
#: layer call, so a compiled loop over a layer of another name fails inside TensorFlow.
_SCOPE_NAME_RE = re.compile(r"[A-Za-z0-9_.\\/>-]*")


def is_model(layer: object) -> bool:
    """True for a model (functional or Sequential) whose own layers can be addressed.

    Parameters
    ----------
    layer
        Any object.

    Returns
    -------
    nested
        True when ``layer`` is a Keras model with layers of its own.
    """
    return isinstance(layer, keras.Model) and bool(getattr(layer, "layers", None))


def _walk_paths(model: keras.Model, prefix: str) -> Iterator[str]:
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        yield path
        if is_model(layer):
            yield from _walk_paths(layer, path + PATH_SEPARATOR)


def check_scope_names(model: keras.Model) -> None:
    """Refuse a model with a layer whose name TensorFlow cannot use as a name scope.

    Keras names the scope of each layer call after the layer; in a compiled loop TensorFlow
    then refuses names with other characters than letters, digits and ``_ . / > -`` (a space,
    a colon...), with a traceback from deep inside the model call.

    Raises
    ------
    IncompatibleModelError
        One line naming the first such layer (as a path) and a name that would do.
    """
    for path in layer_paths(model):
        name = path.rsplit(PATH_SEPARATOR, 1)[-1]
        if not _SCOPE_NAME_RE.fullmatch(name):
            fixed = re.sub(r"[^A-Za-z0-9_.>-]", "_", name)
            raise IncompatibleModelError(
                f"layer {path!r} of model {model.name!r} has a name TensorFlow cannot use as a "
                f"scope (only letters, digits and _ . / > - are allowed); rename it, e.g. "
                f"{fixed!r}, where the model is built (name=...) and save the model again"
            )


def layer_paths(model: keras.Model) -> list[str]:
    """Every addressable layer path of ``model``, in layer order, nested models expanded.

    Parameters
    ----------
    model
        A Keras model.

    Returns
    -------
    paths
        E.g. ``["input_layer", "mobilenetv2_1.00_224", "mobilenetv2_1.00_224/Conv1", ...]``.
    """
    return list(_walk_paths(model, ""))


def _model_inputs(model: keras.Model) -> list:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise IncompatibleModelError(
            f"model {model.name!r} has no defined inputs (a subclassed model, or a Sequential "
            f"model without keras.Input?); give maco_tf.load_model(model).model, which traces "
            f"it, or build it on an input, e.g. keras.Input((224, 224, 3))"
        )
    return list(inputs)


def _unknown(model: keras.Model, root: keras.Model, name: str, path: str) -> UnknownLayerError:
    """Error for a name missing from ``model``, suggesting full paths of ``root``."""
    where = f"model {model.name!r}"
    if path != name:
        where += f" (in path {path!r})"
    candidates = layer_paths(root)
    suggestions = list(dict.fromkeys(suggest(path, candidates) + suggest(name, candidates)))
    if not suggestions:  # nothing close: the least far names rather than none
        suggestions = difflib.get_close_matches(path, candidates, n=3, cutoff=0.3)
    suggestions = suggestions[:5]
    return UnknownLayerError(f"unknown layer {name!r} in {where}{format_suggestions(suggestions)}")


def _get_by_index(model: keras.Model, index: int) -> keras.layers.Layer:
    count = len(model.layers)
    if not -count <= index < count:
        raise UnknownLayerError(
            f"layer index {index} out of range for model {model.name!r} with {count} layers "
            f"(valid: {-count} to {count - 1})"
        )
    return model.layers[index]


def _get_by_name(model: keras.Model, name: str, root: keras.Model, path: str) -> keras.layers.Layer:
    for layer in model.layers:
        if layer.name == name:
            return layer
    if _INDEX_RE.fullmatch(name.strip()):
        return _get_by_index(model, int(name))
    raise _unknown(model, root, name, path)


def _split(layer: str | int) -> list[str | int]:
    if isinstance(layer, bool):
        raise TypeError(f"layer must be a name, a path or an int index, not {layer!r}")
    if isinstance(layer, int):
        return [layer]
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a name, a path or an int index, not {type(layer).__name__}")
    parts = layer.split(PATH_SEPARATOR)
    if not layer or any(not part for part in parts):
        raise UnknownLayerError(
            f"invalid layer path {layer!r}: give names separated by {PATH_SEPARATOR!r}, "
            f"e.g. 'mobilenetv2_1.00_224/block_13_expand_relu'"
        )
    return parts


def find_layer(model: keras.Model, layer: str | int) -> list[keras.layers.Layer]:
    """The chain of layers a path goes through, outermost first; the last one is the target.

    Parameters
    ----------
    model
        The model to search.
    layer
        A layer name, an index into ``model.layers`` (an int or a numeric string that is not a
        layer name), or a path ``"nested_model/inner_layer"`` (any depth).

    Returns
    -------
    chain
        ``[outer_layer, ..., target_layer]``; every layer but the last is a nested model.

    Raises
    ------
    UnknownLayerError
        For a name that is not in the model (with close names), an index out of range, or a
        path going through a layer that is not a model.
    """
    chain: list[keras.layers.Layer] = []
    current = model
    parts = _split(layer)
    for depth, part in enumerate(parts):
        path = PATH_SEPARATOR.join(str(p) for p in parts[: depth + 1])
        if isinstance(part, int):
            found = _get_by_index(current, part)
        else:
            found = _get_by_name(current, part, model, path)
        chain.append(found)
        if depth < len(parts) - 1 and not is_model(found):
            raise UnknownLayerError(
                f"layer {path!r} of model {model.name!r} is a {type(found).__name__}, not a "
                f"nested model, so it has no layer {parts[depth + 1]!r}"
            )
        current = found
    return chain


def _graph_nodes(model: keras.Model) -> dict[int, list]:
    """Nodes of ``model``'s graph, by operation id, found walking back from its outputs."""
    nodes: dict[int, list] = {}
    seen: set[tuple[int, int]] = set()
    stack = list(keras.tree.flatten(model.outputs))
    while stack:
        history = getattr(stack.pop(), "_keras_history", None)
        if history is None:
            continue
        operation, node_index = history[0], history[1]
        key = (id(operation), node_index)
        if key in seen:
            continue
        seen.add(key)
        node = operation._inbound_nodes[node_index]
        nodes.setdefault(id(operation), []).append(node)
        stack.extend(keras.tree.flatten(node.input_tensors))
    return nodes


def _output_in_graph(model: keras.Model, layer: keras.layers.Layer) -> object:
    """Symbolic output of ``layer`` (a direct layer of ``model``) connected to ``model.inputs``."""
    inputs = _model_inputs(model)
    if isinstance(layer, keras.layers.InputLayer):
        for tensor in inputs:
            if getattr(tensor, "_keras_history", (None,))[0] is layer:
                return tensor
    nodes = _graph_nodes(model).get(id(layer))
    if not nodes:
        raise IncompatibleModelError(
            f"layer {layer.name!r} is not connected to the inputs of model {model.name!r}"
        )
    outputs = nodes[0].output_tensors
    return outputs[0] if len(outputs) == 1 else outputs


def input_in_graph(model: keras.Model, layer: keras.Model) -> object:
    """Symbolic tensor(s) feeding the nested model ``layer`` inside ``model``'s graph.

    Parameters
    ----------
    model
        The outer model.
    layer
        A nested model that is one of ``model``'s direct layers.

    Returns
    -------
    tensor
        The tensor (or list of tensors) that ``layer`` is called on in ``model``.

    Raises
    ------
    IncompatibleModelError
        When ``layer`` is not connected to ``model``'s inputs.
    """
    nodes = _graph_nodes(model).get(id(layer))
    if not nodes:
        raise IncompatibleModelError(
            f"nested model {layer.name!r} is not connected to the inputs of model {model.name!r}"
        )
    inputs = nodes[0].input_tensors
    return inputs[0] if len(inputs) == 1 else list(inputs)


def layer_output(model: keras.Model, layer: str | int) -> object:
    """Symbolic output of a layer, connected to ``model.inputs``, for objectives.

    Parameters
    ----------
    model
        A functional or Sequential Keras model with defined inputs.
    layer
        A layer name, an index into ``model.layers``, or a path into nested models such as
        ``"mobilenetv2_1.00_224/block_13_expand_relu"``.

    Returns
    -------
    tensor
        A ``KerasTensor`` such that ``keras.Model(model.inputs, tensor)`` is valid. For a
        nested layer, it is the output of a sub-model (sharing the nested model's weights)
        applied to the tensor that feeds the nested model in ``model``.

    Raises
    ------
    UnknownLayerError
        For an unknown name (the message lists close paths) or a bad index.
    IncompatibleModelError
        For a model without defined inputs, or a layer cut off from them.
    """
    chain = find_layer(model, layer)
    if len(chain) == 1:
        return _output_in_graph(model, chain[0])
    nested = chain[0]
    inner_path = PATH_SEPARATOR.join(item.name for item in chain[1:])
    inner_output = layer_output(nested, inner_path)
    inputs = _model_inputs(nested)
    sub_model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, inner_output)
    return sub_model(input_in_graph(model, nested))


def layer_label(model: keras.Model, layer: str | int) -> str:
    """The path of a layer as names: an index (or a numeric part of a path) becomes a name.

    Parameters
    ----------
    model
        The model to search.
    layer
        A name, index or path, as :func:`find_layer` takes.

    Returns
    -------
    label
        E.g. ``"mobilenetv2_1.00_224/block_13_expand_relu"`` for ``"mobilenetv2_1.00_224/-20"``.

    Raises
    ------
    UnknownLayerError
        As :func:`find_layer`.
    """
    return PATH_SEPARATOR.join(item.name for item in find_layer(model, layer))


def is_softmax_layer(layer: object) -> bool:
    """True for a layer that applies a softmax and nothing else.

    Parameters
    ----------
    layer
        A Keras layer.

    Returns
    -------
    softmax
        True for ``keras.layers.Softmax`` and ``Activation("softmax")``; a layer such as a
        ``Dense(..., activation="softmax")`` is not (it computes more than the softmax).
    """
    if isinstance(layer, keras.layers.Softmax):
        return True
    return type(layer) is keras.layers.Activation and is_softmax_activation(layer.activation)


def as_probabilities(scores: object) -> np.ndarray:
    """Class scores as probabilities: kept when they already are, else through a softmax.

    Parameters
    ----------
    scores
        ``(..., classes)`` model outputs: logits or probabilities.

    Returns
    -------
    probabilities
        float64, same shape, each row summing to 1. Rows are read as probabilities when all
        values are >= 0 and every row sums to 1 (within 1e-3).
    """
    values = np.asarray(scores, dtype=np.float64)
    if np.all(values >= 0) and np.allclose(values.sum(axis=-1), 1.0, atol=1e-3):
        return values
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def is_softmax_activation(activation: object) -> bool:
    """True when a layer's ``activation`` (a Keras activation function) is the softmax.

    Parameters
    ----------
    activation
        A layer's ``activation`` attribute.

    Returns
    -------
    softmax
        True for ``keras.activations.softmax``.
    """
    return getattr(activation, "__name__", "") == "softmax"


def model_input_size(model: keras.Model) -> tuple[int, int, int]:
    """``(height, width, channels)`` of a model's single image input.

    Parameters
    ----------
    model
        A Keras model with one ``(batch, height, width, channels)`` input of fixed size.

    Returns
    -------
    size
        ``(height, width, channels)`` as ints.

    Raises
    ------
    IncompatibleModelError
        For a model without inputs, with several inputs, with non-image inputs, or with an
        unknown height, width or channel count.
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise IncompatibleModelError(
            f"{getattr(model, 'name', model)!r} has no defined inputs; build it on an "
            f"input, e.g. keras.Input((224, 224, 3))"
        )
    if len(inputs) != 1:
        raise IncompatibleModelError(
            f"model {model.name!r} has {len(inputs)} inputs; MACO needs a single image input"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise IncompatibleModelError(
            f"model {model.name!r} takes inputs of shape {shape}; MACO needs images "
            f"(batch, height, width, channels), channels last"
        )
    height, width, channels = shape[1:]
    if channels is None:
        raise IncompatibleModelError(f"model {model.name!r} has an unknown channel count")
    if height is None or width is None:
        raise IncompatibleModelError(
            f"model {model.name!r} accepts any image size {shape}; rebuild it on a fixed "
            f"size input, e.g. keras.Input((224, 224, {channels}))"
        )
    return int(height), int(width), int(channels)

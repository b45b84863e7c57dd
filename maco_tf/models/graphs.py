"""Reshape a model's graph for MACO, keeping its layers (and weights) and their names.

* :func:`as_functional`: a subclassed model traced into a functional graph on a
  ``keras.Input``, so that its sub-layers are reachable by path;
* :func:`single_image_model`: one image input (else a clear error) and one output (the first,
  or the one named);
* :func:`rebuild_on_input`: the same layers on a fixed-size input (an open ``(None, None, C)``
  input closed), optionally behind a preprocessing layer.

:func:`as_functional` and :func:`single_image_model` keep the very layer objects (their graphs
are the model's own); :func:`rebuild_on_input` copies them with their weights, so that each
layer keeps a single graph and ``layer.input`` / ``layer.output`` stay those of the new model.
"""

from __future__ import annotations

import keras

from maco_tf.errors import IncompatibleModelError, format_suggestions, suggest

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "as_functional",
    "has_inputs",
    "open_input",
    "output_names",
    "rebuild_on_input",
    "single_image_model",
]

#: Side an open input is closed at when neither ``input_size`` nor the model's family tells.
DEFAULT_INPUT_SIZE = 224


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def has_inputs(model: keras.Model) -> bool:
    """True when ``model`` has a symbolic graph (functional, or Sequential on an input)."""
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def _built_shape(model: keras.Model) -> tuple | None:
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) != 1:
        return None
    shape = tuple(next(iter(shapes.values())))
    return shape if len(shape) == 4 and shape[-1] is not None else None


def as_functional(model: keras.Model, input_size: int | None = None) -> keras.Model:
    """``model`` itself when it has a graph, else its ``call`` traced on a ``keras.Input``.

    Parameters
    ----------
    model
        A Keras model; a subclassed one must have been built or called on images once (its
        input shape is read from that).
    input_size
        Side of the input to trace on; default: the size it was built at.

    Returns
    -------
    model
        A functional model whose layers are the sub-layers ``call`` uses (their names are the
        paths), sharing their weights, named as ``model``.

    Raises
    ------
    IncompatibleModelError
        For a model never built (no input shape known), or whose ``call`` cannot run on
        symbolic tensors (raw TensorFlow ops, Python control flow on values...).
    """
    if has_inputs(model):
        return model
    shape = _built_shape(model)
    if shape is None:
        raise IncompatibleModelError(
            f"model {model.name!r} has no defined inputs and was never built on images; call "
            f"it once on a batch (model(images)) or build it on keras.Input((224, 224, 3))"
        )
    height, width = (input_size, input_size) if input_size else shape[1:3]
    inputs = keras.Input((height, width, shape[-1]), name="image")
    try:
        outputs = model.call(inputs)
    except Exception as exc:  # any failure to trace user code is reported, with what to do
        raise IncompatibleModelError(
            f"subclassed model {model.name!r} cannot be traced on a keras.Input "
            f"({_first_line(exc)}); use keras.ops instead of tf ops in call(), or rebuild it "
            f"with the functional API, or expose the layer to visualise as an output of call()"
        ) from exc
    return keras.Model(inputs, outputs, name=model.name)


def output_names(model: keras.Model) -> list[str]:
    """Names of the layers that make each output of ``model``, in output order."""
    names = []
    for index, tensor in enumerate(keras.tree.flatten(model.outputs)):
        history = getattr(tensor, "_keras_history", None)
        names.append(history[0].name if history is not None else f"output_{index}")
    return names


def single_image_model(model: keras.Model, output: str | None = None) -> tuple[keras.Model, tuple]:
    """``model`` with one image input and one output, and notes of what was chosen.

    Parameters
    ----------
    model
        A functional or Sequential Keras model.
    output
        Name of the output to keep (the layer that makes it); None: the first output.

    Returns
    -------
    model, notes
        The model (itself when it already has one output) and one note when an output was
        chosen among several.

    Raises
    ------
    IncompatibleModelError
        For several inputs, or an ``output`` that is not one of the outputs.
    """
    inputs = list(model.inputs)
    if len(inputs) != 1:
        names = ", ".join(str(getattr(t, "name", "?")) for t in inputs)
        raise IncompatibleModelError(
            f"model {model.name!r} has {len(inputs)} inputs ({names}); MACO optimises one image: "
            f"wrap it in a keras.Model with a single image input (constants or layers for the "
            f"others) and give that model"
        )
    outputs = list(keras.tree.flatten(model.outputs))
    names = output_names(model)
    if output is None and len(outputs) == 1:
        return model, ()
    if output is None:
        chosen = 0
        note = (
            f"model has {len(outputs)} outputs ({', '.join(names)}): the first, {names[0]!r}, is "
            f"used; choose another with --output NAME (Python: output=)"
        )
    elif output in names:
        chosen = names.index(output)
        note = f"output {output!r} used (of {', '.join(names)})"
    else:
        raise IncompatibleModelError(
            f"model {model.name!r} has no output {output!r} (outputs: {', '.join(names)})"
            f"{format_suggestions(suggest(output, names))}; fix --output (Python: output=)"
        )
    if len(outputs) == 1:
        return model, ()
    return keras.Model(inputs[0], outputs[chosen], name=model.name), (note,)


def open_input(model: keras.Model) -> bool:
    """True when the height or width of the model's (single) input is not fixed."""
    shape = tuple(model.inputs[0].shape)
    return len(shape) == 4 and (shape[1] is None or shape[2] is None)


def _copier(pairs: list) -> object:
    """An ``operation_fn`` copying layers (and noting ``(old, copy)``), keeping other ops."""

    def copy(operation: object) -> object:
        if not isinstance(operation, keras.layers.Layer):
            return operation
        twin = operation.__class__.from_config(operation.get_config())
        pairs.append((operation, twin))
        return twin

    return copy


def _run_layers(model: keras.Model, fed: object, pairs: list) -> object:
    """``model``'s layers (copied) applied to ``fed``; ``pairs`` gets ``(layer, copy)``."""
    copy = _copier(pairs)
    if isinstance(model, keras.Sequential):
        outputs = fed
        for layer in model.layers:
            outputs = copy(layer)(outputs)
        return outputs
    return model._run_through_graph(fed, operation_fn=copy)


def rebuild_on_input(
    model: keras.Model, size: tuple[int, int] | None = None, front: object = None
) -> keras.Model:
    """The same layers (copies, same weights) on a new image input, of ``size``, after ``front``.

    Parameters
    ----------
    model
        A functional or Sequential model with a single image input.
    size
        ``(height, width)`` of the new input; None: the current one.
    front
        A layer applied to the input before the model's first layers (preprocessing); None:
        none.

    Returns
    -------
    model
        A functional model of the same name whose layers are copies of ``model``'s, of the
        same names and weights, with ``front`` first if given.

    Raises
    ------
    IncompatibleModelError
        When the layers cannot run on that input (e.g. weights that depend on the size).
    """
    shape = tuple(model.inputs[0].shape)
    height, width = size if size is not None else shape[1:3]
    name = getattr(model.inputs[0], "name", None) or "image"
    inputs = keras.Input((height, width, shape[-1]), name=name, dtype=model.inputs[0].dtype)
    fed = front(inputs) if front is not None else inputs
    pairs: list = []
    try:
        outputs = _run_layers(model, fed, pairs)
        for layer, twin in pairs:
            twin.set_weights(layer.get_weights())
    except Exception as exc:  # any failure to rebuild a user model is reported, with what to do
        raise IncompatibleModelError(
            f"model {model.name!r} cannot run on a {height}x{width} input "
            f"({_first_line(exc)}); save it with a fixed input size, or give --input-size "
            f"(Python: input_size=) the size it needs"
        ) from exc
    return keras.Model(inputs, outputs, name=model.name)

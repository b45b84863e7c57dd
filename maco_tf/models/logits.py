"""Find a classifier's logits: its output, with a final softmax taken off.

Maximising a softmax probability rewards pushing the other classes down as much as raising the
class; MACO (as Xplique and Lucid) maximises the pre-softmax logit. :func:`strip_softmax` is the
one mechanism for it, used by :func:`maco_tf.load_model` and by
:func:`maco_tf.targets.units.class_logits` when no layer is given.
"""

from __future__ import annotations

import keras

from maco_tf.models.layers import is_softmax_activation, is_softmax_layer

__all__ = ["output_layer", "strip_softmax"]


def _output_node(model: keras.Model) -> tuple[object, object]:
    """The operation making ``model``'s (first) output and its node in ``model``'s graph."""
    tensor = keras.tree.flatten(model.outputs)[0]
    operation, node_index = tensor._keras_history[0], tensor._keras_history[1]
    return operation, operation._inbound_nodes[node_index]


def output_layer(model: keras.Model) -> object:
    """The layer (or operation) that makes ``model``'s first output.

    Parameters
    ----------
    model
        A functional or Sequential model with defined outputs.

    Returns
    -------
    layer
        The Keras layer or operation.
    """
    return _output_node(model)[0]


def strip_softmax(model: keras.Model) -> tuple[keras.Model, str, tuple[str, ...]]:
    """The model with logits as output, the name of its logits layer, and notes of changes.

    Parameters
    ----------
    model
        A functional or Sequential model with one output (classes, or any features).

    Returns
    -------
    model, logits_layer, notes
        When the output comes from a ``Softmax`` or ``Activation("softmax")`` layer: the same
        model and the layer feeding it. From a ``Dense(..., activation="softmax")``: a model
        whose output is a linear copy of it (same weights), named ``<name>_logits``. Else the
        model unchanged and its output layer. ``notes`` says what was done (empty if nothing).
    """
    last, node = _output_node(model)
    feeding = keras.tree.flatten(node.input_tensors)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    if is_softmax_layer(last) and len(feeding) == 1:
        previous = feeding[0]._keras_history[0]
        if any(layer is previous for layer in model.layers):
            note = f"final softmax layer {last.name!r} skipped: classes use {previous.name!r}"
            return model, previous.name, (note,)
        logits = keras.layers.Identity(name=f"{last.name}_logits")(feeding[0])
        note = f"final softmax layer {last.name!r} skipped: classes use its input"
        return keras.Model(inputs, logits, name=model.name), f"{last.name}_logits", (note,)
    if isinstance(last, keras.layers.Dense) and is_softmax_activation(last.activation):
        config = {**last.get_config(), "activation": "linear", "name": f"{last.name}_logits"}
        linear = keras.layers.Dense.from_config(config)
        logits = linear(feeding[0])
        linear.set_weights(last.get_weights())
        rebuilt = keras.Model(inputs, logits, name=model.name)
        note = f"softmax of {last.name!r} removed: classes use the linear layer {linear.name!r}"
        return rebuilt, linear.name, (note,)
    return model, last.name, ()

"""Objectives on the token layers of vision transformers (outputs ``(batch, tokens, dim)``).

A transformer block outputs one ``dim``-vector per token: a class token first (when the model
has one, ``cls_token=True``) then one token per image patch. An objective reads a feature (or
a direction) on a *token selection*:

* ``tokens="patches"``: the mean over the patch tokens (tokens ``1 .. T-1`` with a class
  token, all tokens without), the analogue of a CNN channel averaged over positions;
* ``tokens="cls"``: the class token, which the classification head reads;
* ``tokens=i`` (an int, negative counts from the end): the token at position ``i``.

:func:`token_channel` and :func:`token_neuron` maximise features (last-axis units) of the
selection; they differ only in their default selection (patches for a channel, the class
token for a neuron) and names. :func:`token_direction` maximises ``dot * cos ** p`` between the
selection's (pooled) vector and given directions. All return Xplique ``Objective`` objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective

from maco_tf.errors import MacoError
from maco_tf.models.layers import layer_label, layer_output
from maco_tf.targets.concepts import dot_cossim_vectors
from maco_tf.targets.indices import check_indices, check_names
from maco_tf.targets.units import DirectionShapeError

__all__ = [
    "TokenLayerError",
    "TokenSelectionError",
    "token_channel",
    "token_direction",
    "token_neuron",
    "token_weights",
]

TokenSpec = str | int


class TokenLayerError(MacoError):
    """The layer is not a token layer: its output is not ``(batch, tokens, dim)``."""


class TokenSelectionError(MacoError):
    """The token selection (``"patches"``, ``"cls"`` or a position) does not fit the layer."""


def _token_layer(model: object, layer: str | int) -> tuple[object, str, int, int]:
    """Symbolic output, label, token count and dim of a token layer."""
    label = layer_label(model, layer)
    tensor = layer_output(model, layer)
    shape = tuple(tensor.shape)
    if len(shape) != 3:
        raise TokenLayerError(
            f"layer {label!r} has output shape {shape}, not (batch, tokens, dim): it is not a "
            f"token layer; for convolutional layers use maco_tf.targets.channel/neuron/direction"
        )
    if shape[1] is None or shape[2] is None:
        raise TokenLayerError(f"layer {label!r} has an unknown token count or dim {shape}")
    return tensor, label, int(shape[1]), int(shape[2])


def token_weights(nb_tokens: int, tokens: TokenSpec, cls_token: bool = True) -> np.ndarray:
    """Averaging weights ``(nb_tokens,)`` of a token selection (they sum to 1).

    Parameters
    ----------
    nb_tokens
        Tokens ``T`` of the layer.
    tokens
        ``"patches"``, ``"cls"`` or a position (negative counts from the end).
    cls_token
        Whether token 0 is a class token.

    Returns
    -------
    weights
        float32 ``(nb_tokens,)``.

    Raises
    ------
    TokenSelectionError
        For ``"cls"`` without a class token, a position out of range, or an unknown name.
    """
    weights = np.zeros(nb_tokens, dtype=np.float32)
    if isinstance(tokens, str):
        if tokens == "patches":
            first = 1 if cls_token else 0
            if nb_tokens - first < 1:
                raise TokenSelectionError(f"the layer has no patch token ({nb_tokens} token(s))")
            weights[first:] = 1.0 / (nb_tokens - first)
            return weights
        if tokens == "cls":
            if not cls_token:
                raise TokenSelectionError(
                    "tokens='cls' needs a class token; this objective was built with "
                    "cls_token=False"
                )
            weights[0] = 1.0
            return weights
        raise TokenSelectionError(f"tokens must be 'patches', 'cls' or a position, not {tokens!r}")
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)):
        raise TokenSelectionError(f"tokens must be 'patches', 'cls' or an int, not {tokens!r}")
    if not -nb_tokens <= int(tokens) < nb_tokens:
        raise TokenSelectionError(
            f"token {tokens} is out of range for a layer with {nb_tokens} tokens "
            f"(valid: {-nb_tokens} to {nb_tokens - 1})"
        )
    weights[int(tokens)] = 1.0
    return weights


def _token_label(tokens: TokenSpec) -> str:
    return str(tokens) if isinstance(tokens, str) else f"token{int(tokens)}"


def _weighted_sum_loss(output, mask):
    """Xplique-style masked loss: ``sum(output * mask)`` over the token and feature axes."""
    return tf.reduce_sum(output * mask, axis=[1, 2])


def _features(
    model: object,
    layer: str | int,
    ids: int | Sequence[int],
    tokens: TokenSpec,
    cls_token: bool,
    multiplier: float,
    names: str | Sequence[str] | None,
    kind: str,
) -> Objective:
    tensor, label, nb_tokens, dim = _token_layer(model, layer)
    weights = token_weights(nb_tokens, tokens, cls_token)
    ids = check_indices(ids, dim, "feature", f"token layer {label!r} of dim {dim}")
    masks = []
    for index in ids:
        mask = np.zeros((nb_tokens, dim), dtype=np.float32)
        mask[:, index] = weights
        masks.append(mask)
    default = [f"{kind}#{label}[{_token_label(tokens)}]_{i}" for i in ids]
    names = check_names(names, default)
    return Objective(model, [tensor], [masks], [_weighted_sum_loss], [multiplier], [names])


def token_channel(
    model: object,
    layer: str | int,
    ids: int | Sequence[int],
    tokens: TokenSpec = "patches",
    cls_token: bool = True,
    multiplier: float = 1.0,
    names: str | Sequence[str] | None = None,
) -> Objective:
    """Maximise features of a token layer, averaged over a token selection (default patches).

    Parameters
    ----------
    model
        A Keras model.
    layer
        Name, index or nested path of a layer with output ``(batch, tokens, dim)``.
    ids
        Feature index (or indices) on the last axis.
    tokens
        ``"patches"`` (mean over patch tokens), ``"cls"`` or a token position.
    cls_token
        Whether token 0 is a class token (excluded from ``"patches"``).
    multiplier
        Factor of the sub-objective.
    names
        One name per feature; default ``TokenChannel#<layer>[<tokens>]_<id>``.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per feature; its value is the feature's
        mean over the selected tokens.

    Raises
    ------
    TokenLayerError
        If the layer's output is not ``(batch, tokens, dim)``.
    TokenSelectionError
        For a bad token selection.
    TargetIndexError
        For a feature outside ``0 .. dim - 1``.
    """
    return _features(model, layer, ids, tokens, cls_token, multiplier, names, "TokenChannel")


def token_neuron(
    model: object,
    layer: str | int,
    ids: int | Sequence[int],
    tokens: TokenSpec = "cls",
    cls_token: bool = True,
    multiplier: float = 1.0,
    names: str | Sequence[str] | None = None,
) -> Objective:
    """Maximise single features of one token (default the class token), or of a selection.

    Same as :func:`token_channel` with the class token as default selection; names are
    ``TokenNeuron#<layer>[<tokens>]_<id>``. Use ``tokens=i`` for the patch token at position
    ``i`` (``1 + row * patches_per_row + col`` with a class token).

    Raises
    ------
    TokenLayerError, TokenSelectionError, TargetIndexError
        As :func:`token_channel`.
    """
    return _features(model, layer, ids, tokens, cls_token, multiplier, names, "TokenNeuron")


def _token_direction_loss(cossim_pow: float):
    """Loss on ``(1, T, D)`` outputs; mask ``(1, T + 1, D)``: token weights rows, then vector."""
    power = float(cossim_pow)

    def token_direction_loss(output, mask):
        nb_tokens = output.shape[1]
        weights = mask[:, :nb_tokens, :1]
        vector = mask[:, nb_tokens, :]
        pooled = tf.reduce_sum(output * weights, axis=1)
        return dot_cossim_vectors(pooled, vector, power)

    return token_direction_loss


def _direction_vectors(vectors: object, dim: int, label: str) -> list[np.ndarray]:
    if isinstance(vectors, (list, tuple)):
        items = [np.asarray(v, dtype=np.float32) for v in vectors]
    else:
        array = np.asarray(vectors, dtype=np.float32)
        items = list(array) if array.ndim == 2 else [array]
    if not items:
        raise DirectionShapeError("no direction vector given")
    for index, vector in enumerate(items):
        if vector.shape != (dim,):
            raise DirectionShapeError(
                f"direction {index} has shape {vector.shape}; token layer {label!r} needs "
                f"vectors of shape ({dim},)"
            )
        if not np.all(np.isfinite(vector)) or not np.any(vector):
            raise DirectionShapeError(f"direction {index} is zero or has NaN/infinite values")
    return items


def token_direction(
    model: object,
    layer: str | int,
    vectors: object,
    tokens: TokenSpec = "patches",
    cls_token: bool = True,
    cossim_pow: float = 2.0,
    multiplier: float = 1.0,
    names: str | Sequence[str] | None = None,
) -> Objective:
    """Maximise directions of a token layer's (pooled) vectors: ``dot * max(cos, 0.1) ** p``.

    Parameters
    ----------
    model
        A Keras model.
    layer
        Name, index or nested path of a layer with output ``(batch, tokens, dim)``.
    vectors
        One direction ``(dim,)``, a list of them, or an array ``(N, dim)``.
    tokens
        ``"patches"`` (mean of the patch tokens' vectors), ``"cls"`` or a token position.
    cls_token
        Whether token 0 is a class token.
    cossim_pow
        Power of the cosine (Xplique's default for directions is 2).
    multiplier
        Factor of the sub-objective.
    names
        One name per direction; default ``TokenDirection#<layer>[<tokens>]_<i>``.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per direction.

    Raises
    ------
    TokenLayerError, TokenSelectionError
        As :func:`token_channel`.
    DirectionShapeError
        For a vector that is not ``(dim,)``, zero, or not finite.
    """
    tensor, label, nb_tokens, dim = _token_layer(model, layer)
    weights = token_weights(nb_tokens, tokens, cls_token)
    items = _direction_vectors(vectors, dim, label)
    masks = []
    for vector in items:
        mask = np.empty((nb_tokens + 1, dim), dtype=np.float32)
        mask[:nb_tokens] = weights[:, None]
        mask[nb_tokens] = vector
        masks.append(mask)
    default = [f"TokenDirection#{label}[{_token_label(tokens)}]_{i}" for i in range(len(items))]
    names = check_names(names, default)
    loss = _token_direction_loss(cossim_pow)
    return Objective(model, [tensor], [masks], [loss], [multiplier], [names])

"""Concept objectives: visualise the concepts a fitted CRAFT found, with MACO.

CRAFT (Fel et al., 2023) factorises a latent layer's non-negative activations ``A ~ U W``
(NMF); each row ``W[k]`` of the concept bank is a direction of the latent space. A concept is
visualised by maximising ``dot(a, W[k]) * cos(a, W[k]) ** p`` where ``a`` is the latent
activation of the MACO image, *pooled the way CRAFT pooled the activations it factorised*:

* :class:`xplique.concepts.CraftTf` feeds crops through ``input_to_latent_model`` and averages
  an ``(H, W, C)`` latent over its spatial axes, so ``W[k]`` describes a whole crop: the
  objective averages the latent over positions, then scores the pooled ``(C,)`` vector.
* :class:`xplique.concepts.HolisticCraftTf` factorises every spatial position (or token) on
  its own, so ``W[k]`` describes one position: the objective scores every position and
  averages the scores.

The objective is an Xplique ``Objective`` (one combination per concept) on a Keras model whose
input is the image and whose output is CRAFT's latent layer, so it combines with other
objectives and runs on :func:`maco_tf.visualize`. :func:`visualize_concepts` visualises the
concepts of a fitted class as one batch and attaches CRAFT's concept importances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import keras
import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective

from maco_tf.core.visualization import Visualization, visualize
from maco_tf.errors import IncompatibleModelError, MacoError
from maco_tf.models.layers import layer_label, layer_output, model_input_size
from maco_tf.targets.indices import TargetIndexError, check_indices

__all__ = [
    "ConceptIndexError",
    "ConceptModelError",
    "ConceptVisualization",
    "CraftNotFittedError",
    "concept_bank",
    "concept_objective",
    "dot_cossim_vectors",
    "visualize_concepts",
]

#: Floor of the cosine before the power, as Xplique's ``dot_cossim`` (keeps a gradient).
COSINE_FLOOR = 0.1

_EPS = 1e-8


class CraftNotFittedError(MacoError):
    """The CRAFT object has no concept bank yet (``fit`` was not called)."""


class ConceptIndexError(TargetIndexError):
    """A concept id is outside ``0 .. number_of_concepts - 1``."""


class ConceptModelError(MacoError):
    """No Keras image-to-latent model can be found, or it does not match the concept bank."""


def dot_cossim_vectors(vectors: tf.Tensor, directions: tf.Tensor, cossim_pow: float) -> tf.Tensor:
    """``dot(v, d) * max(cos(v, d), 0.1) ** p`` along the last axis, for each leading index.

    Parameters
    ----------
    vectors, directions
        Broadcastable tensors ``(..., C)``.
    cossim_pow
        Power ``p`` of the cosine; 0 gives the plain dot product.

    Returns
    -------
    values
        ``(...)``: one value per vector.
    """
    dot = tf.reduce_sum(vectors * directions, axis=-1)
    norms = tf.sqrt(tf.reduce_sum(tf.square(vectors), axis=-1) + _EPS) * tf.sqrt(
        tf.reduce_sum(tf.square(directions), axis=-1) + _EPS
    )
    cosine = tf.maximum(dot / norms, COSINE_FLOOR)
    return dot * cosine**cossim_pow


def _concept_loss(pooled: bool, cossim_pow: float):
    """Loss ``func(latent, concept)`` for latents ``(1, *positions, C)`` and masks ``(1, C)``."""
    power = float(cossim_pow)

    def concept_loss(latent, concept):
        positions = list(range(1, len(latent.shape) - 1))
        direction = tf.reshape(
            concept, (-1,) + (1,) * (len(latent.shape) - 2) + (concept.shape[-1],)
        )
        if pooled and positions:
            mean = tf.reduce_mean(latent, axis=positions)
            return dot_cossim_vectors(mean, concept, power)
        values = dot_cossim_vectors(latent, direction, power)
        return tf.reduce_mean(values, axis=positions) if positions else values

    return concept_loss


def _is_holistic(craft: object) -> bool:
    return hasattr(craft, "latent_extractor") and not hasattr(craft, "input_to_latent_model")


def _check_fitted(craft: object) -> None:
    """Raise :class:`CraftNotFittedError` unless ``craft`` has a concept bank."""
    if not (hasattr(craft, "input_to_latent_model") or hasattr(craft, "latent_extractor")):
        raise ConceptModelError(
            f"expected a fitted xplique.concepts.CraftTf or HolisticCraftTf, got "
            f"{type(craft).__name__}"
        )
    factorization = getattr(craft, "factorization", None)
    factorizer = getattr(craft, "factorizer", None)
    not_fitted = factorization is None or getattr(factorization, "concept_bank_w", None) is None
    if factorizer is not None and not getattr(factorizer, "is_fitted", True):
        not_fitted = True
    if not_fitted:
        raise CraftNotFittedError(
            f"this {type(craft).__name__} has not been fitted: call craft.fit(images, class_id) "
            f"before visualising its concepts"
        )


def concept_bank(craft: object) -> np.ndarray:
    """The concept bank ``W`` ``(n_concepts, C)`` of a fitted CRAFT, float32.

    Raises
    ------
    CraftNotFittedError
        If ``craft`` was not fitted.
    """
    _check_fitted(craft)
    return np.asarray(craft.factorization.concept_bank_w, dtype=np.float32)


def _keras_models_in_closure(func: object) -> list[keras.Model]:
    cells = getattr(func, "__closure__", None) or ()
    found = []
    for cell in cells:
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, keras.Model):
            found.append(value)
    return found


def _latent_model(craft: object) -> keras.Model:
    """CRAFT's image-to-latent Keras model (``g`` in the paper)."""
    if _is_holistic(craft):
        encoder = craft.latent_extractor.input_to_latent_model
        if isinstance(encoder, keras.Model):
            return encoder
        # LayeredModelExtractorBuilder wraps its Keras encoder in a function returning LatentData.
        candidates = _keras_models_in_closure(encoder)
        if len(candidates) == 1:
            return candidates[0]
        raise ConceptModelError(
            "cannot find the Keras model behind this HolisticCraftTf's latent extractor; pass "
            "model= (a Keras model taking images) and layer= (its layer whose output CRAFT "
            "factorised)"
        )
    encoder = craft.input_to_latent_model
    if not isinstance(encoder, keras.Model):
        raise ConceptModelError(
            f"craft.input_to_latent_model is a {type(encoder).__name__}, not a Keras model; pass "
            f"model= and layer="
        )
    return encoder


def _latent_tensor(model: keras.Model, layer: str | int | None) -> tuple[object, str]:
    """Symbolic latent tensor connected to ``model.inputs``, and its label."""
    try:
        model_input_size(model)
    except IncompatibleModelError as exc:
        raise ConceptModelError(
            f"the latent model {model.name!r} cannot be optimised: {exc}. Build CRAFT's "
            f"input_to_latent_model as keras.Model(model.inputs, model.get_layer(...).output)"
        ) from exc
    if layer is not None:
        label = layer_label(model, layer)
        return layer_output(model, layer), label
    outputs = list(model.outputs)
    if len(outputs) != 1:
        raise ConceptModelError(
            f"the latent model {model.name!r} has {len(outputs)} outputs; pass layer= to choose "
            f"the one CRAFT factorised"
        )
    return outputs[0], model.name


def _concept_ids(ids: int | Sequence[int] | None, count: int) -> list[int]:
    if ids is None:
        return list(range(count))
    return check_indices(ids, count, "concept", f"a CRAFT with {count} concepts", ConceptIndexError)


def concept_objective(
    craft: object,
    concept_ids: int | Sequence[int] | None = None,
    cossim_pow: float = 1.0,
    layer: str | int | None = None,
    *,
    model: keras.Model | None = None,
    multiplier: float = 1.0,
    names: Sequence[str] | None = None,
) -> Objective:
    """Objective maximising CRAFT concept vectors ``W[k]`` in CRAFT's latent space.

    Parameters
    ----------
    craft
        A fitted ``xplique.concepts.CraftTf`` or ``HolisticCraftTf``.
    concept_ids
        Concepts to visualise (rows of ``W``); default all.
    cossim_pow
        Power ``p`` of the cosine in ``dot * cos ** p`` (0: plain dot product).
    layer
        Layer of ``model`` whose output CRAFT factorised; default the model's output.
    model
        Keras model taking the images; default CRAFT's ``input_to_latent_model`` (for
        ``HolisticCraftTf``, the Keras encoder inside its latent extractor).
    multiplier
        Factor of the sub-objective.
    names
        One name per concept; default ``Concept#<k>``.

    Returns
    -------
    objective
        An Xplique ``Objective`` with one combination per concept. For ``CraftTf`` the latent
        is averaged over its spatial axes before scoring (as CRAFT pools crops); for
        ``HolisticCraftTf`` every position is scored and the scores averaged.

    Raises
    ------
    CraftNotFittedError
        If ``craft`` was not fitted.
    ConceptIndexError
        For a concept id outside the bank.
    ConceptModelError
        If no image-to-latent Keras model is found, or its channels differ from ``W``'s.
    """
    bank = concept_bank(craft)
    ids = _concept_ids(concept_ids, bank.shape[0])
    model = model if model is not None else _latent_model(craft)
    tensor, label = _latent_tensor(model, layer)
    channels = tensor.shape[-1]
    if channels != bank.shape[1]:
        raise ConceptModelError(
            f"layer {label!r} has {channels} channels but CRAFT's concepts have {bank.shape[1]}; "
            f"pass the layer CRAFT factorised"
        )
    if names is None:
        names = [f"Concept#{k}" for k in ids]
    elif len(names) != len(ids):
        raise MacoError(f"got {len(names)} names for {len(ids)} concepts")
    loss = _concept_loss(pooled=not _is_holistic(craft), cossim_pow=cossim_pow)
    masks = [bank[k] for k in ids]
    return Objective(model, [tensor], [masks], [loss], [multiplier], [list(names)])


@dataclass
class ConceptVisualization(Visualization):
    """A :class:`~maco_tf.Visualization` of CRAFT concepts, with their importances.

    Attributes
    ----------
    concept_ids
        Concept (row of ``W``) shown by each image (repeated with ``copies=``).
    class_id
        Class CRAFT was fitted on.
    importances
        ``(N,)`` CRAFT importance (Sobol total index) of each image's concept, or None.
    ranking
        Positions in this batch in decreasing importance (``images[ranking[0]]`` is the
        most important concept), or None without importances.
    """

    concept_ids: tuple[int, ...] = ()
    class_id: int | None = None
    importances: np.ndarray | None = None
    ranking: np.ndarray | None = None

    @property
    def ranked_concepts(self) -> tuple[int, ...] | None:
        """Concept ids in decreasing importance (each once), or None without importances."""
        if self.ranking is None:
            return None
        return tuple(dict.fromkeys(self.concept_ids[i] for i in self.ranking))


def _select_craft(craft: object, class_id: int | None) -> object:
    """The CRAFT of ``class_id`` (a ``CraftManagerTf`` holds one per class)."""
    instances = getattr(craft, "craft_instances", None)
    if instances is not None:
        if class_id is None:
            if len(instances) != 1:
                raise MacoError(
                    f"this CRAFT manager explains classes {sorted(instances)}; pass class_id="
                )
            return next(iter(instances.values()))
        if class_id not in instances:
            raise TargetIndexError(
                f"class {class_id} is not explained by this CRAFT manager (classes: "
                f"{sorted(instances)})"
            )
        return instances[class_id]
    _check_fitted(craft)
    fitted = craft.factorization.class_id
    if class_id is not None and fitted is not None and int(class_id) != int(fitted):
        raise TargetIndexError(
            f"this CRAFT was fitted on class {fitted}, not {class_id}; fit one CRAFT per class "
            f"(or use CraftManagerTf)"
        )
    return craft


def _all_importances(craft: object, importances: bool | Sequence[float]) -> np.ndarray | None:
    """Importance of every concept of ``craft``, or None when not requested / not available."""
    count = concept_bank(craft).shape[0]
    if importances is False or importances is None:
        return None
    if importances is not True:
        values = np.asarray(importances, dtype=np.float64).reshape(-1)
        if values.shape[0] != count:
            raise MacoError(f"got {values.shape[0]} importances for {count} concepts")
        return values
    sensitivity = getattr(craft, "sensitivity", None)
    if sensitivity is not None and getattr(sensitivity, "importances", None) is not None:
        return np.asarray(sensitivity.importances, dtype=np.float64)
    inputs = getattr(craft.factorization, "inputs", None)
    if _is_holistic(craft) or inputs is None:
        return None  # HolisticCraft needs images and an operator: pass importances= yourself
    return np.asarray(craft.estimate_importance(), dtype=np.float64)


def visualize_concepts(
    craft: object,
    class_id: int | None = None,
    concept_ids: int | Sequence[int] | None = None,
    importances: bool | Sequence[float] = True,
    *,
    cossim_pow: float = 1.0,
    layer: str | int | None = None,
    model: keras.Model | None = None,
    **visualize_kwargs: object,
) -> ConceptVisualization:
    """Visualise the concepts of a fitted CRAFT as one batch, with their importances.

    Parameters
    ----------
    craft
        A fitted ``CraftTf`` or ``HolisticCraftTf``, or a ``CraftManagerTf`` (then
        ``class_id`` picks its CRAFT).
    class_id
        Class to explain; for a single CRAFT it must be the class it was fitted on.
    concept_ids
        Concepts to visualise; default all.
    importances
        True: CRAFT's global Sobol importances (``craft.sensitivity``, or computed with
        ``craft.estimate_importance()`` for ``CraftTf``; None for ``HolisticCraftTf``, whose
        importance needs images and an operator); False: none; or one value per concept.
    cossim_pow, layer, model
        See :func:`concept_objective`.
    **visualize_kwargs
        Arguments of :func:`maco_tf.visualize`: a ``config``, settings (``steps``, ``seed``,
        ``size``...) and run context.

    Returns
    -------
    visualization
        A :class:`ConceptVisualization`: one image per concept (``copies`` consecutive images
        with ``copies=``), in ``concept_ids`` order.
    """
    craft = _select_craft(craft, class_id)
    objective = concept_objective(craft, concept_ids, cossim_pow, layer, model=model)
    ids = _concept_ids(concept_ids, concept_bank(craft).shape[0])
    every = _all_importances(craft, importances)
    result = visualize(objective, **visualize_kwargs)
    copies = len(result) // len(ids)  # visualize(copies=k) gives k consecutive images per concept
    per_image = np.repeat(ids, copies)
    chosen = None if every is None else every[per_image]
    ranking = None if chosen is None else np.argsort(-chosen, kind="stable")
    base = {item.name: getattr(result, item.name) for item in fields(Visualization)}
    return ConceptVisualization(
        **base,
        concept_ids=tuple(int(k) for k in per_image),
        class_id=craft.factorization.class_id,
        importances=chosen,
        ranking=ranking,
    )

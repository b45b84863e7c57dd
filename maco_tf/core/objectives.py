"""Objectives: what the optimisation maximises, adapted from Xplique's ``Objective``.

Xplique's ``Objective`` describes sub-objectives (a layer output, a loss function, one mask
per target, a multiplier) whose *combinations* form the images to optimise. Its own
``compile()`` multiplies the running loss by each multiplier in turn (so ``a * 2 + b * 3``
becomes ``(2a + b) * 3``) and some of its losses (``direction``, ``layer``) reduce over the whole
batch, coupling crops and images. :func:`compile_objective` reads the same description and
evaluates it correctly: ``sum_i multiplier_i * loss_i``, each crop scored on its own.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from xplique.features_visualizations import Objective

from maco_tf.checks import as_float32, is_finite_number
from maco_tf.errors import InvalidSettingError

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
#: ``(features of all views, nb_images, nb_views) -> scalar``.
BatchFn = Callable[[tf.Tensor, int, int], tf.Tensor]
#: ``(views (M, h, w, C)) -> (M,) or scalar``: a penalty on the images the model sees.
ViewFn = Callable[[tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class BatchTerm:
    """A term of the objective computed on a whole batch: it couples the batch's images.

    Attributes
    ----------
    name
        What the term is, for messages (``"diversity"``).
    output
        Symbolic output of the layer the term reads.
    func
        ``func(features, nb_images, nb_views)``: a scalar from the features
        ``(nb_images * nb_views, ...)`` of every view of the batch.
    weight
        Factor of the term; it is added ``weight * nb_images * func(...)`` to the batch's
        summed objective, i.e. ``weight * func(...)`` per image.
    """

    name: str
    output: object
    func: BatchFn
    weight: float

    def key(self) -> tuple:
        """Hashable description of what the traced term computes."""
        return (self.name, id(self.output), callable_key(self.func), float(self.weight))


@dataclass(frozen=True)
class ViewTerm:
    """A term of the objective computed on the views the model sees (e.g. a regulariser).

    Attributes
    ----------
    name
        What the term is, for messages (``"total_variation"``).
    func
        ``func(views) -> (M,)`` per view, or a scalar for the whole batch, from the views
        ``(M, h, w, C)`` of a step (after the crops and transformations, before the noise), in
        the model's value range.
    weight
        Factor of the term, the sign included (``objective - 0.05 * total_variation()`` has
        weight -0.05): each image gets ``weight * mean of func over its views``.
    """

    name: str
    func: ViewFn
    weight: float

    def key(self) -> tuple:
        """Hashable description of what the traced term computes."""
        return (self.name, callable_key(self.func), float(self.weight))


@dataclass(frozen=True)
class CompiledObjective:
    """An objective ready for the engine.

    Attributes
    ----------
    model
        The user's model.
    outputs
        Symbolic outputs (one per sub-objective) of the layers the losses read.
    funcs
        Loss of each sub-objective: ``func(layer_output, mask) -> per-sample values or scalar``.
    masks
        For each sub-objective, the masks of all combinations: ``(n_combinations, *mask_shape)``;
        those of the model terms (``funcs``), then those of the image terms (``image_funcs``).
    multipliers
        One factor per sub-objective, model terms then image terms.
    names
        Name of each combination.
    batch_terms
        Terms computed on a whole batch (e.g. diversity), added to the batch's objective;
        none: every image is optimised independently of the others.
    image_funcs
        Terms scored on the optimised images themselves (before crops and noise), e.g. a
        distance to a reference image: ``func(images, mask) -> (n,)`` for images
        ``(n, H, W, C)`` and their masks ``(n, *mask_shape)``.
    view_terms
        Terms scored on the views the model sees (regularisers), see :class:`ViewTerm`.
    """

    model: object
    outputs: tuple
    funcs: tuple[LossFn, ...]
    masks: tuple[np.ndarray, ...]
    multipliers: np.ndarray
    names: tuple[str, ...]
    batch_terms: tuple[BatchTerm, ...] = ()
    image_funcs: tuple[LossFn, ...] = ()
    view_terms: tuple[ViewTerm, ...] = ()

    @property
    def nb_combinations(self) -> int:
        """Number of images the objective asks for."""
        return len(self.names)

    def structure_key(self) -> tuple:
        """Hashable description of what the traced loss computes (not the mask values)."""
        return (
            tuple(id(output) for output in self.outputs),
            tuple(callable_key(func) for func in self.funcs),
            tuple(mask.shape[1:] for mask in self.masks),
            tuple(term.key() for term in self.batch_terms),
            tuple(callable_key(func) for func in self.image_funcs),
            tuple(term.key() for term in self.view_terms),
        )

    @property
    def feature_outputs(self) -> list:
        """Outputs the model must produce: the losses' layers, then the batch terms' layers."""
        return [*self.outputs, *(term.output for term in self.batch_terms)]


def repeat(compiled: CompiledObjective, copies: int) -> CompiledObjective:
    """Ask for ``copies`` images of every combination (consecutive, named ``name #k``).

    Without a diversity term the copies differ only by their random start and crops.
    """
    if copies == 1:
        return compiled
    masks = tuple(np.repeat(mask, copies, axis=0) for mask in compiled.masks)
    names = tuple(f"{name} #{k}" for name in compiled.names for k in range(copies))
    return dataclasses.replace(compiled, masks=masks, names=names)


def batch_terms_value(
    compiled: CompiledObjective, outputs: Sequence[tf.Tensor], nb_images: int, nb_views: int
) -> tf.Tensor:
    """Sum of the objective's batch terms on one batch (0 when it has none).

    Parameters
    ----------
    compiled
        The objective.
    outputs
        The batch terms' layer outputs for all views, in ``compiled.batch_terms`` order.
    nb_images, nb_views
        Images in the batch and views per image.

    Returns
    -------
    value
        Scalar float32: ``sum_k weight_k * nb_images * func_k(outputs[k], ...)``.
    """
    total = tf.constant(0.0)
    for term, output in zip(compiled.batch_terms, outputs, strict=True):
        total += term.weight * nb_images * term.func(output, nb_images, nb_views)
    return total


def with_image_term(
    compiled: CompiledObjective, func: LossFn, masks: np.ndarray, multiplier: float
) -> CompiledObjective:
    """Add a term scored on the optimised images: ``multiplier * func(images, mask)``.

    Parameters
    ----------
    compiled
        The objective.
    func
        ``func(images, mask) -> (n,)``: images ``(n, H, W, C)`` in the model's value range,
        before crops and noise.
    masks
        ``(n_combinations, *mask_shape)``: what ``func`` compares each image with.
    multiplier
        Factor of the term (negative for a penalty).

    Returns
    -------
    compiled
        A copy with the term appended.
    """
    masks = np.asarray(masks, dtype=np.float32)
    if masks.shape[0] != compiled.nb_combinations:
        raise ValueError(
            f"an image term needs one mask per combination ({compiled.nb_combinations}); "
            f"got {masks.shape[0]}"
        )
    return dataclasses.replace(
        compiled,
        masks=(*compiled.masks, masks),
        multipliers=np.append(compiled.multipliers, np.float32(multiplier)).astype(np.float32),
        image_funcs=(*compiled.image_funcs, func),
    )


def batch_similarity(features: tf.Tensor, nb_images: int, nb_views: int) -> tf.Tensor:
    """Mean pairwise cosine similarity of the images' Gram matrices (Lucid's diversity).

    Each crop's activations ``(H, W, C)`` give a Gram matrix ``C x C`` (channel
    co-activations: style, not position); an image's Gram is the mean over its crops. The
    result, in [-1, 1], is the mean cosine similarity over all pairs of distinct images;
    subtracting it from the objective pushes the images of a batch apart.

    Parameters
    ----------
    features
        ``(nb_images * nb_views, H, W, C)``.
    nb_images, nb_views
        Images in the batch and crops per image.

    Returns
    -------
    similarity
        Scalar (0 when the batch has a single image).
    """
    if nb_images < 2:
        return tf.constant(0.0)
    features = tf.cast(features, tf.float32)
    flat = tf.reshape(features, (nb_images * nb_views, -1, features.shape[-1]))
    grams = tf.matmul(flat, flat, transpose_a=True) / float(flat.shape[1])
    grams = tf.reduce_mean(tf.reshape(grams, (nb_images, nb_views, -1)), axis=1)
    grams = tf.math.l2_normalize(grams, axis=-1)
    cosine = tf.matmul(grams, grams, transpose_b=True)
    off_diagonal = 1.0 - tf.eye(nb_images)
    return tf.reduce_sum(cosine * off_diagonal) / float(nb_images * (nb_images - 1))


def _freeze(value: object) -> object:
    """Hashable version of simple closure contents, or raise TypeError."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, range):
        return ("range", value.start, value.stop, value.step)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


def callable_key(func: Callable) -> object:
    """A key equal for two closures that compute the same thing.

    Xplique builds a new closure for every ``Objective.neuron(...)`` call; two closures with
    the same code and equal simple captured values (axes, powers) compute the same loss and
    can share one compiled loop. Anything else is keyed by identity.
    """
    code = getattr(func, "__code__", None)
    if code is None:
        return ("id", id(func))
    try:
        cells = tuple(_freeze(cell.cell_contents) for cell in (func.__closure__ or ()))
        defaults = _freeze(func.__defaults__ or ())
    except (TypeError, ValueError):
        return ("id", id(func))
    return ("code", code, cells, defaults)


def _as_mask_array(masks: object) -> np.ndarray:
    """Stack a sub-objective's masks (list of arrays or an array) into ``(n, *shape)``."""
    if isinstance(masks, (list, tuple)):
        return np.stack([np.asarray(m, dtype=np.float32) for m in masks])
    return np.asarray(masks, dtype=np.float32)


def compile_objective(objective: object) -> CompiledObjective:
    """Read an Xplique ``Objective`` (or anything with the same attributes).

    Combinations follow Xplique's order: the cartesian product of the sub-objectives' targets,
    the last sub-objective varying fastest; names are joined with ``" & "``.

    Parameters
    ----------
    objective
        An ``xplique.features_visualizations.Objective`` (attributes ``model``, ``layers``,
        ``masks``, ``funcs``, ``multipliers``, ``names``), or a :class:`CompiledObjective`.

    Returns
    -------
    compiled
        The objective, with masks stacked per combination.
    """
    if isinstance(objective, CompiledObjective):
        return objective
    if hasattr(objective, "to_compiled"):
        return objective.to_compiled()
    required = ("model", "layers", "masks", "funcs", "multipliers", "names")
    missing = [name for name in required if not hasattr(objective, name)]
    if missing:
        raise TypeError(
            f"expected an xplique Objective (e.g. Objective.neuron(model, 'logits', 1)), got "
            f"{type(objective).__name__} without {', '.join(missing)}"
        )
    per_sub = [_as_mask_array(m) for m in objective.masks]
    index_lists = [range(m.shape[0]) for m in per_sub]
    combos = list(itertools.product(*index_lists))
    masks = tuple(np.stack([per_sub[i][combo[i]] for combo in combos]) for i in range(len(per_sub)))
    names = tuple(" & ".join(parts) for parts in itertools.product(*objective.names))
    return CompiledObjective(
        model=objective.model,
        outputs=tuple(objective.layers),
        funcs=tuple(objective.funcs),
        masks=masks,
        multipliers=as_float32(objective.multipliers, "the objective's weights").reshape(-1),
        names=names,
    )


def _per_crop(func: LossFn, outputs: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """Evaluate ``func`` on each crop alone: ``(B,)`` values.

    The loss is vectorised over the crops (``tf.vectorized_map``), each call seeing a batch of
    one, so that no crop's score depends on another's even for losses that reduce over the
    batch axis (Xplique's ``dot_cossim`` sums its dot product over the whole batch).
    """

    def single(pair: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        value = func(pair[0][None], pair[1][None])
        return tf.reduce_mean(value)

    return tf.vectorized_map(single, (outputs, masks))


def per_image_losses(
    compiled: CompiledObjective,
    outputs: Sequence[tf.Tensor],
    masks: Sequence[tf.Tensor],
    multipliers: tf.Tensor,
    nb_images: int,
    nb_views: int,
) -> tf.Tensor:
    """Objective value of each image: ``sum_i multipliers[i] * mean over its crops of loss_i``.

    Parameters
    ----------
    compiled
        The objective.
    outputs
        Layer outputs for all crops, one tensor ``(nb_images * nb_views, ...)`` per sub-objective.
    masks
        Masks of the images in this batch, ``(nb_images, *mask_shape)`` per sub-objective
        (those of the image terms, if any, are ignored).
    multipliers
        Factors of the sub-objectives (model terms first).
    nb_images, nb_views
        Images in the batch and crops per image.

    Returns
    -------
    values
        ``(nb_images,)`` float32.
    """
    total = tf.zeros((nb_images,), tf.float32)
    masks = masks[: len(compiled.funcs)]
    for i, (func, output, mask) in enumerate(zip(compiled.funcs, outputs, masks, strict=True)):
        output = tf.cast(output, tf.float32)
        mask = tf.repeat(tf.cast(mask, tf.float32), nb_views, axis=0)
        values = tf.reshape(_per_crop(func, output, mask), (nb_images, nb_views))
        total += multipliers[i] * tf.reduce_mean(values, axis=1)
    return total


def image_term_values(
    compiled: CompiledObjective,
    images: tf.Tensor,
    masks: Sequence[tf.Tensor],
    multipliers: tf.Tensor,
) -> tf.Tensor:
    """Value of the image terms of each image: ``sum_j multiplier_j * image_func_j(images)``.

    Parameters
    ----------
    compiled
        The objective.
    images
        ``(n, H, W, C)`` optimised images, before crops and noise.
    masks, multipliers
        As for :func:`per_image_losses`, all sub-objectives (the image terms' follow the
        model terms').

    Returns
    -------
    values
        ``(n,)`` float32 (zeros without image terms).
    """
    first = len(compiled.funcs)
    total = tf.zeros((tf.shape(images)[0],), tf.float32)
    for j, func in enumerate(compiled.image_funcs):
        mask = tf.cast(masks[first + j], tf.float32)
        total += multipliers[first + j] * tf.cast(func(images, mask), tf.float32)
    return total


def view_term_values(
    compiled: CompiledObjective, lanes: Sequence[tf.Tensor], nb_images: int, nb_views: int
) -> tf.Tensor:
    """Value of the view terms of each image: ``sum_k weight_k * mean over its views of func_k``.

    Parameters
    ----------
    compiled
        The objective.
    lanes
        The views of a step, one ``(nb_images * v, h, w, C)`` tensor per lane (image-major,
        ``v`` views of each image; ``nb_views`` in all lanes), in the model's value range.
    nb_images, nb_views
        Images in the batch and views per image.

    Returns
    -------
    values
        ``(nb_images,)`` float32 (zeros without view terms). A function that returns a scalar
        (one value for a whole batch of views) gives each image an equal share of it.

    Raises
    ------
    InvalidSettingError
        When a term's function returns anything but one value per view or a scalar (checked
        when the loop is traced).
    """
    total = tf.zeros((nb_images,), tf.float32)
    for term in compiled.view_terms:
        per_image = tf.zeros((nb_images,), tf.float32)
        for views in lanes:
            count = int(views.shape[0])
            value = tf.cast(term.func(views), tf.float32)
            shape = tuple(value.shape)
            if shape in ((), (1,)):
                per_image += tf.reshape(value, ()) / float(nb_images)
            elif shape == (count,):
                summed = tf.reduce_sum(tf.reshape(value, (nb_images, -1)), axis=1)
                per_image += summed / float(nb_views)
            else:
                raise InvalidSettingError(
                    f"the {term.name} regulariser returned shape {shape} for views of shape "
                    f"{tuple(views.shape)}; it must return one value per view ({count},) or a "
                    f"scalar"
                )
        total += term.weight * per_image
    return total


def traceable(func: Callable, *specs: tf.TensorSpec) -> bool:
    """Whether ``func`` can be traced into a graph for inputs of ``specs`` (no ``.numpy()``...)."""
    try:
        tf.function(func).get_concrete_function(*specs)
    except Exception:  # noqa: BLE001 -- any failure to trace means: run it eagerly
        return False
    return True


def check_view_terms(compiled: CompiledObjective, view_shape: Sequence[int]) -> None:
    """Check that every view term returns one value per view or a scalar, before any run.

    Parameters
    ----------
    compiled
        The objective.
    view_shape
        ``(h, w, C)`` of the views (the model input).

    Raises
    ------
    InvalidSettingError
        Naming the term and the shape it returned.
    """
    views = tf.zeros((2, *view_shape), tf.float32)
    for term in compiled.view_terms:
        try:
            shape = tuple(tf.convert_to_tensor(term.func(views)).shape)
        except Exception as exc:  # noqa: BLE001 -- the user's function failed: say which
            raise InvalidSettingError(
                f"the {term.name} regulariser failed on views of shape {tuple(views.shape)}: "
                f"{exc!r}"
            ) from exc
        if shape not in ((), (1,), (2,)):
            raise InvalidSettingError(
                f"the {term.name} regulariser returned shape {shape} for views of shape "
                f"{tuple(views.shape)}; it must return one value per view (2,) or a scalar"
            )


class Term(Objective):
    """A weighted term to add to or subtract from an objective (diversity, regularisers).

    It derives from Xplique's ``Objective`` only so that ``objective - term`` reaches this
    class's operators first; it holds no sub-objective and cannot be visualised alone.
    Subclasses give :meth:`scaled` (a copy with another weight) and :meth:`apply` (the
    objective with the term in the engine's form).

    Attributes
    ----------
    weight
        Factor of the term in the objective, the sign included.
    """

    weight: float = 1.0

    def scaled(self, weight: float) -> Term:
        """A copy of the term with ``weight``."""
        raise NotImplementedError

    def apply(self, compiled: CompiledObjective) -> CompiledObjective:
        """``compiled`` with this term added."""
        raise NotImplementedError

    def check_in_objective(self) -> None:
        """Raise when the term's weight makes no sense once added to an objective."""

    def __mul__(self, factor: float) -> Term:
        if isinstance(factor, bool) or not is_finite_number(factor):
            return NotImplemented
        return self.scaled(self.weight * float(factor))

    __rmul__ = __mul__

    def __neg__(self) -> Term:
        return self.scaled(-self.weight)

    def __radd__(self, objective: object) -> ComposedObjective:
        return ComposedObjective(objective, (self,))

    def __rsub__(self, objective: object) -> ComposedObjective:
        return ComposedObjective(objective, (-self,))

    def __add__(self, other: object) -> ComposedObjective:
        raise InvalidSettingError(self._alone())

    __sub__ = __add__

    def to_compiled(self) -> CompiledObjective:
        """Refused: a term has nothing to maximise on its own."""
        raise InvalidSettingError(self._alone())

    def _alone(self) -> str:
        return (
            f"a {type(self).__name__} term alone has nothing to maximise; add it to an "
            f"objective, e.g. objective - 0.05 * maco_tf.total_variation()"
        )


class ComposedObjective:
    """An objective with terms (diversity, regularisers), as :func:`maco_tf.visualize` takes it.

    Parameters
    ----------
    objective
        An Xplique ``Objective`` (or anything :func:`compile_objective` reads).
    terms
        Terms added to it, each checked (:meth:`Term.check_in_objective`).
    """

    def __init__(self, objective: object, terms: tuple[Term, ...]):  # noqa: D107
        for term in terms:
            term.check_in_objective()
        self.objective = objective
        self.terms = tuple(terms)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.objective!r}, {self.terms!r})"

    def __add__(self, other: object) -> ComposedObjective:
        if isinstance(other, Term):
            return ComposedObjective(self.objective, (*self.terms, other))
        if isinstance(other, ComposedObjective):
            return ComposedObjective(self.objective + other.objective, self.terms + other.terms)
        return ComposedObjective(self.objective + other, self.terms)

    def __sub__(self, other: object) -> ComposedObjective:
        if isinstance(other, Term):
            return self + (-other)
        if isinstance(other, ComposedObjective):
            raise InvalidSettingError(
                "subtracting an objective with terms is ambiguous; subtract the objective and "
                "the terms separately"
            )
        return ComposedObjective(self.objective - other, self.terms)

    def to_compiled(self) -> CompiledObjective:
        """The objective compiled, with its terms in the engine's form."""
        compiled = compile_objective(self.objective)
        for term in self.terms:
            compiled = term.apply(compiled)
        return compiled

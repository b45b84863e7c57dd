"""The compiled optimisation loop: batched, traced once, with transparency accumulation.

One :class:`CompiledLoop` optimises ``batch_size`` images at once: their parameters form one
variable, all their crops go through the model in one batch, and ``steps_per_call`` steps run
inside a single ``tf.function`` call (a ``tf.while_loop``; optionally XLA-compiled). Schedules,
masks, multipliers, seeds and buffers (the magnitude spectrum) are tensor arguments, so a
loop is traced once per (model, objective structure, shapes, optimizer) and reused by later
runs -- :class:`LoopCache` keeps recent loops for that.

With a ``tf.distribute`` strategy of R replicas (``MirroredStrategy`` over the GPUs of a
machine, ``MultiWorkerMirroredStrategy`` over machines), the batch is split: replica ``r``
renders, crops and scores images ``r*N/R .. (r+1)*N/R - 1`` only, and its gradient is zero on
the others. The parameters of all images are one mirrored variable and the optimizer sums
gradients over replicas (plain data-parallel training, with phases as the weights), so every
replica applies the full update and the images equal those of one device: each image's
randomness depends on its own seed, not on where it runs.

The engine knows nothing of files or of Xplique: it receives a
:class:`~maco_tf.core.objectives.CompiledObjective` and a
:class:`~maco_tf.core.parameterization.Parameterization`.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from maco_tf.core.augment import add_lane_noise, crop_lanes, lane_spans, noise_pool
from maco_tf.core.objectives import (
    CompiledObjective,
    batch_terms_value,
    image_term_values,
    per_image_losses,
    view_term_values,
)
from maco_tf.core.parameterization import Parameterization
from maco_tf.core.seeds import pool_seed
from maco_tf.core.transforms import Transform, apply_transforms
from maco_tf.models.layers import model_input_size

OptimizerFactory = Callable[[], keras.optimizers.Optimizer]
#: ``on_chunk(steps_done, values, render) -> stop`` of :meth:`CompiledLoop.run`.
ChunkHook = Callable[[int, np.ndarray, Callable[[], np.ndarray]], bool]


@dataclass(frozen=True)
class LoopSettings:
    """Per-run settings, all passed to the compiled loop as tensors.

    Attributes
    ----------
    box_sizes
        ``(nb_steps,)`` average crop side per step (fraction of the image side).
    noise_levels
        ``(nb_steps,)`` noise standard deviation per step, in the model's input units.
    seed
        Run seed; image ``i`` draws from the stream ``(seed, i)``.
    """

    box_sizes: np.ndarray
    noise_levels: np.ndarray
    seed: int

    @property
    def nb_steps(self) -> int:
        """Number of optimisation steps."""
        return int(self.box_sizes.shape[0])


@dataclass
class LoopOutput:
    """What a run returns, per image (leading axis = image index)."""

    images: np.ndarray
    transparency: np.ndarray
    losses: np.ndarray  # (nb_steps, n_images): objective value at each step
    nonfinite_steps: np.ndarray  # (n_images,): steps whose gradient was NaN/inf and skipped

    def keep(self, count: int) -> LoopOutput:
        """The output of the first ``count`` images (the others were padding)."""
        return LoopOutput(
            self.images[:count],
            self.transparency[:count],
            self.losses[:, :count],
            self.nonfinite_steps[:count],
        )


class CompiledLoop:
    """A traced optimisation loop for a fixed batch of ``nb_images`` images.

    Parameters
    ----------
    objective
        What to maximise.
    parameterization
        How parameters become images (owned by the loop from now on).
    optimizer_factory
        Builds the optimizer (called once; its state is reset between runs).
    nb_images
        Images optimised together.
    nb_crops
        Crops per image and step (0: the whole image, resized).
    jit_compile
        XLA-compile the loop.
    steps_per_call
        Steps run inside one call of the compiled function.
    pooled_noise
        Read each step's noise from a pool drawn once per call, i.e. every ``steps_per_call``
        steps (see :func:`maco_tf.core.augment.noise_pool`), instead of drawing it afresh.
    whole_views
        Crops per image and step that are the whole image (see
        :func:`maco_tf.core.augment.random_crops`).
    strategy
        ``tf.distribute`` strategy whose replicas share the batch (default: the current one,
        i.e. the one whose ``scope()`` is open, else no distribution). ``nb_images`` must be a
        multiple of its ``num_replicas_in_sync``.
    lanes
        Sub-batches the crops of a step are made in, each through its own call of the model
        (see :func:`maco_tf.core.augment.random_crop_lanes` and :func:`model_in_lanes`). They are
        independent, so the runtime runs them side by side; on a CPU this keeps the cores
        busy where one batch alone leaves them idle (ops that do not parallelise
        internally). 1: one model batch.
    transforms
        Transformations of every view, after the crops and before the noise (see
        :mod:`maco_tf.core.transforms`).
    fill
        Value of the pixels ``pad`` adds (the middle of the value range).
    eager
        Run the steps as plain TensorFlow calls instead of one traced function (for a user
        callable that cannot be traced; slow).
    """

    def __init__(
        self,
        objective: CompiledObjective,
        parameterization: Parameterization,
        optimizer_factory: OptimizerFactory,
        nb_images: int,
        nb_crops: int,
        jit_compile: bool = False,
        steps_per_call: int = 8,
        pooled_noise: bool = True,
        strategy: tf.distribute.Strategy | None = None,
        whole_views: int = 0,
        lanes: int = 1,
        transforms: Sequence[Transform] = (),
        fill: float = 0.0,
        eager: bool = False,
    ):
        self.strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        self.nb_replicas = int(self.strategy.num_replicas_in_sync)
        if nb_images % self.nb_replicas:
            raise ValueError(
                f"nb_images={nb_images} is not a multiple of the strategy's "
                f"{self.nb_replicas} replicas"
            )
        self.images_per_replica = int(nb_images) // self.nb_replicas
        if jit_compile and self.nb_replicas > 1:
            raise ValueError(
                "jit_compile with a multi-replica strategy: one XLA cluster cannot span the "
                "replicas' devices; use jit_compile=False or a single-replica strategy"
            )
        if objective.batch_terms and self.nb_replicas > 1:
            raise ValueError(
                "a batch term (diversity) couples the images of a batch, which a multi-replica "
                "strategy splits; drop the term or use a single-replica strategy"
            )
        self.objective = objective
        self.parameterization = parameterization
        self.nb_images = int(nb_images)
        self.nb_crops = int(nb_crops)
        self.steps_per_call = int(steps_per_call)
        self.jit_compile = bool(jit_compile)
        self._pooled = bool(pooled_noise)
        self.whole_views = int(whole_views)
        if int(lanes) < 1:
            raise ValueError(f"lanes={lanes}: use 1 or more")
        self.lanes = int(lanes)
        self.transforms = tuple(transforms)
        self.fill = float(fill)
        self.trace_count = 0
        height, width, _ = model_input_size(objective.model)
        self.input_size = (height, width)
        self.feature_model = keras.Model(objective.model.inputs, objective.feature_outputs)
        with self.strategy.scope():
            self._create_state(parameterization, optimizer_factory, height, width)
        mask_specs = tuple(
            tf.TensorSpec((self.nb_images, *m.shape[1:]), tf.float32) for m in objective.masks
        )
        signature = [
            tf.TensorSpec((), tf.int32),  # first step
            tf.TensorSpec((), tf.int32),  # number of steps
            tf.TensorSpec((None,), tf.float32),  # box sizes
            tf.TensorSpec((None,), tf.float32),  # noise levels
            mask_specs,
            tf.TensorSpec((len(objective.masks),), tf.float32),  # multipliers
            tf.TensorSpec((self.nb_images,), tf.int64),  # image seeds
            tf.TensorSpec((), tf.int64),  # run seed (noise pool)
        ]
        # Wrapped in partials: TensorFlow's retracing warning counts traces per code object,
        # so with plain methods every new loop (each traced once) would add to one count and
        # a process that builds loops for five objective structures would be warned of retracing.
        self._run_steps = functools.partial(self._steps)
        if not eager:
            self._run_steps = tf.function(
                self._run_steps, input_signature=signature, jit_compile=jit_compile
            )
        self._render = tf.function(
            functools.partial(lambda: parameterization.to_images(self.params))
        )

    def _create_state(
        self,
        parameterization: Parameterization,
        optimizer_factory: OptimizerFactory,
        height: int,
        width: int,
    ) -> None:
        """Variables of the loop (mirrored over the strategy's replicas) and the optimizer."""
        image_shape = parameterization.image_shape
        self.params = tf.Variable(
            tf.zeros((self.nb_images, *parameterization.param_shape)), name="maco_params"
        )
        self.buffers = {
            name: tf.Variable(value, trainable=False, name=f"maco_{name}")
            for name, value in parameterization.buffers().items()
        }
        parameterization.bind(self.buffers)
        # Each replica adds its own images' share (zeros elsewhere): summed over replicas.
        self.transparency = tf.Variable(
            tf.zeros((self.nb_images, *image_shape)),
            trainable=False,
            name="maco_transparency",
            aggregation=tf.VariableAggregation.SUM,
        )
        self.nonfinite = tf.Variable(
            tf.zeros((self.nb_images,), tf.int32),
            trainable=False,
            name="maco_nonfinite",
            aggregation=tf.VariableAggregation.SUM,
        )
        views = max(self.nb_crops, 1)
        self._noise_size = views * height * width * image_shape[-1]
        self.optimizer = optimizer_factory()
        self.optimizer.build([self.params])
        self._optimizer_initial = [v.numpy() for v in self.optimizer.variables]

    def _replica_slice(self, tensor: tf.Tensor) -> tf.Tensor:
        """Rows of the current replica in a ``(nb_images, ...)`` tensor (all rows on one)."""
        if self.nb_replicas == 1:
            return tensor
        first = self._first_image()
        rank = len(tensor.shape)
        return tf.slice(
            tensor, [first] + [0] * (rank - 1), [self.images_per_replica] + [-1] * (rank - 1)
        )

    def _to_batch(self, local: tf.Tensor) -> tf.Tensor:
        """``(nb_images, ...)`` tensor holding this replica's rows ``local``, zeros elsewhere."""
        if self.nb_replicas == 1:
            return local
        first = self._first_image()
        after = self.nb_images - self.images_per_replica - first
        padding = [[first, after]] + [[0, 0]] * (len(local.shape) - 1)
        return tf.pad(local, padding)

    def _first_image(self) -> tf.Tensor:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.cast(replica, tf.int32) * self.images_per_replica

    def _step(self, step, box_size, noise_std, masks, multipliers, seeds, pool) -> tf.Tensor:
        """One gradient-ascent step, in replica context, on this replica's images.

        Returns the objective values ``(nb_images,)``, zero on other replicas' images.
        """
        nb_local = self.images_per_replica
        masks = [self._replica_slice(m) for m in masks]
        seeds = self._replica_slice(seeds)
        with tf.GradientTape() as tape:
            params = self._replica_slice(tf.convert_to_tensor(self.params))
            images = self.parameterization.to_images(params)
            lane_batches = crop_lanes(
                images,
                box_size,
                self.nb_crops,
                self.input_size,
                seeds,
                step,
                xla_friendly=self.jit_compile,
                whole_views=self.whole_views,
                lanes=self.lanes,
            )
            views = max(self.nb_crops, 1)
            lane_batches = self._transformed(lane_batches, seeds, step)
            view_values = None
            if self.objective.view_terms:
                view_values = view_term_values(self.objective, lane_batches, nb_local, views)
            lane_batches = add_lane_noise(
                lane_batches, noise_std, self.nb_crops, seeds, step, pool=pool
            )
            outputs = model_in_lanes(self.feature_model, lane_batches, nb_local)
            nb_losses = len(self.objective.funcs)
            values = per_image_losses(
                self.objective, outputs[:nb_losses], masks, multipliers, nb_local, views
            )
            if view_values is not None:
                values += view_values
            if self.objective.image_funcs:
                values += image_term_values(self.objective, images, masks, multipliers)
            batch_value = batch_terms_value(self.objective, outputs[nb_losses:], nb_local, views)
            total = tf.reduce_sum(values) + batch_value
        grad_params, grad_images = tape.gradient(total, [params, images])
        param_axes = list(range(1, len(grad_params.shape)))
        image_axes = list(range(1, len(grad_images.shape)))
        finite = (
            tf.math.is_finite(values)
            & tf.reduce_all(tf.math.is_finite(grad_params), axis=param_axes)
            & tf.reduce_all(tf.math.is_finite(grad_images), axis=image_axes)
        )

        def zero_nonfinite():
            keep_params = tf.reshape(finite, [-1] + [1] * len(param_axes))
            keep_images = tf.reshape(finite, [-1] + [1] * len(image_axes))
            return (
                tf.where(keep_params, grad_params, tf.zeros_like(grad_params)),
                tf.where(keep_images, grad_images, tf.zeros_like(grad_images)),
            )

        # the selects cost two passes over the gradients: only when something is not finite
        grad_params, grad_images = tf.cond(
            tf.reduce_all(finite), lambda: (grad_params, grad_images), zero_nonfinite
        )
        # The optimizer sums the replicas' gradients: each is zero outside its own images.
        self.optimizer.apply_gradients([(-self._to_batch(grad_params), self.params)])
        self.transparency.assign_add(self._to_batch(tf.abs(grad_images)))
        self.nonfinite.assign_add(self._to_batch(tf.cast(tf.logical_not(finite), tf.int32)))
        return self._to_batch(values)

    def _transformed(
        self, lane_batches: list[tf.Tensor], seeds: tf.Tensor, step: tf.Tensor
    ) -> list[tf.Tensor]:
        """The lanes' views through the run's transformations (unchanged without any)."""
        if not self.transforms:
            return lane_batches
        views = max(self.nb_crops, 1)
        spans = lane_spans(self.nb_crops, len(lane_batches))
        return [
            apply_transforms(batch, self.transforms, seeds, step, views, span, self.fill)
            for batch, span in zip(lane_batches, spans, strict=True)
        ]

    def _steps(self, start, count, box_sizes, noise_levels, masks, multipliers, seeds, run_seed):
        """``count`` steps from ``start``, inside one graph; returns values ``(count, N)``."""
        self.trace_count += 1  # Python side effect: runs only while tracing
        pool = None
        if self._pooled:  # one pool per call, the same for every batch: shards stay equal
            # seeded by the block of steps_per_call steps the call lies in: a call split at
            # snapshot steps draws the pool of the unsplit call, so the images do not change
            block_start = start - start % self.steps_per_call
            pool = noise_pool(self._noise_size, pool_seed(run_seed, block_start))
        history = tf.TensorArray(tf.float32, size=count)
        for offset in tf.range(count):
            step = start + offset
            per_replica = self.strategy.run(
                self._step,
                args=(step, box_sizes[step], noise_levels[step], masks, multipliers, seeds, pool),
            )
            values = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            history = history.write(offset, values)
        return history.stack()

    def reset(self, initial_params: np.ndarray, buffers: dict[str, np.ndarray]) -> None:
        """Start a new run: parameters, buffers, optimizer state and accumulators."""
        self.params.assign(initial_params)
        for name, value in buffers.items():
            self.buffers[name].assign(value)
        for variable, value in zip(self.optimizer.variables, self._optimizer_initial, strict=True):
            variable.assign(value)
        self.transparency.assign(tf.zeros_like(self.transparency))
        self.nonfinite.assign(tf.zeros_like(self.nonfinite))

    def run(
        self,
        initial_params: np.ndarray,
        buffers: dict[str, np.ndarray],
        masks: Sequence[np.ndarray],
        multipliers: np.ndarray,
        seeds: np.ndarray,
        settings: LoopSettings,
        on_steps: Callable[[int], None] | None = None,
        every: int | None = None,
        on_chunk: ChunkHook | None = None,
    ) -> LoopOutput:
        """Optimise one batch of images from ``initial_params``.

        Parameters
        ----------
        initial_params
            ``(nb_images, *param_shape)``.
        buffers
            Values of the parameterization's buffers for this run.
        masks
            Per sub-objective, ``(nb_images, *mask_shape)``.
        multipliers
            ``(n_sub,)``.
        seeds
            ``(nb_images,)`` int64 image seeds.
        settings
            Schedules and seed.
        on_steps
            Called with the number of steps just done, after each compiled call.
        every
            Also end a compiled call at every multiple of ``every`` steps (see
            :func:`chunk_ranges`), so that ``on_chunk`` sees those steps. The images do not
            change: a split call reads the noise of the unsplit one, and the traced function
            takes its first step and step count as tensors (no new trace).
        on_chunk
            Called after each compiled call as ``on_chunk(steps_done, values, render)``:
            ``values`` are the call's ``(count, nb_images)`` objective values and ``render()``
            returns the current ``(nb_images, H, W, C)`` images. A true return value stops the
            run there.

        Returns
        -------
        output
            Images, transparency, per-step objective values (of the steps run) and non-finite
            step counts.
        """
        self.reset(initial_params, buffers)
        box_sizes = tf.constant(settings.box_sizes, tf.float32)
        noise = tf.constant(settings.noise_levels, tf.float32)
        mask_tensors = tuple(tf.constant(m, tf.float32) for m in masks)
        multipliers = tf.constant(multipliers, tf.float32)
        seeds = tf.constant(seeds, tf.int64)
        history = []
        for start, count in chunk_ranges(settings.nb_steps, self.steps_per_call, every):
            values = self._run_steps(
                tf.constant(start, tf.int32),
                tf.constant(count, tf.int32),
                box_sizes,
                noise,
                mask_tensors,
                multipliers,
                seeds,
                tf.constant(settings.seed, tf.int64),
            ).numpy()
            history.append(values)
            if on_steps is not None:
                on_steps(count)
            if on_chunk is not None and on_chunk(start + count, values, self.render):
                break
        return LoopOutput(
            images=self.render(),
            transparency=self.transparency.numpy(),
            losses=np.concatenate(history, axis=0),
            nonfinite_steps=self.nonfinite.numpy(),
        )

    def render(self) -> np.ndarray:
        """The current images of the batch, ``(nb_images, H, W, C)``."""
        return self._render().numpy()


def chunk_ranges(nb_steps: int, steps_per_call: int, every: int | None = None) -> list:
    """``(start, count)`` of the compiled calls of a run of ``nb_steps`` steps.

    Calls end at the multiples of ``steps_per_call`` and, with ``every``, of ``every``,
    and at ``nb_steps``.

    Parameters
    ----------
    nb_steps
        Steps of the run.
    steps_per_call
        The loop's steps per call.
    every
        Other step interval at which calls end, or None.

    Returns
    -------
    ranges
        ``[(start, count), ...]`` covering ``0 .. nb_steps - 1`` in order.
    """
    ends = set(range(steps_per_call, nb_steps, steps_per_call)) | {nb_steps}
    if every:
        ends |= set(range(every, nb_steps, every))
    starts = [0, *sorted(ends)[:-1]]
    return [(start, end - start) for start, end in zip(starts, sorted(ends), strict=True)]


def model_in_lanes(
    model: keras.Model, lanes: Sequence[tf.Tensor], nb_images: int
) -> list[tf.Tensor]:
    """The model's outputs on the views of every lane, one call of the model per lane.

    The calls are independent, so the runtime may run them side by side. The outputs are
    put back in the views' order: image-major, each image's views lane after lane (the order
    of :func:`~maco_tf.core.augment.random_crops`).

    Parameters
    ----------
    model
        A model with one input; one output or a list of outputs.
    lanes
        Per lane, ``(nb_images * v_k, h, w, c)`` views, image-major (see
        :func:`~maco_tf.core.augment.random_crop_lanes`).
    nb_images
        Images in every lane.

    Returns
    -------
    outputs
        The model's outputs as a list, each ``(nb_images * sum(v_k), ...)``.
    """
    per_lane = []
    for batch in lanes:
        outputs = model(batch, training=False)
        per_lane.append(list(outputs) if isinstance(outputs, (list, tuple)) else [outputs])
    if len(per_lane) == 1:
        return per_lane[0]
    merged = []
    for index in range(len(per_lane[0])):
        parts = [
            tf.reshape(lane[index], (nb_images, -1, *lane[index].shape[1:])) for lane in per_lane
        ]
        joined = tf.concat(parts, axis=1)
        merged.append(tf.reshape(joined, (-1, *joined.shape[2:])))
    return merged


def optimizer_key(optimizer: keras.optimizers.Optimizer) -> tuple:
    """Class and configuration of an optimizer: equal keys build equal optimizers.

    The name is left out: Keras makes it unique per instance (``nadam``, ``nadam_1``...).
    """
    config = {k: v for k, v in optimizer.get_config().items() if k != "name"}
    return (type(optimizer).__module__, type(optimizer).__qualname__, repr(sorted(config.items())))


def clone_optimizer(optimizer: keras.optimizers.Optimizer) -> OptimizerFactory:
    """Factory of fresh optimizers configured like ``optimizer`` (which stays untouched)."""
    config = optimizer.get_config()
    cls = type(optimizer)
    return lambda: cls.from_config(config)


class LoopCache:
    """Keeps the most recently used compiled loops, so repeated runs skip tracing.

    Parameters
    ----------
    max_entries
        Loops kept; the least recently used is dropped first.
    """

    def __init__(self, max_entries: int = 8):
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[tuple, tuple[weakref.ref, CompiledLoop]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every cached loop."""
        self._entries.clear()

    def get(self, key: tuple, model: object, build: Callable[[], CompiledLoop]) -> CompiledLoop:
        """The loop stored under ``key`` for ``model``, or a new one from ``build()``."""
        full_key = (id(model), *key)
        entry = self._entries.get(full_key)
        if entry is not None and entry[0]() is model:
            self._entries.move_to_end(full_key)
            return entry[1]
        loop = build()
        self._entries[full_key] = (weakref.ref(model), loop)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return loop

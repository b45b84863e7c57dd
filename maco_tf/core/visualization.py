"""The optimisation's entry point: :func:`visualize` runs a :class:`~maco_tf.RunConfig`.

The drop-in functions :func:`~maco_tf.maco`, :func:`~maco_tf.fourier` and
:func:`~maco_tf.pixel` (Xplique's signature and defaults) live in :mod:`maco_tf.core.dropin`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from maco_tf.core.callbacks import BatchWatcher, Progress, check_callbacks, snapshot_steps
from maco_tf.core.config import RunConfig
from maco_tf.core.engine import CompiledLoop, LoopCache, LoopSettings, clone_optimizer
from maco_tf.core.limits import held_activation_values
from maco_tf.core.objectives import (
    CompiledObjective,
    check_view_terms,
    compile_objective,
    repeat,
)
from maco_tf.core.parameterization import (
    FourierParameterization,
    MacoParameterization,
    Parameterization,
    PixelParameterization,
)
from maco_tf.core.seeds import IMAGE_ID_LIMIT, image_seeds, random_seed
from maco_tf.core.spectrum import dataset_magnitude, imagenet_magnitude
from maco_tf.errors import InvalidSettingError, SpectrumError
from maco_tf.models.layers import check_scope_names, model_input_size

#: Crops per model batch that the automatic ``batch_size`` aims for (CPU-friendly).
AUTO_CROPS_PER_BATCH = 128

_DEFAULT_CACHE = LoopCache()


def auto_batch_size(crops: int, replicas: int = 1, nb_images: int | None = None) -> int:
    """Images per compiled batch when none is given: about 128 crops per step on each replica.

    With ``nb_images``, the batches are balanced: as many batches as that cap needs, of equal
    size (rounded up to a multiple of ``replicas``), so that the last one is not mostly
    padding (10 images at 8 per batch run as 5 + 5, not 8 + 2 padded to 8).

    Parameters
    ----------
    crops
        Views per image and step.
    replicas
        Replicas of the distribution strategy.
    nb_images
        Images to make, if known.

    Returns
    -------
    batch_size
        A positive multiple of ``replicas``.
    """
    cap = replicas * max(1, AUTO_CROPS_PER_BATCH // max(crops, 1))
    if nb_images is None or nb_images < 1:
        return cap
    balanced = math.ceil(nb_images / math.ceil(nb_images / cap))
    return replicas * math.ceil(balanced / replicas)


#: Model sub-batches per step on a CPU (see :func:`auto_lanes`).
CPU_LANES = 2


def auto_lanes(jit_compile: bool = False, strategy: tf.distribute.Strategy | None = None) -> int:
    """Sub-batches per step when none is given: ``CPU_LANES`` on CPUs, 1 on accelerators.

    On a CPU one model batch leaves cores idle in the ops that do not parallelise
    internally, and two independent sub-batches fill them (``docs/performance.md``). A GPU
    runs one stream of kernels, where a split only makes the kernels smaller; XLA compiles
    one cluster.

    Parameters
    ----------
    jit_compile
        Whether the loop is XLA-compiled.
    strategy
        The distribution strategy (default: the current one).

    Returns
    -------
    lanes
        1 or ``CPU_LANES``.
    """
    if jit_compile:
        return 1
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    try:
        devices = list(strategy.extended.worker_devices)
    except (RuntimeError, AttributeError, NotImplementedError):  # the default strategy
        devices = []
    if not devices:
        devices = [d.name for d in tf.config.list_logical_devices()]
    on_cpu = not any(kind in str(d).upper() for d in devices for kind in ("GPU", "TPU"))
    return CPU_LANES if on_cpu else 1


class DeadObjectiveWarning(UserWarning):
    """An objective gave no usable gradient: its image stayed at its random start."""


def clear_cache() -> None:
    """Forget the compiled loops kept between calls (frees their model references)."""
    _DEFAULT_CACHE.clear()


@dataclass
class Visualization:
    """Everything one :func:`visualize` call produced; leading axis = objective combination.

    Attributes
    ----------
    images
        ``(N, H, W, C)`` in ``values_range``.
    transparency
        ``(N, H, W, C)`` accumulated ``|dL/dx|`` over all steps (raw, unnormalised).
    names
        Name of each combination, in the objective's order.
    loss_history
        ``(steps, N)`` objective value at every step (mean over crops).
    nonfinite_steps
        ``(N,)`` steps skipped because the loss or gradient was NaN or infinite.
    method, seed, values_range
        How the images were made; ``seed`` reproduces them.
    settings
        :meth:`RunConfig.record` of the run (seed, batch size and lanes resolved), plus
        ``image_shape`` and ``replicas``.
    elapsed_s
        Wall time of the optimisation.
    config
        The :class:`~maco_tf.RunConfig` that made the images (seed, batch size and lanes
        resolved): ``visualize(objective, result.config)`` makes them again.
    snapshots
        With ``RunConfig.snapshots=K``: ``(N, S, H, W, C)``, each image after each of the
        ``S`` steps of :attr:`snapshot_steps`; None without.
    snapshot_steps
        ``(S,)`` the multiples of ``K`` up to the steps run, and the last step run (so the
        last snapshot is :attr:`images`); None without snapshots. An image whose batch
        stopped early (``early_stop``) shows its final image at the later steps.
    steps_run
        ``(N,)`` steps each image was optimised for: ``steps``, or fewer after an early stop
        (``loss_history`` holds NaN after an image's last step). None: ``steps`` for all.
    """

    images: np.ndarray
    transparency: np.ndarray
    names: tuple[str, ...]
    loss_history: np.ndarray
    nonfinite_steps: np.ndarray
    method: str
    seed: int
    values_range: tuple[float, float]
    settings: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    config: RunConfig | None = None
    snapshots: np.ndarray | None = None
    snapshot_steps: np.ndarray | None = None
    steps_run: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def objective_values(self) -> np.ndarray:
        """``(N,)`` objective value averaged over the last 10% of each image's steps run."""
        if self.steps_run is None:
            tail = max(1, self.loss_history.shape[0] // 10)
            return self.loss_history[-tail:].mean(axis=0)
        values = []
        for i, run in enumerate(self.steps_run):
            tail = max(1, int(run) // 10)
            values.append(self.loss_history[int(run) - tail : int(run), i].mean())
        return np.asarray(values, dtype=self.loss_history.dtype)

    @property
    def dead(self) -> np.ndarray:
        """``(N,)`` True where the objective never gave a usable gradient."""
        return ~np.any(self.transparency.reshape(len(self), -1) > 0, axis=1)


def default_optimizer(method: str) -> keras.optimizers.Optimizer:
    """Nadam(1.0) for MACO (as Xplique), Adam(0.05) for the Fourier and pixel baselines.

    Parameters
    ----------
    method
        ``"maco"``, ``"fourier"`` or ``"pixel"``.

    Returns
    -------
    optimizer
        A new Keras optimizer.
    """
    if method == "maco":
        return keras.optimizers.Nadam(learning_rate=1.0)
    return keras.optimizers.Adam(learning_rate=0.05)


def _image_shape(model: keras.Model, config: RunConfig) -> tuple[int, int, int]:
    """``(height, width, channels)`` of the images: ``config.size`` at the model's channels."""
    height, width, channels = model_input_size(model)
    if config.size is None:
        return height, width, channels
    size_h, size_w = config.size
    if size_h < height or size_w < width:
        raise InvalidSettingError(
            f"size {size_h}x{size_w} is smaller than the model input {height}x{width}; use "
            f"at least the input size, or size=None"
        )
    if isinstance(config.method, Parameterization) and config.method.channels != channels:
        raise InvalidSettingError(
            f"the parameterization makes {config.method.channels}-channel images and the "
            f"model takes {channels} channel(s); build it with image_shape=(H, W, {channels})"
        )
    return size_h, size_w, channels


def build_parameterization(
    config: RunConfig, image_shape: tuple[int, int, int]
) -> Parameterization:
    """The parameterization ``config.method`` names, for images of ``image_shape``.

    Parameters
    ----------
    config
        The run's settings (method, values range, decay power, magnitude dataset).
    image_shape
        ``(height, width, channels)``.

    Returns
    -------
    parameterization
        ``config.method`` itself when it is an instance.

    Raises
    ------
    SpectrumError
        For MACO on a non-RGB model without a ``magnitude_dataset``.
    """
    if isinstance(config.method, Parameterization):
        return config.method
    height, width, channels = image_shape
    if config.method == "fourier":
        return FourierParameterization(image_shape, config.values_range, config.decay_power)
    if config.method == "pixel":
        return PixelParameterization(image_shape, config.values_range)
    if config.magnitude_dataset is not None:
        magnitude = dataset_magnitude(config.magnitude_dataset, height, width, channels)
    elif channels == 3:
        magnitude = imagenet_magnitude(height, width)
    else:
        raise SpectrumError(
            f"the model takes {channels}-channel images: the bundled ImageNet spectrum is "
            f"RGB only, so pass magnitude_dataset= images of {channels} channel(s) to compute "
            f"the magnitude"
        )
    return MacoParameterization(
        magnitude, image_shape, config.values_range, phase_spread=config.phase_spread
    )


def apply_overrides(config: RunConfig | None = None, **overrides: object) -> RunConfig:
    """``config`` (default: ``RunConfig()``) with ``overrides`` applied.

    Parameters
    ----------
    config
        A :class:`RunConfig`, or None for the defaults.
    **overrides
        Field names of :class:`RunConfig` or :class:`~maco_tf.EngineConfig`.

    Returns
    -------
    config
        The validated config.

    Raises
    ------
    InvalidSettingError
        For an unknown name (the message lists the valid names) or an invalid value.
    """
    if config is not None and not isinstance(config, RunConfig):
        raise InvalidSettingError(
            f"config must be a maco_tf.RunConfig or None; got {type(config).__name__} (give "
            f"settings as keywords: visualize(objective, steps=64, ...))"
        )
    config = config if config is not None else RunConfig()
    return config.replace(**overrides) if overrides else config


def visualize(
    objective: object,
    config: RunConfig | None = None,
    *,
    progress: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    image_ids: Sequence[int] | None = None,
    cache: LoopCache | None = None,
    callbacks: Sequence[Callable[[Progress], object]] | None = None,
    **overrides: object,
) -> Visualization:
    """Optimise one image per objective combination and return images, transparency and logs.

    Parameters
    ----------
    objective
        An ``xplique.features_visualizations.Objective``, a maco_tf objective (see
        :mod:`maco_tf.targets`), possibly with diversity terms (``objective - w *
        maco_tf.diversity(layer)``); each of its N combinations gets its own image (``copies``
        each).
    config
        The run's settings; default ``RunConfig()`` (the project's tuned defaults).
    progress
        Show a progress bar.
    strategy
        A ``tf.distribute`` strategy whose replicas share each compiled batch: with R replicas
        each optimises ``batch_size / R`` of the images, and the images equal those of one
        device for the same seed. Default: the strategy whose ``scope()`` is open, else none.
        ``batch_size`` is rounded up to a multiple of R. Not with diversity terms or
        ``jit_compile``.
    image_ids
        Identity of each image's random streams (see :mod:`maco_tf.core.seeds`): image ``i``
        depends on ``(seed, image_ids[i])`` only, whatever batch or replica it runs in.
        Default ``0 .. N-1``; one id in ``[0, 2**32)`` per image, ``copies`` included.
    cache
        Where compiled loops are kept between calls (default: a module-level cache).
    callbacks
        Callables called with a :class:`~maco_tf.Progress` after each compiled call of each
        batch (every ``steps_per_call`` steps, and at the ``snapshots`` steps): the steps done,
        the objective values of the call's steps and, for a callback with a true
        ``wants_images`` attribute, the current images (see :mod:`maco_tf.core.callbacks`).
        They run between compiled calls: the traced loop is the same with or without them.
    **overrides
        Settings replacing those of ``config``: field names of :class:`~maco_tf.RunConfig`
        (``steps=64, crops=8, seed=3``...) or of :class:`~maco_tf.EngineConfig`
        (``batch_size=4``...).

    Returns
    -------
    visualization
        See :class:`Visualization`.

    Raises
    ------
    InvalidSettingError
        For an unknown setting name, an invalid value, or a run over the resource limits
        (checked before anything is allocated).
    IncompatibleModelError
        For a model with a layer whose name TensorFlow cannot use as a name scope
        (:func:`~maco_tf.models.layers.check_scope_names`).
    """
    config = apply_overrides(config, **overrides)
    callbacks = check_callbacks(callbacks)
    compiled = repeat(compile_objective(objective), config.copies)
    check_scope_names(compiled.model)
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    replicas = int(strategy.num_replicas_in_sync)
    _check_strategy(config, compiled, replicas)
    image_shape = _image_shape(compiled.model, config)
    check_view_terms(compiled, model_input_size(compiled.model))
    n_total = compiled.nb_combinations
    ids = _check_image_ids(image_ids, n_total)
    automatic = config.engine.batch_size is None
    config = _resolve(config, n_total, replicas, strategy)
    input_shape, held = model_input_size(compiled.model), held_activation_values(compiled.model)
    if automatic:  # shrunk to fit the memory bound rather than refused by it
        fitting = config.limits.images_per_batch(
            config.engine.batch_size, config.crops, input_shape, image_shape, held, replicas
        )
        config = config.replace(batch_size=fitting)
    config.limits.check_batch_memory(
        config.engine.batch_size, config.crops, input_shape, image_shape, held
    )
    parameterization = build_parameterization(config, image_shape)
    loop = _compiled_loop(config, compiled, parameterization, strategy, cache)
    start_time = time.perf_counter()
    outputs, watchers = _run_batches(
        loop, config, compiled, parameterization, ids, progress, callbacks
    )
    steps_run = np.concatenate([np.full(len(o.images), o.losses.shape[0]) for o in outputs])
    snapshots, kept_steps = _snapshots(config, outputs, watchers, int(steps_run.max()))
    result = Visualization(
        images=np.concatenate([o.images for o in outputs]),
        transparency=np.concatenate([o.transparency for o in outputs]),
        names=compiled.names,
        loss_history=_padded_history(outputs, int(steps_run.max())),
        nonfinite_steps=np.concatenate([o.nonfinite_steps for o in outputs]),
        method=config.method_name,
        seed=config.seed,
        values_range=config.values_range,
        settings={**config.record(), "image_shape": list(image_shape), "replicas": replicas},
        elapsed_s=time.perf_counter() - start_time,
        config=config,
        snapshots=snapshots,
        snapshot_steps=kept_steps,
        steps_run=steps_run,
    )
    _warn_about_failures(result)
    return result


def _check_strategy(config: RunConfig, compiled: CompiledObjective, replicas: int) -> None:
    if config.engine.jit_compile and replicas > 1:
        raise InvalidSettingError(
            f"jit_compile=True with a strategy of {replicas} replicas: one XLA cluster cannot "
            f"span several devices; use jit_compile=False (each replica still runs its share "
            f"on its own device), or no strategy"
        )
    if compiled.batch_terms and replicas > 1:
        names = ", ".join(dict.fromkeys(term.name for term in compiled.batch_terms))
        raise InvalidSettingError(
            f"the {names} term couples the images of a batch and the strategy splits batches "
            f"over {replicas} replicas; drop the {names} term, or use no strategy"
        )


def _resolve(
    config: RunConfig, n_total: int, replicas: int, strategy: tf.distribute.Strategy
) -> RunConfig:
    """``config`` with its seed, batch size and lanes decided for this run."""
    engine = config.engine
    batch_size = engine.batch_size or auto_batch_size(config.crops, replicas, n_total)
    batch_size = replicas * math.ceil(min(batch_size, n_total) / replicas)
    lanes = engine.lanes or auto_lanes(engine.jit_compile, strategy)
    seed = random_seed() if config.seed is None else config.seed
    return config.replace(seed=seed, batch_size=batch_size, lanes=lanes)


def _compiled_loop(
    config: RunConfig,
    compiled: CompiledObjective,
    parameterization: Parameterization,
    strategy: tf.distribute.Strategy,
    cache: LoopCache | None,
) -> CompiledLoop:
    """The cached loop for this objective structure and config, or a new one."""
    optimizer = config.optimizer or default_optimizer(parameterization.name)
    engine = config.engine
    key = (
        compiled.structure_key(),
        parameterization.cache_key(),
        config.loop_key(),
        id(strategy),
    )
    cache = cache if cache is not None else _DEFAULT_CACHE
    loop = cache.get(
        key,
        compiled.model,
        lambda: CompiledLoop(
            compiled,
            parameterization,
            clone_optimizer(optimizer),
            nb_images=engine.batch_size,
            nb_crops=config.crops,
            jit_compile=engine.jit_compile,
            steps_per_call=engine.steps_per_call,
            pooled_noise=engine.pooled_noise,
            strategy=strategy,
            whole_views=config.used_whole_views,
            lanes=engine.lanes,
            transforms=config.transforms,
            fill=0.5 * (config.values_range[0] + config.values_range[1]),
            eager=engine.eager,
        ),
    )
    loop.objective = compiled  # same structure; the masks are passed per run anyway
    return loop


def _run_batches(
    loop: CompiledLoop,
    config: RunConfig,
    compiled: CompiledObjective,
    parameterization: Parameterization,
    ids: np.ndarray,
    progress: bool,
    callbacks: tuple = (),
) -> tuple[list, list[BatchWatcher]]:
    """Run every batch of images through ``loop``.

    Returns their outputs (padding rows removed) and the watcher of each batch (its
    snapshots and whether it stopped early).
    """
    batch_size, n_total = config.engine.batch_size, compiled.nb_combinations
    settings = LoopSettings(
        box_sizes=config.box_sizes(), noise_levels=config.noise_levels(), seed=config.seed
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = config.steps * math.ceil(n_total / batch_size)
        bar = tqdm(total=total, desc=config.method_name, unit="step")
    outputs, watchers = [], []
    try:
        for batch, first in enumerate(range(0, n_total, batch_size)):
            real = list(range(first, min(first + batch_size, n_total)))
            padded = real + [real[-1]] * (batch_size - len(real))
            watcher = BatchWatcher(
                count=len(real),
                steps=config.steps,
                names=compiled.names[first : first + len(real)],
                batch=batch,
                first=first,
                every=config.snapshots,
                window=config.early_stop,
                callbacks=callbacks,
            )
            out = loop.run(
                initial_params=parameterization.initial_params(config.seed, ids[padded]),
                buffers=parameterization.buffers(),
                masks=[m[padded] for m in compiled.masks],
                multipliers=compiled.multipliers,
                seeds=image_seeds(config.seed, ids[padded]),
                settings=settings,
                on_steps=bar.update if bar is not None else None,
                every=config.snapshots,
                on_chunk=watcher if watcher.active else None,
            )
            if bar is not None and watcher.stopped:  # the steps not run, at once
                bar.update(config.steps - out.losses.shape[0])
            outputs.append(out.keep(len(real)))
            watchers.append(watcher)
    finally:
        if bar is not None:
            bar.close()
    return outputs, watchers


def _padded_history(outputs: list, steps: int) -> np.ndarray:
    """``(steps, N)`` objective values of every batch, NaN after a batch's last step run."""
    columns = []
    for out in outputs:
        padding = np.full((steps - out.losses.shape[0], out.losses.shape[1]), np.nan)
        columns.append(np.concatenate([out.losses, padding.astype(out.losses.dtype)]))
    return np.concatenate(columns, axis=1)


def _snapshots(
    config: RunConfig, outputs: list, watchers: list[BatchWatcher], steps: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(N, S, H, W, C)`` snapshots and their ``(S,)`` steps, or None without ``snapshots``."""
    if config.snapshots is None:
        return None, None
    kept = snapshot_steps(config.snapshots, steps)
    per_batch = []
    for out, watcher in zip(outputs, watchers, strict=True):
        run = out.losses.shape[0]
        frames = [watcher.snapshot_at(int(step), out.images, run) for step in kept]
        per_batch.append(np.stack(frames, axis=1))
    return np.concatenate(per_batch), kept


def _check_image_ids(image_ids: Sequence[int] | None, count: int) -> np.ndarray:
    """``image_ids`` as ``count`` int64 ids in ``[0, 2**32)`` (default ``0..count-1``)."""
    if image_ids is None:
        return np.arange(count, dtype=np.int64)
    try:
        ids = np.asarray(image_ids)
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(f"image_ids must be integers; got {image_ids!r}") from exc
    valid = ids.shape == (count,) and np.issubdtype(ids.dtype, np.integer)
    if not valid or np.any(ids < 0) or np.any(ids >= IMAGE_ID_LIMIT):
        raise InvalidSettingError(
            f"image_ids must be {count} integers in [0, 2**32) (one per image, copies "
            f"included); got {image_ids!r}"
        )
    return ids.astype(np.int64)


def _warn_about_failures(result: Visualization) -> None:
    """Tell the user about objectives whose images did not really optimise."""
    for i, name in enumerate(result.names):
        skipped = int(result.nonfinite_steps[i])
        nb_steps = (
            int(result.steps_run[i]) if result.steps_run is not None else len(result.loss_history)
        )
        if skipped == nb_steps:
            warnings.warn(
                f"objective {name!r}: the loss or its gradient was NaN/inf at every step, so the "
                f"image is its random start; check the model and objective for overflow",
                DeadObjectiveWarning,
                stacklevel=3,
            )
        elif result.dead[i]:
            warnings.warn(
                f"objective {name!r} gave zero gradients at every step (a dead unit, e.g. a ReLU "
                f"that never fires here), so the image is its random start; try another layer "
                f"or a pre-activation output",
                DeadObjectiveWarning,
                stacklevel=3,
            )
        elif skipped:
            warnings.warn(
                f"objective {name!r}: {skipped} of {nb_steps} steps had a NaN/inf loss or "
                f"gradient and were skipped",
                DeadObjectiveWarning,
                stacklevel=3,
            )

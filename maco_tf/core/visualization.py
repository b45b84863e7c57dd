"""Public entry points of the optimisation.

:func:`maco` is a drop-in for Xplique's; :func:`fourier` and :func:`pixel` are the baselines on
the same loop; :func:`visualize` returns everything a run produced.
"""

from __future__ import annotations

import math
import secrets
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from maco_tf.core.augment import Schedule, box_size_schedule, noise_schedule
from maco_tf.core.engine import (
    CompiledLoop,
    LoopCache,
    LoopSettings,
    clone_optimizer,
    image_seeds,
    model_input_size,
    optimizer_key,
)
from maco_tf.core.objectives import compile_objective, repeat, with_diversity
from maco_tf.core.parameterization import (
    FourierParameterization,
    MacoParameterization,
    Parameterization,
    PixelParameterization,
)
from maco_tf.core.spectrum import dataset_magnitude, imagenet_magnitude
from maco_tf.errors import InvalidSettingError, SpectrumError
from maco_tf.models.layers import layer_output

METHODS = ("maco", "fourier", "pixel")

#: Crops per model batch that the automatic ``batch_size`` aims for (CPU-friendly).
AUTO_CROPS_PER_BATCH = 128

_DEFAULT_CACHE = LoopCache()


def auto_batch_size(nb_crops: int, replicas: int = 1, nb_images: int | None = None) -> int:
    """Images per compiled batch when none is given: about 128 crops per step on each replica.

    With ``nb_images``, the batches are balanced: as many batches as that cap needs, of equal
    size (rounded up to a multiple of ``replicas``), so that the last one is not mostly
    padding (10 images at 8 per batch run as 5 + 5, not 8 + 2 padded to 8).
    """
    cap = replicas * max(1, AUTO_CROPS_PER_BATCH // max(nb_crops, 1))
    if nb_images is None or nb_images < 1:
        return cap
    balanced = math.ceil(nb_images / math.ceil(nb_images / cap))
    return replicas * math.ceil(balanced / replicas)


#: Model sub-batches per step on a CPU (see :func:`auto_lanes`).
CPU_LANES = 2


def auto_lanes(jit_compile: bool = False, strategy: tf.distribute.Strategy | None = None) -> int:
    """Sub-batches per step when none is given: ``CPU_LANES`` on CPUs, 1 on accelerators.

    On a CPU one model batch leaves cores idle in the ops that do not parallelise
    internally; two independent sub-batches fill them (EfficientNet-Lite0, 16 crops, 2
    cores: 0.414 -> 0.373 s/step, ``benchmarks/bench_engine.py``; three or four lanes were
    slower than two). A GPU runs one stream of kernels, where a split only makes the kernels
    smaller; XLA compiles one cluster.
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
        ``(nb_steps, N)`` objective value at every step (mean over crops).
    nonfinite_steps
        ``(N,)`` steps skipped because the loss or gradient was NaN or infinite.
    method, seed, values_range, settings
        How the images were made; ``seed`` reproduces them.
    elapsed_s
        Wall time of the optimisation.
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

    def __len__(self) -> int:
        return len(self.names)

    @property
    def objective_values(self) -> np.ndarray:
        """``(N,)`` objective value averaged over the last 10% of the steps."""
        tail = max(1, self.loss_history.shape[0] // 10)
        return self.loss_history[-tail:].mean(axis=0)

    @property
    def dead(self) -> np.ndarray:
        """``(N,)`` True where the objective never gave a usable gradient."""
        return ~np.any(self.transparency.reshape(len(self), -1) > 0, axis=1)


def _check_values_range(values_range: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in values_range)
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(
            f"values_range must be two numbers (low, high), e.g. (-1, 1); got {values_range!r}"
        ) from exc
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidSettingError(f"values_range must be finite; got {values_range!r}")
    if low == high:
        raise InvalidSettingError(f"values_range {values_range!r} is empty; give low < high")
    if low > high:
        raise InvalidSettingError(
            f"values_range {values_range!r} is reversed; give (low, high), e.g. ({high:g}, {low:g})"
        )
    return low, high


def _check_positive_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidSettingError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _image_shape(
    model: keras.Model, custom_shape: Sequence[int] | None
) -> tuple[tuple[int, int, int], tuple[int, int]]:
    height, width, channels = model_input_size(model)
    if custom_shape is None:
        return (height, width, channels), (height, width)
    try:
        custom_h, custom_w = (int(v) for v in custom_shape)
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(
            f"custom_shape must be (height, width), e.g. (512, 512); got {custom_shape!r}"
        ) from exc
    if custom_h < height or custom_w < width:
        raise InvalidSettingError(
            f"custom_shape {tuple(custom_shape)} is smaller than the model input "
            f"({height}, {width}); use at least the input size, or custom_shape=None"
        )
    return (custom_h, custom_w, channels), (height, width)


def _build_parameterization(
    method: str,
    image_shape: tuple[int, int, int],
    values_range: tuple[float, float],
    maco_dataset: object,
    decay_power: float,
) -> Parameterization:
    height, width, channels = image_shape
    if method == "maco":
        if maco_dataset is not None:
            magnitude = dataset_magnitude(maco_dataset, height, width, channels)
        elif channels == 3:
            magnitude = imagenet_magnitude(height, width)
        else:
            raise SpectrumError(
                f"the model takes {channels}-channel images: the bundled ImageNet spectrum is "
                f"RGB only, so pass maco_dataset= images of {channels} channel(s) to compute "
                f"the magnitude"
            )
        return MacoParameterization(magnitude, image_shape, values_range)
    if method == "fourier":
        return FourierParameterization(image_shape, values_range, decay_power=decay_power)
    if method == "pixel":
        return PixelParameterization(image_shape, values_range)
    raise InvalidSettingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _check_parameterization(
    parameterization: Parameterization,
    image_shape: tuple[int, int, int],
    values_range: tuple[float, float],
) -> Parameterization:
    """A given parameterization, if it makes the images this call asks for."""
    if tuple(parameterization.image_shape) != tuple(image_shape):
        raise InvalidSettingError(
            f"the parameterization makes images of shape {parameterization.image_shape} but "
            f"this call makes {tuple(image_shape)} (custom_shape and the model's channels); "
            f"build it with image_shape={tuple(image_shape)} or change custom_shape"
        )
    if tuple(parameterization.values_range) != tuple(values_range):
        raise InvalidSettingError(
            f"the parameterization maps into {parameterization.values_range} but values_range "
            f"is {tuple(values_range)}; build both with the same range"
        )
    return parameterization


def default_optimizer(method: str) -> keras.optimizers.Optimizer:
    """Nadam(1.0) for MACO (as Xplique), Adam(0.05) for the Fourier and pixel baselines."""
    if method == "maco":
        return keras.optimizers.Nadam(learning_rate=1.0)
    return keras.optimizers.Adam(learning_rate=0.05)


def visualize(
    objective: object,
    method: str | Parameterization = "maco",
    optimizer: keras.optimizers.Optimizer | None = None,
    maco_dataset: object = None,
    nb_steps: int = 256,
    noise_intensity: Schedule = 0.08,
    box_size: Schedule = None,
    nb_crops: int = 32,
    values_range: Sequence[float] = (-1, 1),
    custom_shape: Sequence[int] | None = (512, 512),
    *,
    seed: int | None = None,
    batch_size: int | None = None,
    jit_compile: bool = False,
    progress: bool = False,
    decay_power: float = 1.0,
    steps_per_call: int = 8,
    copies: int = 1,
    pooled_noise: bool = True,
    diversity: float = 0.0,
    diversity_layer: str | int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    image_ids: Sequence[int] | None = None,
    whole_views: int = 0,
    lanes: int | None = None,
    cache: LoopCache | None = None,
) -> Visualization:
    """Optimise one image per objective combination and return images, transparency and logs.

    Parameters
    ----------
    objective
        An ``xplique.features_visualizations.Objective`` (or a maco_tf objective); each of its
        N combinations gets its own image.
    method
        ``"maco"`` (fixed natural magnitude, trainable phase), ``"fourier"`` (Olah et al.) or
        ``"pixel"``; or a :class:`~maco_tf.core.parameterization.Parameterization` instance
        built for these images (its ``image_shape`` must be ``custom_shape`` with the model's
        channels, its ``values_range`` this ``values_range``), e.g. a
        ``MacoParameterization`` with another magnitude or ``phase_spread``; then
        ``maco_dataset`` and ``decay_power`` are not used.
    optimizer
        A Keras optimizer whose configuration is used (the object itself is not modified);
        default Nadam(1.0) for MACO, Adam(0.05) otherwise (by the parameterization's
        ``name`` for an instance).
    maco_dataset
        Images (array, ``tf.data.Dataset`` or iterable) whose average magnitude replaces the
        bundled ImageNet one; required for non-RGB models.
    nb_steps
        Optimisation steps.
    noise_intensity
        Noise std per step: a float, a callable ``step -> float``, a per-step array, or None
        (log ramp 1 to 1e-4). Expressed for a value range of width 2 (Xplique's (-1, 1)) and
        scaled with ``values_range``.
    box_size
        Average crop side (fraction of the image side) per step: float, callable, array, or
        None (linear 0.5 to 0.05).
    nb_crops
        Crops per image and step; 0 uses the whole image.
    values_range
        ``(low, high)`` range of the model's inputs.
    custom_shape
        ``(height, width)`` of the images (at least the model input); None: the model input.
    seed
        Seed of the run (None: a random one, reported in the result).
    batch_size
        Images optimised together in one compiled loop (their crops share model batches);
        default: enough to put about 128 crops through the model per step.
    jit_compile
        Compile the loop with XLA.
    progress
        Show a progress bar.
    decay_power
        Spectral decay of the Fourier baseline.
    steps_per_call
        Steps run inside each compiled call (progress granularity).
    pooled_noise
        Read each step's noise from a pool at random offsets (one window per image and step)
        instead of drawing it afresh; the pool, 1.25 times one step's noise, is drawn anew at
        every compiled call (every ``steps_per_call`` steps). Either way every value is
        N(0, 1) + U(-1/2, 1/2), scaled. On by default: fresh draws cost 1-7 % more per step
        on a CPU (``benchmarks/bench_engine.py``); False gives fresh noise at every step.
    copies
        Images per objective combination (consecutive in the result, named ``name #k``).
    diversity
        Weight of a diversity term that pushes the images of one compiled batch apart (mean
        pairwise cosine similarity of their Gram matrices at ``diversity_layer``, as in Lucid).
        With a positive weight the images of a batch are optimised *jointly*; give
        ``batch_size`` a multiple of ``copies`` so the copies of a target share a batch.
    diversity_layer
        Spatial layer (name, index or nested path) for the diversity term; default: the layer
        of the objective's first term when it is spatial.
    strategy
        A ``tf.distribute`` strategy whose replicas share each compiled batch: with R replicas
        (``MirroredStrategy`` over a machine's GPUs, ``MultiWorkerMirroredStrategy`` over
        machines) each replica optimises ``batch_size / R`` of the images, and the images
        are those of one device for the same seed. Default: the strategy whose ``scope()``
        is open, else none. ``batch_size`` is rounded up to a multiple of R; the auto
        ``batch_size`` aims at about 128 crops per replica. Not with ``diversity`` or
        ``jit_compile``.
    image_ids
        Identity of each image's random stream (start and crops/noise): image ``i`` depends
        on ``(seed, image_ids[i])`` only, whatever batch or replica it runs in. Default
        ``0 .. N-1``. Give stable ids (e.g. class indices) to make an image independent of
        which other objectives are run with it; one id per image, ``copies`` included.
    whole_views
        How many of the ``nb_crops`` crops of each step are the whole image (resized, with
        noise) instead of a random crop. Crops alone optimise details at the crops' scale; a
        whole view also scores the image as it is finally looked at (and classified). Default
        0, as Xplique; the command line uses 4 of 16.
    lanes
        Sub-batches each step's crops are split into, each through its own call of the
        model; the runtime runs them side by side. Default (None): :func:`auto_lanes` (2 on a
        CPU, where a single model batch leaves cores idle, 1 on a GPU or with XLA). Images
        for a seed depend on it only at rounding level.
    cache
        Where compiled loops are kept between calls (default: a module-level cache).

    Returns
    -------
    visualization
        See :class:`Visualization`.
    """
    compiled = compile_objective(objective)
    copies = _check_positive_int(copies, "copies", 1)
    compiled = repeat(compiled, copies)
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    replicas = int(strategy.num_replicas_in_sync)
    if jit_compile and replicas > 1:
        raise InvalidSettingError(
            f"jit_compile=True with a strategy of {replicas} replicas: one XLA cluster cannot "
            f"span several devices; use jit_compile=False (each replica still runs its share "
            f"on its own device), or no strategy"
        )
    if diversity and replicas > 1:
        raise InvalidSettingError(
            f"diversity couples the images of a batch and the strategy splits batches over "
            f"{replicas} replicas; use diversity=0, or no strategy"
        )
    if diversity:
        compiled = _add_diversity(compiled, float(diversity), diversity_layer)
    nb_steps = _check_positive_int(nb_steps, "nb_steps", 1)
    nb_crops = _check_positive_int(nb_crops, "nb_crops", 0)
    whole_views = _check_positive_int(whole_views, "whole_views", 0)
    if whole_views > nb_crops:
        raise InvalidSettingError(
            f"whole_views={whole_views} is more than nb_crops={nb_crops}: whole views replace "
            f"some of the crops; use at most nb_crops"
        )
    steps_per_call = _check_positive_int(steps_per_call, "steps_per_call", 1)
    values_range = _check_values_range(values_range)
    if not isinstance(method, Parameterization) and method not in METHODS:
        raise InvalidSettingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    image_shape, _ = _image_shape(compiled.model, custom_shape)
    n_total = compiled.nb_combinations
    ids = _check_image_ids(image_ids, n_total)
    if batch_size is None:
        batch_size = auto_batch_size(nb_crops, replicas, n_total)
    batch_size = min(_check_positive_int(batch_size, "batch_size", 1), n_total)
    batch_size = replicas * math.ceil(batch_size / replicas)
    seed = secrets.randbits(31) if seed is None else int(seed)
    lanes = auto_lanes(jit_compile, strategy) if lanes is None else lanes
    lanes = _check_positive_int(lanes, "lanes", 1)

    width = values_range[1] - values_range[0]
    settings = LoopSettings(
        box_sizes=box_size_schedule(box_size, nb_steps),
        noise_levels=noise_schedule(noise_intensity, nb_steps) * (width / 2.0),
        seed=seed,
    )
    if isinstance(method, Parameterization):
        parameterization = _check_parameterization(method, image_shape, values_range)
        method = parameterization.name
    else:
        parameterization = _build_parameterization(
            method, image_shape, values_range, maco_dataset, decay_power
        )
    optimizer = optimizer if optimizer is not None else default_optimizer(method)
    cache = cache if cache is not None else _DEFAULT_CACHE
    key = (
        compiled.structure_key(),
        parameterization.cache_key(),
        optimizer_key(optimizer),
        batch_size,
        nb_crops,
        bool(jit_compile),
        steps_per_call,
        bool(pooled_noise),
        id(strategy),
        whole_views,
        lanes,
    )
    loop = cache.get(
        key,
        compiled.model,
        lambda: CompiledLoop(
            compiled,
            parameterization,
            clone_optimizer(optimizer),
            nb_images=batch_size,
            nb_crops=nb_crops,
            jit_compile=jit_compile,
            steps_per_call=steps_per_call,
            pooled_noise=pooled_noise,
            strategy=strategy,
            whole_views=whole_views,
            lanes=lanes,
        ),
    )
    loop.objective = compiled  # same structure; the masks are passed per run anyway

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=nb_steps * math.ceil(n_total / batch_size), desc=f"{method}", unit="step")
    outputs = []
    start_time = time.perf_counter()
    try:
        for first in range(0, n_total, batch_size):
            real = list(range(first, min(first + batch_size, n_total)))
            padded = real + [real[-1]] * (batch_size - len(real))
            out = loop.run(
                initial_params=parameterization.initial_params(seed, ids[padded]),
                buffers=parameterization.buffers(),
                masks=[m[padded] for m in compiled.masks],
                multipliers=compiled.multipliers,
                seeds=image_seeds(seed, ids[padded]),
                settings=settings,
                on_steps=bar.update if bar is not None else None,
            )
            keep = len(real)
            outputs.append(
                (
                    out.images[:keep],
                    out.transparency[:keep],
                    out.losses[:, :keep],
                    out.nonfinite_steps[:keep],
                )
            )
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start_time
    result = Visualization(
        images=np.concatenate([o[0] for o in outputs]),
        transparency=np.concatenate([o[1] for o in outputs]),
        names=compiled.names,
        loss_history=np.concatenate([o[2] for o in outputs], axis=1),
        nonfinite_steps=np.concatenate([o[3] for o in outputs]),
        method=method,
        seed=seed,
        values_range=values_range,
        settings={
            "nb_steps": nb_steps,
            "nb_crops": nb_crops,
            "image_shape": list(image_shape),
            "batch_size": batch_size,
            "jit_compile": bool(jit_compile),
            "optimizer": optimizer.get_config().get("name", type(optimizer).__name__),
            "copies": copies,
            "pooled_noise": bool(pooled_noise),
            "diversity": float(diversity),
            "replicas": replicas,
            "whole_views": whole_views,
            "lanes": lanes,
        },
        elapsed_s=elapsed,
    )
    _warn_about_failures(result)
    return result


def _check_image_ids(image_ids: Sequence[int] | None, count: int) -> np.ndarray:
    """``image_ids`` as an int64 array of ``count`` non-negative ids (default ``0..count-1``)."""
    if image_ids is None:
        return np.arange(count, dtype=np.int64)
    try:
        ids = np.asarray(image_ids)
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(f"image_ids must be integers; got {image_ids!r}") from exc
    if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 0):
        raise InvalidSettingError(
            f"image_ids must be {count} non-negative integers (one per image, copies "
            f"included); got {image_ids!r}"
        )
    return ids.astype(np.int64)


def _add_diversity(compiled, weight: float, layer: str | int | None):
    """Attach the batch diversity term, on ``layer`` or the objective's first spatial layer."""
    if not math.isfinite(weight) or weight < 0:
        raise InvalidSettingError(f"diversity must be a finite weight >= 0; got {weight!r}")
    if layer is None:
        output = compiled.outputs[0]
        if len(output.shape) != 4:
            raise InvalidSettingError(
                f"diversity needs a spatial layer and the objective's layer has shape "
                f"{tuple(output.shape)}; pass diversity_layer= (e.g. an intermediate conv layer)"
            )
    else:
        output = layer_output(compiled.model, layer)
    try:
        return with_diversity(compiled, output, weight)
    except ValueError as exc:
        raise InvalidSettingError(f"diversity_layer {layer!r}: {exc}") from exc


def _warn_about_failures(result: Visualization) -> None:
    """Tell the user about objectives whose images did not really optimise."""
    for i, name in enumerate(result.names):
        skipped = int(result.nonfinite_steps[i])
        nb_steps = result.loss_history.shape[0]
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


def _unpack(result: Visualization) -> tuple[np.ndarray, np.ndarray]:
    if len(result) == 1:
        return result.images[0], result.transparency[0]
    return result.images, result.transparency


def maco(
    objective: object,
    optimizer: keras.optimizers.Optimizer | None = None,
    maco_dataset: object = None,
    nb_steps: int = 256,
    noise_intensity: Schedule = 0.08,
    box_size: Schedule = None,
    nb_crops: int = 32,
    values_range: Sequence[float] = (-1, 1),
    custom_shape: Sequence[int] | None = (512, 512),
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """MACO feature visualization: drop-in for ``xplique.features_visualizations.maco``.

    Same arguments and defaults as Xplique's ``maco``; keyword-only ``options`` are those of
    :func:`visualize` (``seed``, ``batch_size``, ``jit_compile``, ``progress``...). Unlike
    Xplique's, an objective with N combinations is accepted: all N images are optimised
    together.

    Returns
    -------
    image, transparency
        For one combination, ``(H, W, C)`` arrays (as Xplique); for N, ``(N, H, W, C)``
        arrays in the objective's name order.
    """
    return _unpack(
        visualize(
            objective,
            "maco",
            optimizer,
            maco_dataset,
            nb_steps,
            noise_intensity,
            box_size,
            nb_crops,
            values_range,
            custom_shape,
            **options,
        )
    )


def fourier(
    objective: object,
    optimizer: keras.optimizers.Optimizer | None = None,
    nb_steps: int = 256,
    noise_intensity: Schedule = 0.08,
    box_size: Schedule = None,
    nb_crops: int = 32,
    values_range: Sequence[float] = (-1, 1),
    custom_shape: Sequence[int] | None = (512, 512),
    decay_power: float = 1.0,
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Olah et al. Fourier feature visualization on the same loop, crops and noise as :func:`maco`.

    Returns
    -------
    image, transparency
        As :func:`maco`.
    """
    return _unpack(
        visualize(
            objective,
            "fourier",
            optimizer,
            None,
            nb_steps,
            noise_intensity,
            box_size,
            nb_crops,
            values_range,
            custom_shape,
            decay_power=decay_power,
            **options,
        )
    )


def pixel(
    objective: object,
    optimizer: keras.optimizers.Optimizer | None = None,
    nb_steps: int = 256,
    noise_intensity: Schedule = 0.08,
    box_size: Schedule = None,
    nb_crops: int = 32,
    values_range: Sequence[float] = (-1, 1),
    custom_shape: Sequence[int] | None = (512, 512),
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-space gradient ascent on the same loop: the naive baseline.

    Returns
    -------
    image, transparency
        As :func:`maco`.
    """
    return _unpack(
        visualize(
            objective,
            "pixel",
            optimizer,
            None,
            nb_steps,
            noise_intensity,
            box_size,
            nb_crops,
            values_range,
            custom_shape,
            **options,
        )
    )

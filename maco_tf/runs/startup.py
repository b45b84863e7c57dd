"""Starting a run: devices, the model, agreement between workers, where this process writes."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from maco_tf.core.distribute import Distribution, fingerprint, make_strategy
from maco_tf.errors import MacoError
from maco_tf.models import loading as models
from maco_tf.models.loading import LoadedModel
from maco_tf.runs.plans import Plan
from maco_tf.runs.request import Request
from maco_tf.runs.running import Say

__all__ = [
    "agreed_pending",
    "check_method",
    "check_size",
    "load_model",
    "set_up_distribution",
    "writable",
]


def set_up_distribution(request: Request, say: Say) -> Request:
    """Make ``--strategy``'s strategy (before any other TensorFlow work); the request with it."""
    distribution = Distribution(make_strategy(request.strategy))
    if distribution.strategy is not None:
        role = "chief" if distribution.is_chief else "worker (the chief writes the results)"
        say(f"strategy: {distribution.describe()}; this process is the {role}")
    return request.with_distribution(distribution)


def load_model(request: Request, say: Say) -> tuple[LoadedModel, Request]:
    """The ``--model``, its weights mirrored over the strategy's devices when there is one.

    The flags were checked when the request was built (its :class:`~maco_tf.RunConfig`,
    resource bounds included); the model's input range and its reason, and its loading notes,
    are said, ``--size`` and ``--method`` are checked against its input.

    Returns
    -------
    loaded, request
        The model, and the request whose config is in the model's value range.

    Raises
    ------
    MacoError
        For a model that cannot be loaded, a ``--size`` smaller than its input, or
        ``--method maco`` on a model whose images are not RGB.
    """
    distribution = request.distribution
    scope = distribution.strategy.scope() if distribution.strategy else contextlib.nullcontext()
    with scope:
        loaded = models.load_model(request.model.model, **request.model.options())
    say(loaded.describe_range())
    for note in loaded.notes:
        say(f"note: {note}")
    check_size(request.config.size, loaded)
    check_method(request.config.method if request.method_given else None, loaded)
    return loaded, request.for_model(loaded.values_range)


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


def check_size(size: tuple[int, int] | None, loaded: LoadedModel) -> None:
    """Refuse an image side smaller than the model input (:class:`MacoError`); None: the input.

    ``size`` is the run's ``(height, width)`` (``--size N``: ``(N, N)``).
    """
    if size is not None and min(size) < max(loaded.input_size):
        raise MacoError(
            f"--size {min(size)} is smaller than the model input "
            f"{loaded.input_size[0]}x{loaded.input_size[1]}; use at least "
            f"{max(loaded.input_size)}"
        )


def agreed_pending(
    request: Request,
    settings: dict,
    plan: Plan,
    pending: Sequence[int],
    batch_size: int,
    shard: tuple[int, int] = (0, 1),
) -> list[int]:
    """The chief's pending targets, after checking that all workers run the same thing."""
    key = fingerprint(settings, [t.key for t in plan.targets], batch_size, shard)
    return request.distribution.agree(key, pending, len(plan.targets))


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

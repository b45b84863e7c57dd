"""The ``maco-tf`` command line: feature visualizations to PNG files, resumable.

Usage::

    maco-tf visualize --classes espresso,goldfish            # EfficientNet-Lite0, offline
    maco-tf visualize --model MobileNetV2 --classes 1,967     # keras.applications (downloads)
    maco-tf visualize --model net.keras --layer conv3 --channel 0-7 --values-range 0,1
    maco-tf visualize --layer block6a_expand_conv --direction dirs.npy --method fourier
    maco-tf layers --model net.keras                          # list layer paths and shapes

Each target gets ``<slug>.png`` (the image), ``<slug>_rgba.png`` (with its importance as alpha)
and ``<slug>_heatmap.png``; ``results.json`` describes the run: settings, and per target its
name, files, objective value, the model's top-5 classes on the image, and timings.

Resuming: targets are processed in chunks of ``--batch-size``; after each chunk its PNGs are
written and ``results.json`` is rewritten atomically. Re-running the same command skips every
target whose three PNGs exist and that ``results.json`` records. If the folder holds results
made with *different settings* (model, method, steps, crops, size, seed, value range), the
command refuses (exit code 2) and names the differences: use another ``--out`` folder, or pass
``--overwrite`` to delete the recorded images and start afresh. ``--batch-size`` and ``--jit``
are not settings in that sense (they only change speed, and which random streams images use).

Exit codes: 0 done, 2 bad input (unknown model, class, layer, index, conflicting settings...),
130 interrupted (finished targets are kept; re-run to resume), 1 other failures.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from maco_tf.cli.parsing import join_negative_values, value_flags
from maco_tf.errors import MacoError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

__all__ = ["main"]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``maco-tf``; returns the exit code (0 ok, 2 bad input, 130 interrupted, 1 failure).

    Parameters
    ----------
    argv
        Arguments without the program name; default ``sys.argv[1:]``.
    """
    try:
        return _run(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:  # also while TensorFlow and the model load
        print("maco-tf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(argv: list[str]) -> int:
    # Imported here, not at the top: they load TensorFlow, which takes seconds, during which
    # Ctrl-C must still be answered by main() with one line.
    from maco_tf.cli.parser import build_parser
    from maco_tf.models.zoo import CheckpointError, ImageNetClassError
    from maco_tf.runs.running import RunInterruptedError

    parser = build_parser()
    try:
        args = parser.parse_args(join_negative_values(argv, value_flags(parser)))
    except SystemExit as exc:  # --help, --version, or an argparse error (code 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_usage(sys.stderr)
        print("maco-tf: error: give a command: visualize, layers or atlas", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except RunInterruptedError as exc:
        print(f"maco-tf: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MacoError, ImageNetClassError, CheckpointError) as exc:  # user mistakes
        print(f"maco-tf: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"maco-tf: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

"""Keep TensorFlow's CUDA probe line off the console of machines without an NVIDIA driver.

TensorFlow's Linux wheels include CUDA support. The first time a process lists its devices,
TensorFlow calls the CUDA driver, and where there is none it logs ``failed call to cuInit`` at
ERROR level, although nothing is wrong on a CPU machine. ``TF_CPP_MIN_LOG_LEVEL=3`` would hide
that line together with every real error, and ``CUDA_VISIBLE_DEVICES`` does not stop the probe.
So the command line lists the devices once, before any other TensorFlow call, with the process's
standard error captured, and writes back every captured line except that one. The line is kept
wherever an NVIDIA driver is installed: there a failed ``cuInit`` is a real problem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence

#: Text of the line TensorFlow logs when the CUDA driver is missing.
PROBE_MARKER = "failed call to cuInit"

#: Paths that exist when an NVIDIA driver is installed (Linux, its device node, WSL's GPU).
DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")

_STDERR = 2


def has_nvidia_driver(paths: Sequence[str] = DRIVER_PATHS) -> bool:
    """Whether this machine has an NVIDIA driver: one of ``paths`` exists or ``nvidia-smi`` runs.

    Parameters
    ----------
    paths
        Files or folders whose existence means a driver is installed.

    Returns
    -------
    bool
        True when a driver is installed, so that a failed CUDA probe is worth reporting.
    """
    return any(os.path.exists(path) for path in paths) or shutil.which("nvidia-smi") is not None


def without_probe_lines(text: str) -> str:
    """``text`` without the lines that contain :data:`PROBE_MARKER`; other lines unchanged.

    Parameters
    ----------
    text
        Captured console output (several lines).

    Returns
    -------
    str
        The same text, minus the CUDA probe lines.
    """
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if PROBE_MARKER not in line)


@contextlib.contextmanager
def filtered_stderr(keep: Callable[[str], str]) -> Iterator[None]:
    """Capture file descriptor 2 inside the block, then write ``keep(captured)`` back to it.

    Works on what C++ libraries write too, not only on ``sys.stderr``. The captured text is
    written back when the block ends, also when it raises. If descriptor 2 is closed, the
    block runs without capture.

    Parameters
    ----------
    keep
        Maps the captured text (decoded as UTF-8, undecodable bytes replaced) to the text to
        write back.

    Yields
    ------
    None
    """
    try:
        saved = os.dup(_STDERR)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), _STDERR)
        try:
            yield
        finally:
            os.dup2(saved, _STDERR)
            os.close(saved)
            capture.seek(0)
            kept = keep(capture.read().decode("utf-8", errors="replace"))
            if kept:
                os.write(_STDERR, kept.encode("utf-8"))


def list_devices_quietly() -> None:
    """List TensorFlow's devices once, without the CUDA probe line when no driver exists.

    Call it before any other TensorFlow call of the process (TensorFlow probes CUDA only the
    first time it lists devices). Listing physical devices does not initialise the runtime:
    logical devices can still be configured afterwards. Any other line TensorFlow prints
    meanwhile is written back to standard error; with an NVIDIA driver nothing is filtered.
    """
    import tensorflow as tf  # here: importing this module must not load TensorFlow

    if has_nvidia_driver():
        tf.config.list_physical_devices()
        return
    with filtered_stderr(without_probe_lines):
        tf.config.list_physical_devices()

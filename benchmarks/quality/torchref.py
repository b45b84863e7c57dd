"""Running :mod:`quality.torch_side` with another interpreter, data passed as ``.npz`` files.

PyTorch, ``efficientnet-lite-pytorch`` and Horama are never dependencies of maco_tf: the
benchmarks that compare with them take ``--torch-python PATH``, an interpreter of a separate
virtual environment, and run ``torch_side.py`` with it in a temporary working directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

TORCH_SIDE = Path(__file__).with_name("torch_side.py")

#: How to make an interpreter this module can use (torch's CPU build is enough).
INSTALL = (
    "python3 -m venv VENV && VENV/bin/pip install torch torchvision tqdm einops "
    "horama==0.3.0 efficientnet-lite-pytorch==0.1.0 numpy pillow"
)


class TorchSideError(RuntimeError):
    """The PyTorch interpreter failed; the message ends with its last lines of stderr."""


def _environment() -> dict:
    # Horama's progress bars would fill the captured stderr
    return {**os.environ, "TQDM_DISABLE": "1"}


def torch_versions(python: str) -> dict:
    """``torch_side.py check`` run by ``python``: versions found (None if missing) and errors.

    Raises
    ------
    TorchSideError
        ``python`` is not an executable file, or the check itself did not run.
    """
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise TorchSideError(f"--torch-python {python} is not an executable file")
    done = subprocess.run(
        [python, str(TORCH_SIDE), "check"], capture_output=True, text=True, env=_environment()
    )
    if done.returncode:
        raise TorchSideError(f"{python} could not run {TORCH_SIDE.name}: {_tail(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_missing(python: str | None, needed: dict[str, str | None]) -> str | None:
    """Why ``python`` cannot run the torch side, or None.

    Parameters
    ----------
    python
        The ``--torch-python`` interpreter, or None (not given).
    needed
        Module name -> version it must have (None: any version).

    Returns
    -------
    str or None
        A sentence that says what to pass or install, or None when every module imports.
    """
    if python is None:
        return f"pass --torch-python PATH, an interpreter made with: {INSTALL} (never in CI)"
    try:
        found = torch_versions(python)
    except TorchSideError as error:
        return f"{error}; make one with: {INSTALL}"
    for module, version in needed.items():
        have = found["versions"].get(module)
        if have is None:
            why = found["errors"].get(module, "not checked")
            return f"{python} cannot import {module} ({why}); make one with: {INSTALL}"
        if version is not None and have != version:
            return f"{python} has {module} {have}, this row needs {version}"
    return None


def call_torch_side(python: str, command: str, inputs: dict) -> tuple[dict, float]:
    """Run ``torch_side.py COMMAND`` with ``python`` on ``inputs``.

    Parameters
    ----------
    python
        An interpreter that :func:`torch_missing` accepts.
    command
        A command of ``torch_side.py`` (``logits``, ``horama``).
    inputs
        Arrays and scalars the command reads (see ``torch_side.py``).

    Returns
    -------
    tuple
        The command's output arrays by name, and the wall time of the whole subprocess (s).

    Raises
    ------
    TorchSideError
        The subprocess failed.
    """
    with tempfile.TemporaryDirectory(prefix="maco_tf_torch_") as folder:
        source, target = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(source, **inputs)
        start = time.perf_counter()
        done = subprocess.run(
            [python, str(TORCH_SIDE), command, str(source), str(target)],
            capture_output=True,
            text=True,
            cwd=folder,
            env=_environment(),
        )
        seconds = time.perf_counter() - start
        if done.returncode:
            raise TorchSideError(f"torch_side.py {command} failed: {_tail(done.stderr)}")
        with np.load(target) as stored:
            return dict(stored), seconds


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no stderr)"

"""maco_tf.core.limits: the batch memory estimate against the peak TensorFlow really reaches.

Each measurement runs in a fresh process: its peak resident memory (``VmHWM`` of
``/proc/self/status``) after one small ``visualize`` call, less its resident memory once the
model is loaded, must not exceed the estimate the call was checked against.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maco_tf.cli.main import main
from maco_tf.core.limits import Limits, batch_memory, held_activation_values
from maco_tf.errors import InvalidSettingError

from .conftest import build_tiny_cnn

ROOT = Path(__file__).parents[1]

_PROBE = """
import json, os, sys
batch, crops, size = map(int, sys.argv[2:5])
import maco_tf
from maco_tf.core import limits
from xplique.features_visualizations import Objective
if sys.argv[1] == "tiny":
    from tests.conftest import build_tiny_cnn
    model = build_tiny_cnn(size=32)
else:
    from maco_tf.models.zoo.efficientnet_lite import load_efficientnet_lite0
    model = load_efficientnet_lite0()
objective = Objective.neuron(model, model.layers[-1].name, list(range(batch)))
pages = int(open("/proc/self/statm").read().split()[1])
loaded = pages * os.sysconf("SC_PAGE_SIZE")
estimates = []
check = limits.Limits.check_batch_memory
def spy(self, *args, **kwargs):
    estimates.append(check(self, *args, **kwargs))
    return estimates[-1]
limits.Limits.check_batch_memory = spy
maco_tf.visualize(objective, steps=2, crops=crops, size=size, batch_size=batch)
# VmHWM, this process's own peak: ru_maxrss would carry the parent's peak across fork and exec
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"measured": peak - loaded, "estimate": estimates[0]}))
"""


def _measure(model: str, batch: int, crops: int, size: int) -> dict:
    """Peak memory of one ``visualize`` call above the loaded model, and its estimate."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, model, str(batch), str(crops), str(size)],
        capture_output=True, text=True, cwd=ROOT, timeout=1800, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("batch", "crops", "size"),
    [(2, 2, 32), (1, 512, 32), (1, 1, 512)],  # a small batch, many views, a large image
)
def test_the_estimate_is_not_below_the_measured_peak_tiny(batch, crops, size):
    found = _measure("tiny", batch, crops, size)
    assert found["estimate"] >= found["measured"] > 0, found


@pytest.mark.slow
@pytest.mark.parametrize(("batch", "crops", "size"), [(1, 4, 224), (2, 16, 224), (1, 1, 1024)])
def test_the_estimate_is_not_below_the_measured_peak_efficientnet_lite0(batch, crops, size):
    found = _measure("lite", batch, crops, size)
    assert found["estimate"] >= found["measured"] > 0, found


def test_the_model_activations_count():
    model = build_tiny_cnn(size=32)
    held = held_activation_values(model)
    outputs = sum(math.prod(layer.output.shape[1:]) for layer in model.layers[1:])
    assert held > outputs  # both sides of each activation, and the transient largest output
    with_model = batch_memory(2, 4, (32, 32, 3), (64, 64, 3), held)
    assert with_model - batch_memory(2, 4, (32, 32, 3), (64, 64, 3)) == 2 * 4 * held * 4


def test_an_automatic_batch_shrinks_to_fit_instead_of_being_refused():
    limits = Limits(max_batch_memory=batch_memory(5, 8, (32, 32, 3), (320, 320, 3), 1000))
    assert limits.images_per_batch(16, 8, (32, 32, 3), (320, 320, 3), 1000) == 5
    assert limits.images_per_batch(16, 8, (32, 32, 3), (320, 320, 3), 1000, multiple=2) == 4
    assert limits.images_per_batch(3, 8, (32, 32, 3), (320, 320, 3), 1000) == 3
    with pytest.raises(InvalidSettingError, match="--crops, --size, --batch-size"):
        limits.check_batch_memory(6, 8, (32, 32, 3), (320, 320, 3), 1000)


@pytest.mark.parametrize("flags", [["--crops", "100000"], ["--size", "4096", "--batch-size", "1"]])
def test_huge_batches_are_refused_up_front_with_one_line(tmp_path, tiny_file, capsys, flags):
    argv = ["visualize", "--model", str(tiny_file), "--classes", "1", "--steps", "2"]
    assert main([*argv, *flags, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over the limit max_batch_memory" in err
    assert "--crops, --size, --batch-size" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "results.json").exists()

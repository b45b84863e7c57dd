"""tf.distribute on CPU: two logical devices, and two worker processes on 127.0.0.1.

The issue's contract: for the same seed, two logical devices give the images of one device,
and two ``MultiWorkerMirroredStrategy`` workers produce the atlas of one process. Both need
fresh processes (TensorFlow fixes its devices and its cluster at start-up).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maco_tf.core.distribute import Distribution, DistributionError, fingerprint, make_strategy

from .test_atlas import relu_classifier

ROOT = Path(__file__).resolve().parents[1]
ATLAS = ["--steps", "3", "--crops", "2", "--size", "32", "--batch-size", "3"]


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    # Deterministic kernels: the comparisons below are exact up to PNG rounding.
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", TF_DETERMINISTIC_OPS="1", **extra)
    return env


def test_two_logical_devices_give_the_images_of_one_device():
    done = subprocess.run(
        [sys.executable, "-m", "tests.mirrored_check"],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    for method in ("maco", "fourier"):
        measured = report[method]
        assert measured["images_per_replica"] == 2  # each replica really took half a chunk
        assert measured["settings_replicas"] == 2
        assert measured["spread"] > 0.01  # the images moved and differ from each other
        assert measured["images"] < 1e-5, measured
        assert measured["scoped_images"] < 1e-5, measured
        assert measured["transparency"] < 1e-5, measured
        assert measured["losses"] <= 1e-5 * max(1.0, measured["loss_scale"]), measured
        assert measured["nonfinite"] == [0] * 5
        assert measured["trace_count"] == 1  # both chunks (one padded) share one trace
    assert "jit_compile" in report["errors"]["jit"]
    assert "diversity" in report["errors"]["diversity"]
    assert "replicas" in report["errors"]["diversity"]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _run_workers(
    model: Path, outs: list[Path], extra: list[list[str]] | None = None
) -> list[subprocess.CompletedProcess]:
    """``maco-tf atlas`` on two workers of one cluster (``outs[i]`` for worker i)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index, out in enumerate(outs):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        flags = extra[index] if extra else []
        command = [sys.executable, "-m", "maco_tf.cli.main", "atlas", "--model", str(model)]
        processes.append(
            subprocess.Popen(
                [*command, *ATLAS, *flags, "--out", str(out)],
                cwd=ROOT,
                env=_environment(TF_CONFIG=config),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    finished = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            finished.append(
                subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            )
    finally:
        for process in processes:
            process.kill()
    return finished


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p), dtype=np.int16) for p in sorted(folder.glob("*.png"))}


def test_two_workers_produce_the_atlas_of_one_process(tmp_path):
    model = relu_classifier(tmp_path / "relu4.keras")
    single = tmp_path / "single"
    done = subprocess.run(
        [sys.executable, "-m", "maco_tf.cli.main", "atlas", "--model", str(model), *ATLAS,
         "--strategy", "none", "--out", str(single)],
        cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    chief, other = tmp_path / "chief", tmp_path / "other"
    first = _run_workers(model, [chief, other])
    assert [p.returncode for p in first] == [0, 0], (
        first[0].stderr[-3000:] + first[1].stderr[-3000:]
    )
    assert not other.exists()  # only the chief writes
    expected, written = _pixels(single), _pixels(chief)
    assert sorted(written) == sorted(expected) and len(expected) == 12  # 4 classes x 3 PNGs
    for name, pixels in expected.items():
        assert np.abs(written[name] - pixels).max() <= 1, name
    records = json.loads((chief / "results.json").read_text())
    assert records["runs"][-1]["strategy"] == "MultiWorkerMirroredStrategy, 2 replicas"
    assert (chief / "index.html").is_file() and len(list((chief / "classes").glob("*.html"))) == 4

    # Resumed: the chief's folder is complete, the other worker's is empty; they adopt the
    # chief's (empty) list of pending classes instead of falling out of step.
    stamps = {p.name: p.stat().st_mtime_ns for p in chief.glob("*.png")}
    again = _run_workers(model, [chief, other], [[], []])
    assert [p.returncode for p in again] == [0, 0], again[1].stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in chief.glob("*.png")} == stamps
    assert "4 already done" in again[0].stdout
    assert "0 computed, 4 skipped" in again[1].stdout  # the other worker's folder is empty

    # Workers started with different settings refuse to run, both of them.
    mismatch = _run_workers(model, [tmp_path / "a", tmp_path / "b"], [["--seed", "1"], []])
    for process in mismatch:
        assert process.returncode == 2, process.stderr[-3000:]
        assert "different settings" in process.stderr


def test_make_strategy_and_its_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("none") is None
    assert make_strategy("auto") is None  # no TF_CONFIG and no GPUs here
    with pytest.raises(DistributionError, match="TF_CONFIG"):
        make_strategy("multi-worker")
    with pytest.raises(DistributionError, match="unknown strategy"):
        make_strategy("ring")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(DistributionError, match="TF_CONFIG is not valid"):
        make_strategy("auto")


def test_without_a_strategy_this_process_is_the_chief_and_keeps_its_plan():
    alone = Distribution()
    assert alone.is_chief and alone.replicas == 1 and alone.describe() == "none"
    assert alone.agree(fingerprint({"steps": 3}), [3, 1], 5) == [3, 1]
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})

import os
import subprocess
import sys

import pytest

from maco_tf.cli.cuda_probe import (
    PROBE_MARKER,
    filtered_stderr,
    has_nvidia_driver,
    without_probe_lines,
)

from .conftest import build_tiny_cnn

PROBE_LINE = f"E cuda_platform.cc:51] {PROBE_MARKER}: INTERNAL: CUDA error (303)\n"
REAL_ERROR = "E some_kernel.cc:12] out of memory\n"


def test_without_probe_lines_drops_only_the_probe():
    text = "I first\n" + PROBE_LINE + REAL_ERROR
    assert without_probe_lines(text) == "I first\n" + REAL_ERROR
    assert without_probe_lines(REAL_ERROR.rstrip("\n")) == REAL_ERROR.rstrip("\n")


def test_has_nvidia_driver_looks_at_the_given_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert not has_nvidia_driver([str(tmp_path / "absent")])
    assert has_nvidia_driver([str(tmp_path)])


def test_filtered_stderr_writes_back_what_it_keeps(capfd):
    with filtered_stderr(without_probe_lines):
        os.write(2, (PROBE_LINE + REAL_ERROR).encode())
    assert capfd.readouterr().err == REAL_ERROR


def test_filtered_stderr_writes_back_when_the_block_raises(capfd):
    with pytest.raises(ValueError), filtered_stderr(without_probe_lines):
        os.write(2, REAL_ERROR.encode())
        raise ValueError("boom")
    assert capfd.readouterr().err == REAL_ERROR


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    command = [sys.executable, "-m", "maco_tf.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(has_nvidia_driver(), reason="with a driver the probe line is kept")
def test_cli_prints_no_cuda_probe_line_but_real_errors(tmp_path):
    model = tmp_path / "tiny.keras"
    build_tiny_cnn(size=16).save(model)
    listed = run_cli("layers", "--model", str(model))
    assert listed.returncode == 0, listed.stderr
    assert "logits" in listed.stdout
    assert "cuInit" not in listed.stderr
    missing = run_cli("layers", "--model", str(tmp_path / "absent.keras"))
    assert missing.returncode == 2
    assert "not found" in missing.stderr

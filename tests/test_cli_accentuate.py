"""``maco-tf accentuate`` on a tiny saved CNN (32 px input, 10 classes without names)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import maco_tf.models.loading
import maco_tf.runs.accentuating
from maco_tf.cli.main import main
from maco_tf.runs.accentuating import read_photo
from maco_tf.targets.accentuation import AccentuationInputError

from .conftest import lock_held_elsewhere
from .test_images_reading import exif_rotated_jpeg, needs_fifo, png_declaring

FAST = ["--steps", "2", "--crops", "2", "--quiet"]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "photo.jpg"
    pixels = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_accentuate_classes_writes_images_and_results(tiny_file, photo, tmp_path):
    out = tmp_path / "out"
    args = ["accentuate", "--model", str(tiny_file), "--image", str(photo), "--classes", "1,3"]
    assert main([*args, "--size", "40", "--out", str(out), *FAST]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [record["slug"] for record in results["targets"]] == ["class0001", "class0003"]
    for record in results["targets"]:
        for name in record["files"].values():
            assert (out / name).is_file()
        assert record["seed_distance"] >= 0 and record["top5_before"] is not None
    assert Image.open(out / "seed.png").size == (40, 40)  # centre square of the 80x60 photo
    settings = results["settings"]
    assert settings["penalty"] == 1.0 and settings["steps"] == 2
    assert settings["method"] == "accentuation" and settings["box_size"] == 0.9


def test_accentuate_a_channel(tiny_file, photo, tmp_path):
    out = tmp_path / "out"
    args = ["accentuate", "--model", str(tiny_file), "--image", str(photo), "--layer", "conv2"]
    assert main([*args, "--channel", "0", "--out", str(out), *FAST]) == 0
    assert len(json.loads((out / "results.json").read_text())["targets"]) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--image", "missing.jpg", "--classes", "1"], "cannot read --image"),
        (["--classes", "1", "--image", "NOT_AN_IMAGE"], "cannot read --image"),
        (["--image", "PHOTO", "--channel", "0"], "need --layer"),
        (["--image", "BOMB", "--classes", "1"], "declares more pixels than PIL decodes"),
        (["--image", "HUGE", "--classes", "1"], "over the limit max_image_pixels"),
        pytest.param(["--image", "FIFO", "--classes", "1"], "is a FIFO", marks=needs_fifo),
    ],
)
def test_bad_input_is_one_error_line(tiny_file, photo, tmp_path, capsys, extra, message):
    files = {"PHOTO": photo, "NOT_AN_IMAGE": tmp_path / "junk.jpg"}
    files["NOT_AN_IMAGE"].write_text("not an image")
    files["BOMB"] = tmp_path / "bomb.png"  # 74 bytes declaring 50000 x 50000
    files["BOMB"].write_bytes(png_declaring(50000, 50000, rows=b"\x00" * 16))
    files["HUGE"] = tmp_path / "huge.png"  # 12000 x 12000, refused from its header
    files["HUGE"].write_bytes(png_declaring(12000, 12000, rows=b"\x00" * 16))
    if "FIFO" in extra:
        files["FIFO"] = tmp_path / "fifo.png"
        os.mkfifo(files["FIFO"])  # opened, it would hang the command
    extra = [str(files.get(e, e)) for e in extra]
    code = main(["accentuate", "--model", str(tiny_file), *extra, "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_photo_reads_16_bit_grey_by_its_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 32), (32, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    seed = read_photo(tmp_path / "grey16.png", (16, 16, 3))
    assert abs(seed.mean() - 127.5) < 3 and (seed > 250).mean() < 0.1
    np.testing.assert_allclose(seed[..., 0], seed[..., 1])


def test_the_photo_is_turned_upright_by_its_exif(tmp_path):
    exif_rotated_jpeg(tmp_path / "rotated.jpg")  # stored 8 wide, upright 4 wide x 8 high
    seed = read_photo(tmp_path / "rotated.jpg", (8, 4, 3))
    assert seed[1, 2, 0] > 200 > seed[1, 2, 2] and seed[6, 2, 2] > 200 > seed[6, 2, 0]
    with pytest.raises(AccentuationInputError, match="reads 1 .grey. or 3"):
        read_photo(tmp_path / "rotated.jpg", (4, 4, 4))


def _accentuate(tiny_file: Path, photo: Path, out: Path, *extra: str) -> list[str]:
    """Arguments of a fast ``accentuate`` run of class 1 into ``out``."""
    args = ["accentuate", "--model", str(tiny_file), "--image", str(photo), "--classes", "1"]
    return [*args, "--out", str(out), *FAST, *extra]


def _no_loading(monkeypatch) -> None:
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(maco_tf.models.loading, "load_model", no_loading)


def test_unwritable_out_is_refused_before_the_model_loads(photo, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "out"
    _no_loading(monkeypatch)
    assert main(_accentuate(Path("tiny.keras"), photo, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"maco-tf: error: --out {out} cannot be") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--size", "100000"], "size=100000 is over the limit max_size=4096"),
        (["--steps", str(10**12)], "steps=1000000000000 is over the limit max_steps"),
        (["--seed", str(2**63)], "seed 9223372036854775808 is outside [0, 2**63)"),
    ],
)
def test_bounds_refuse_with_exit_2_before_loading(
    photo, tmp_path, capsys, monkeypatch, flags, message
):
    _no_loading(monkeypatch)
    assert main(_accentuate(Path("tiny.keras"), photo, tmp_path / "out", *flags)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_negative_penalty_is_a_usage_error(photo, tmp_path, capsys, monkeypatch):
    _no_loading(monkeypatch)
    assert main(_accentuate(Path("tiny.keras"), photo, tmp_path / "out", "--penalty", "-1")) == 2
    assert "argument --penalty: expected a finite number >= 0" in capsys.readouterr().err


def test_a_rerun_resumes_and_other_settings_are_refused_unless_overwrite(
    tiny_file, photo, tmp_path, capsys
):
    out = tmp_path / "out"
    assert main(_accentuate(tiny_file, photo, out)) == 0
    results = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(_accentuate(tiny_file, photo, out, "--penalty", "2")) == 2
    err = capsys.readouterr().err.strip()
    assert "holds results made with other settings (penalty 1.0, now 2.0)" in err
    assert "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "results.json").read_bytes() == results

    assert main(_accentuate(tiny_file, photo, out)) == 0  # the same run: nothing to do
    assert (out / "results.json").read_bytes() == results
    assert main(_accentuate(tiny_file, photo, out, "--penalty", "2", "--overwrite")) == 0
    assert json.loads((out / "results.json").read_text())["settings"]["penalty"] == 2.0


def test_results_of_visualize_are_not_clobbered(tiny_file, photo, tmp_path, capsys):
    out = tmp_path / "out"
    visualize = ["visualize", "--model", str(tiny_file), "--classes", "1", "--size", "32"]
    assert main([*visualize, "--out", str(out), *FAST]) == 0
    results = (out / "results.json").read_bytes()
    assert main(_accentuate(tiny_file, photo, out)) == 2
    err = capsys.readouterr().err
    assert "method 'maco', now 'accentuation'" in err and "--overwrite" in err
    assert (out / "results.json").read_bytes() == results


def test_a_second_process_on_one_folder_is_refused(tiny_file, photo, tmp_path, capsys):
    out = tmp_path / "out"
    with lock_held_elsewhere(out, "results.json") as pid:
        assert main(_accentuate(tiny_file, photo, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"maco-tf: error: another maco-tf process (pid {pid}")
    assert len(err.splitlines()) == 1 and not list(out.glob("*.png"))


def test_an_unreadable_results_file_is_not_clobbered(tiny_file, photo, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"targets": {"class0001": {}}}')  # not a results file
    assert main(_accentuate(tiny_file, photo, out)) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == '{"targets": {"class0001": {}}}'


def _five_classes(tiny_file: Path, photo: Path, out: Path, *extra: str) -> list[str]:
    """A fast ``accentuate`` of five classes into ``out``."""
    args = ["accentuate", "--model", str(tiny_file), "--image", str(photo), "--classes", "0-4"]
    return [*args, "--out", str(out), *FAST, *extra]


def _last_run(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["runs"][-1]


def _pixels(out: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("class*.png"))}


def test_chunks_give_the_images_of_one_whole_run(tiny_file, photo, tmp_path):
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    assert main(_five_classes(tiny_file, photo, whole, "--batch-size", "5")) == 0
    assert main(_five_classes(tiny_file, photo, chunked, "--batch-size", "2")) == 0
    first, second = _pixels(whole), _pixels(chunked)
    assert len(first) == 15 and first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    runs = json.loads((chunked / "results.json").read_text())["runs"]
    assert runs[-1]["computed"] == 5 and runs[-1]["image"] == str(photo)


def test_ctrl_c_keeps_the_finished_chunks_and_a_rerun_resumes(
    tiny_file, photo, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    real = maco_tf.runs.accentuating.accentuate
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(maco_tf.runs.accentuating, "accentuate", interrupted)
    assert main(_five_classes(tiny_file, photo, out, "--batch-size", "1")) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"maco-tf: interrupted; 3 of 5 targets saved in {out}, re-run to resume"
    results = json.loads((out / "results.json").read_text())
    assert len(results["targets"]) == 3 and results["runs"][-1]["interrupted"] is True
    assert (out / "seed.png").is_file()

    monkeypatch.setattr(maco_tf.runs.accentuating, "accentuate", real)
    assert main(_five_classes(tiny_file, photo, out, "--batch-size", "1")) == 0
    assert _last_run(out)["computed"] == 2 and _last_run(out)["skipped"] == 3


_KILLER = """
import os, signal, sys
import maco_tf.runs.accentuating as command
from maco_tf.cli.main import main
real, calls = command.accentuate, []
def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) == 4:
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return real(*args, **kwargs)
command.accentuate = dying
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(("signal_name", "code"), [("SIGKILL", -9), ("SIGTERM", 130)])
def test_a_killed_run_keeps_the_finished_chunks_and_a_rerun_resumes(
    tiny_file, photo, tmp_path, capsys, signal_name, code
):
    out = tmp_path / "out"
    argv = _five_classes(tiny_file, photo, out, "--batch-size", "1")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLER, signal_name, *argv],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert killed.returncode == code, killed.stderr[-2000:]
    if signal_name == "SIGTERM":
        assert killed.stderr.strip().endswith(
            "3 of 5 targets saved in " + f"{out}, re-run to resume"
        )
    assert len(json.loads((out / "results.json").read_text())["targets"]) == 3
    stale = out / ".class0003.png.abcd1234.tmp"  # as a write killed mid-way leaves
    stale.write_bytes(b"partial")
    os.utime(stale, (1, 1))
    assert main(argv) == 0
    assert _last_run(out)["computed"] == 2 and _last_run(out)["skipped"] == 3
    assert not stale.exists() and len(_pixels(out)) == 15

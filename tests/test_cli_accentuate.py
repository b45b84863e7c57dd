"""``maco-tf accentuate`` on a tiny saved CNN (32 px input, 10 classes without names)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maco_tf.cli.main import main

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
    assert list(results["targets"]) == ["class0001", "class0003"]
    for record in results["targets"].values():
        for name in record["files"].values():
            assert (out / name).is_file()
        assert record["seed_distance"] >= 0 and record["top5_before"] is not None
    assert Image.open(out / "seed.png").size == (40, 40)  # centre square of the 80x60 photo
    assert results["settings"]["penalty"] == 1.0 and results["settings"]["steps"] == 2


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
    ],
)
def test_bad_input_is_one_error_line(tiny_file, photo, tmp_path, capsys, extra, message):
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    extra = [str(photo) if e == "PHOTO" else str(junk) if e == "NOT_AN_IMAGE" else e for e in extra]
    code = main(["accentuate", "--model", str(tiny_file), *extra, "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

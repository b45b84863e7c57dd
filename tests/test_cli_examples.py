"""``maco-tf visualize --examples DIR``: the trust score of each target in results.json."""

import json
import math

import numpy as np
import pytest
from PIL import Image

import maco_tf.core.visualization
from maco_tf.cli.main import main

from .test_images_reading import png_declaring

ARGS = ["--layer", "conv1", "--channel", "0-2", "--steps", "2", "--crops", "1", "--size", "32"]


def _photos(folder, count=16, seed=0):
    """``count`` small textured PNGs in two colour families (reddish, bluish).

    A unit prefers one family, so its references are alike and the other family is a baseline
    unlike them: the references say something about the unit and the score is defined.
    """
    folder.mkdir()
    rng = np.random.default_rng(seed)
    tints = (np.array([1.0, 0.5, 0.2]), np.array([0.2, 0.5, 1.0]))
    for index in range(count):
        coarse = rng.uniform(0.3, 1.0, (4, 4, 1)) * tints[index % 2] * 255
        image = Image.fromarray(coarse.astype(np.uint8)).resize((40, 40), Image.BILINEAR)
        image.save(folder / f"photo{index:02d}.png")
    return folder


def _visualize(tiny_file, out, *extra):
    argv = ["visualize", "--model", str(tiny_file), *ARGS, "--batch-size", "2"]
    return main([*argv, "--out", str(out), *extra])


def test_results_hold_a_trust_score_per_target(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    assert _visualize(tiny_file, out, "--examples", str(_photos(tmp_path / "photos"))) == 0
    printed = capsys.readouterr().out
    records = json.loads((out / "results.json").read_text())["targets"]
    assert [r["slug"] for r in records] == [f"conv1_ch000{i}" for i in range(3)]
    for record in records:
        trust = record["trust"]
        assert math.isfinite(trust["score"])
        assert trust["flagged"] == (trust["score"] < 0)
        assert len(trust["visualization"]) == len(trust["layers"]) > 0
        assert (trust["references"], trust["baseline_photos"]) == (8, 8)
        assert f"trust {record['slug']}: score {trust['score']:.2f}" in printed


def test_without_examples_records_have_no_trust(tmp_path, tiny_file):
    out = tmp_path / "out"
    assert _visualize(tiny_file, out, "--quiet") == 0
    records = json.loads((out / "results.json").read_text())["targets"]
    assert records and all("trust" not in record for record in records)


def _unreadable(tmp_path):
    folder = _photos(tmp_path / "photos")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def _with_a_bomb(tmp_path):
    folder = _photos(tmp_path / "photos")
    (folder / "bomb.png").write_bytes(png_declaring(50000, 50000, rows=b"\x00" * 16))
    return folder


def _empty(tmp_path):
    (tmp_path / "photos").mkdir()
    return tmp_path / "photos"


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda tmp: tmp / "missing", "not a folder"),
        (_empty, "no images"),
        (_unreadable, "broken.png"),
        (_with_a_bomb, "bomb.png"),
        (lambda tmp: _photos(tmp / "photos", count=2), "at least 3"),
    ],
)
def test_bad_folder_exits_2_before_optimisation(
    tmp_path, tiny_file, capsys, monkeypatch, make, fragment
):
    def never(*args, **kwargs):
        raise AssertionError("optimisation started")

    monkeypatch.setattr(maco_tf.core.visualization, "visualize", never)
    out = tmp_path / "out"
    assert _visualize(tiny_file, out, "--examples", str(make(tmp_path))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maco-tf: error: --examples") and fragment in err
    assert len(err.splitlines()) == 1
    assert not (out / "results.json").exists()


def test_a_folder_over_the_photo_bound_is_refused_before_optimisation(
    tmp_path, tiny_file, capsys, monkeypatch
):
    monkeypatch.setenv("MACO_TF_MAX_EXAMPLES", "15")
    monkeypatch.setattr(maco_tf.core.visualization, "visualize", None)  # never reached
    assert _visualize(tiny_file, tmp_path / "out", "--examples", str(_photos(tmp_path / "p"))) == 2
    err = capsys.readouterr().err.strip()
    assert "holds 16 photos, over the limit max_examples=15" in err
    assert "MACO_TF_MAX_EXAMPLES" in err and len(err.splitlines()) == 1

"""maco-tf atlas --layer: the unit atlas's shards, resuming, pages, patches and trust hook.

The tiny ReLU classifier of test_atlas.py keeps each run to seconds; the offline
EfficientNet-Lite0 unit atlas is looked at in a browser by test_atlas_units_browser.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from maco_tf.atlas import patches
from maco_tf.atlas.unit_site import build_unit_site
from maco_tf.atlas.units import run_unit_atlas
from maco_tf.cli.flags import to_request
from maco_tf.cli.main import main
from maco_tf.cli.parser import build_parser
from maco_tf.models.loading import LoadedModel
from maco_tf.runs.plans import plan_layer
from tests.test_atlas import _check_page, _mtimes, _records, relu_classifier
from tests.test_images_reading import png_declaring

FAST = ["--steps", "2", "--crops", "1", "--size", "32", "--quiet"]
UNITS = [f"conv2_ch{i:04d}" for i in range(4)]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return relu_classifier(tmp_path_factory.mktemp("models") / "relu4.keras")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Eight photos in two folders (one hidden file, one unreadable file to be skipped)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(8):
        folder = root / ("b" if i % 2 else "a")
        folder.mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{i}.png")
    (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / ".hidden.png").write_bytes(b"")
    return root


def _units(model_file: Path, out: Path, *extra: str) -> int:
    args = ["atlas", "--model", str(model_file), "--layer", "conv2", *FAST, "--out", str(out)]
    return main([*args, *extra])


@pytest.fixture(scope="module")
def sharded(model_file, photos, tmp_path_factory) -> Path:
    """Channels 0-3 of conv2 in two shards sharing one folder, with copies and patches."""
    out = tmp_path_factory.mktemp("units") / "atlas"
    for shard in ("0/2", "1/2"):
        extra = ["--channels", "0-3", "--copies", "2", "--examples", str(photos), "--patches", "3"]
        assert _units(model_file, out, *extra, "--shard", shard) == 0
    return out


def _loaded(model: keras.Model) -> LoadedModel:
    return LoadedModel(model, "test", (0.0, 1.0), tuple(model.inputs[0].shape[1:3]), None)


# ------------------------------------------------------------------------------ runs and pages


def test_shards_share_a_folder_and_each_unit_gets_a_page(sharded):
    first = _records(sharded / "results.0-of-2.json")
    second = _records(sharded / "results.1-of-2.json")
    assert sorted(first) == UNITS[0::2] and sorted(second) == UNITS[1::2]
    for record in [*first.values(), *second.values()]:
        assert record["kind"] == "channel" and record["layer"] == "conv2"
        assert record["diverse"]["setting"] == "2x0.1" and len(record["diverse"]["files"]) == 2
        assert len(record["patches"]["files"]) == 3
        assert all((sharded / name).is_file() for name in record["patches"]["files"])
        assert {"score", "layers", "visualization", "natural", "baseline"} <= set(record["trust"])
    index = _check_page(sharded / "index.html")
    assert [link for link in index.links if link.startswith("units/")] == [
        f"units/{slug}.html" for slug in UNITS
    ]
    assert "4 units" in "".join(index.text)
    for slug in UNITS:
        page = _check_page(sharded / "units" / f"{slug}.html")
        text = "".join(page.text)
        assert {f"../{slug}.png", f"../{slug}_rgba.png", f"../{slug}_heatmap.png"} <= set(
            page.links
        )
        assert f"../diverse/{slug}_copy1.png" in page.links
        assert [link for link in page.links if link.startswith("../patches/")] == [
            f"../patches/{slug}_p{rank}.jpg" for rank in range(3)
        ]
        assert "Top-activating patches" in text and "Diverse images" in text
    first_page = (sharded / "units" / "conv2_ch0000.html").read_text()
    assert 'rel="next" href="conv2_ch0001.html"' in first_page and "channel 1" in first_page


def test_patches_are_the_photos_that_drive_the_unit_most(sharded):
    record = _records(sharded / "results.0-of-2.json")["conv2_ch0000"]
    values = record["patches"]["values"]
    assert values == sorted(values, reverse=True)
    assert "broken.jpg" not in record["patches"]["photos"]
    for path in record["patches"]["files"]:
        with Image.open(sharded / path) as patch:
            assert patch.size == (160, 160)


def test_rerun_recomputes_nothing(sharded, model_file, photos, tmp_path, capsys):
    out = tmp_path / "atlas"
    shutil.copytree(sharded, out)
    before = _mtimes(out)
    extra = ["--channels", "0-3", "--copies", "2", "--examples", str(photos), "--patches", "3"]
    assert _units(model_file, out, *extra) == 0  # unsharded: the shards' units count as done
    assert _mtimes(out) == before
    assert not (out / "results.json").exists()
    assert main(["atlas", "--model", str(model_file), "--layer", "conv2", *FAST[:-1],
                 *extra, "--out", str(out)]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "0 computed, 4 skipped, diverse images for 0, patches for 0" in said


def test_more_copies_are_made_for_the_finished_units_only(sharded, model_file, tmp_path):
    out = tmp_path / "atlas"
    shutil.copytree(sharded, out)
    before = _mtimes(out)
    assert _units(model_file, out, "--channels", "0-3", "--copies", "3", "--shard", "0/2") == 0
    after = _mtimes(out)
    assert all(after[name] == before[name] for name in before if not name.startswith("diverse"))
    records = _records(out / "results.0-of-2.json")
    assert records["conv2_ch0000"]["diverse"]["setting"] == "3x0.1"
    assert "patches" in records["conv2_ch0000"]  # kept while --examples is not given


def test_build_only_rebuilds_the_unit_site(sharded, tmp_path):
    out = tmp_path / "atlas"
    shutil.copytree(sharded, out)
    shutil.rmtree(out / "units")
    (out / "index.html").unlink()
    assert main(["atlas", "--build-only", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.stem for p in (out / "units").glob("*.html")) == UNITS


def test_neurons_and_directions(model_file, tmp_path):
    out = tmp_path / "atlas"
    assert _units(model_file, out, "--neurons", "5,700", "--copies", "0") == 0
    np.save(tmp_path / "dirs.npy", np.eye(8, dtype=np.float32)[:2] + 0.5)
    assert _units(model_file, out, "--directions", str(tmp_path / "dirs.npy"), "--copies", "0") == 0
    records = _records(out / "results.json")
    assert sorted(r["kind"] for r in records.values()) == ["direction"] * 2 + ["neuron"] * 2
    index = _check_page(out / "index.html")
    assert len([link for link in index.links if link.startswith("units/")]) == 4
    assert "neuron 700" in "".join(index.text)


def test_a_trust_check_is_pluggable(model_file, photos, tmp_path):
    calls = []

    def trust(loaded, visualization, responses, column):
        calls.append((visualization.name, column, len(responses.photos)))
        return {"score": -0.25, "layers": ["conv1", "conv2"], "visualization": [0.1, 0.0],
                "natural": [0.5, 0.6], "baseline": [0.2, 0.1], "references": 3,
                "baseline_photos": 5}  # fmt: skip

    out = tmp_path / "atlas"
    parser = build_parser()
    args = parser.parse_args(["atlas", "--model", str(model_file), "--layer", "conv2",
                              "--channels", "1,2", "--copies", "0", "--examples", str(photos),
                              *FAST, "--out", str(out)])  # fmt: skip
    assert run_unit_atlas(to_request(args), trust=trust) == 0
    assert calls == [("conv2_ch0001.png", 0, 8), ("conv2_ch0002.png", 1, 8)]
    page = (out / "units" / "conv2_ch0001.html").read_text()
    assert "Trust score -0.25" in page and 'class="below"' in page
    assert "trust -0.25" in (out / "index.html").read_text()


def test_bad_input_exits_2(model_file, photos, sharded, tmp_path, capsys):
    assert main(["atlas", "--channels", "0-3", "--out", str(tmp_path / "a")]) == 2
    assert "need --layer" in capsys.readouterr().err
    assert _units(model_file, tmp_path / "a", "--channels", "0", "--classes", "1") == 2
    assert "--classes cannot be combined" in capsys.readouterr().err
    assert _units(model_file, tmp_path / "a") == 2
    assert "exactly one of --channel" in capsys.readouterr().err
    assert _units(model_file, tmp_path / "a", "--channels", "0", "--neurons", "1") == 2
    assert _units(model_file, tmp_path / "a", "--channels", "9") == 2
    assert _units(model_file, tmp_path / "a", "--channels", "0", "--examples", str(tmp_path)) == 2
    assert "holds no image" in capsys.readouterr().err
    classes = tmp_path / "classes"
    assert main(["atlas", "--model", str(model_file), *FAST, "--out", str(classes)]) == 0
    assert _units(model_file, classes, "--channels", "0") == 2
    assert "holds a class atlas" in capsys.readouterr().err
    with pytest.raises(Exception, match="no finished units"):
        build_unit_site(classes)


def test_plural_flags_are_visualize_flags():
    parser = build_parser()
    for command in ("atlas", "visualize"):
        args = parser.parse_args([command, "--layer", "x", "--channels", "0-2,5"])
        assert args.channel == [0, 1, 2, 5]
        assert parser.parse_args([command, "--layer", "x", "--neurons", "3"]).neuron == [3]
        assert parser.parse_args([command, "--layer", "x", "--directions", "d.npy"]).direction


# ------------------------------------------------------------------------------ patches


def _summing_model(size: int = 16, stride: int = 1) -> keras.Model:
    """Two 3x3 all-ones convolutions on the channel sum: a 5 px receptive field (stride 1)."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="sum")(inputs)
    x = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones",
                            name="c1")(x)  # fmt: skip
    x = keras.layers.Conv2D(1, 3, strides=stride, padding="same", use_bias=False,
                            kernel_initializer="ones", name="c2")(x)  # fmt: skip
    return keras.Model(inputs, x, name="summing")


def test_receptive_field_of_known_convolutions():
    photos = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    assert patches.receptive_field(_loaded(_summing_model()), "c2", photos) == 5
    assert patches.receptive_field(_loaded(_summing_model()), "c1", photos) == 3


def test_responses_peak_where_the_photo_is_bright(tmp_path):
    loaded = _loaded(_summing_model())
    paths = []
    for name, (row, col) in {"top_left": (2, 3), "bottom_right": (12, 13), "dim": (8, 8)}.items():
        pixels = np.zeros((16, 16, 3), np.uint8)
        pixels[row, col] = 255 if name != "dim" else 60
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    plan = plan_layer(loaded, "c2", channel=[0])
    found = patches.unit_responses(loaded, "c2", plan, [0], paths)
    assert found.grid == (16, 16)
    assert [(found.rows[i, 0], found.cols[i, 0]) for i in range(3)] == [(2, 3), (12, 13), (8, 8)]
    assert found.values[0, 0] == found.values[1, 0] > found.values[2, 0] > 0
    neuron = plan_layer(loaded, "c2", neuron=[12 * 16 + 13])
    at_unit = patches.unit_responses(loaded, "c2", neuron, [0], paths)
    assert at_unit.values[:, 0].argmax() == 1 and at_unit.rows[1, 0] == 12


def test_patch_box_stays_inside_the_input():
    assert patches.patch_box(0, 0, (14, 14), (224, 224), 64) == (0, 0, 64, 64)
    assert patches.patch_box(13, 13, (14, 14), (224, 224), 64) == (160, 160, 224, 224)
    assert patches.patch_box(7, 7, (14, 14), (224, 224), 32) == (104, 104, 136, 136)
    assert patches.patch_box(0, 0, (1, 1), (224, 224), 500) == (0, 0, 224, 224)


def test_photo_paths_search_sub_folders_and_skip_hidden_files(photos):
    found = patches.photo_paths(photos)
    assert [p.relative_to(photos).as_posix() for p in found][:2] == ["a/broken.jpg", "a/photo0.png"]
    assert not any(p.name.startswith(".") for p in found)
    batch, kept = patches.load_photos(found, _loaded(_summing_model(32)))
    assert batch.shape == (8, 32, 32, 3) and len(kept) == 8
    assert batch.min() >= 0.0 and batch.max() <= 1.0


def test_unit_atlas_flag_detection():
    from maco_tf.atlas.units import is_unit_atlas

    args = build_parser().parse_args(["atlas"])
    assert not is_unit_atlas(to_request(args))
    args = build_parser().parse_args(["atlas", "--channels", "0"])
    assert is_unit_atlas(to_request(args))


def test_examples_skip_fifos_by_name_and_leave_out_bombs(tmp_path, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    Image.new("RGB", (40, 48), (0, 90, 0)).save(root / "photo.png")
    (root / "bomb.png").write_bytes(png_declaring(50000, 50000, rows=b"\x00" * 16))
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "pipe.png")  # opened, it would hang the atlas
    found = patches.photo_paths(root)
    assert [p.name for p in found] == ["bomb.png", "photo.png"]
    assert not hasattr(os, "mkfifo") or "pipe.png: a FIFO" in capsys.readouterr().err
    loaded = _loaded(_summing_model(32))
    batch, kept = patches.load_photos(found, loaded)
    assert [p.name for p in kept] == ["photo.png"] and batch.shape == (1, 32, 32, 3)
    responses = patches.unit_responses(
        loaded, "c2", plan_layer(loaded, "c2", channel=[0]), [0], found
    )
    assert responses.photos == kept
    warning = capsys.readouterr().err.strip()
    assert "1 photo(s) of --examples cannot be read" in warning and "bomb.png" in warning

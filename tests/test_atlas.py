"""maco-tf atlas: shards, resuming, the website's files and links, examples and CRAFT concepts.

A tiny ReLU classifier (4 classes, 32 px) keeps every run to a few seconds; the offline
EfficientNet-Lite0 atlas is exercised in a browser by test_atlas_browser.py.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import keras
import numpy as np
import pytest
from PIL import Image

import maco_tf.core.visualization
from maco_tf.atlas.shards import results_name
from maco_tf.atlas.site import build_site
from maco_tf.cli.main import main
from maco_tf.outputs.render import save_visualization

from .conftest import lock_held_elsewhere

FAST = ["--steps", "2", "--crops", "1", "--size", "32", "--quiet"]
SLUGS = ["class0000", "class0001", "class0002", "class0003"]


def relu_classifier(path: Path) -> Path:
    """Conv-ReLU-Conv-ReLU-GAP-Dense(4): non-negative latents, as CRAFT needs."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)  # input range inferred: 0-255
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    keras.Model(inputs, keras.layers.Dense(4, name="logits")(x), name="relu4").save(path)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return relu_classifier(tmp_path_factory.mktemp("models") / "relu4.keras")


@pytest.fixture(scope="module")
def sharded(model_file, tmp_path_factory) -> Path:
    """Two shards of the tiny model's 4 classes written into one folder."""
    out = tmp_path_factory.mktemp("sharded") / "atlas"
    for shard in ("0/2", "1/2"):
        args = ["atlas", "--model", str(model_file), "--shard", shard, "--batch-size", "1"]
        assert main([*args, *FAST, "--out", str(out)]) == 0
    return out


def _atlas(model_file: Path, out: Path, *extra: str) -> int:
    return main(["atlas", "--model", str(model_file), *FAST, "--out", str(out), *extra])


def _records(path: Path) -> dict[str, dict]:
    return {r["slug"]: r for r in json.loads(path.read_text())["targets"]}


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.png")}


class _Links(HTMLParser):
    """Every href/src of a page, and the images without alt text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.missing_alt: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in ("href", "src"):
            if attributes.get(name):
                self.links.append(attributes[name])
        if tag == "img" and not attributes.get("alt"):
            self.missing_alt.append(attributes.get("src", "?"))

    def handle_data(self, data):
        self.text.append(data)


def _check_page(page: Path) -> _Links:
    """Relative links only, each resolving to a file; every image has an alt text."""
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    assert not parser.missing_alt, f"{page.name}: images without alt {parser.missing_alt}"
    for link in parser.links:
        if link.startswith("data:") or link.startswith("#"):
            continue
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
        assert (page.parent / unquote(parts.path)).is_file(), f"{page.name}: broken link {link}"
    return parser


# ------------------------------------------------------------------------------ shards, resuming


def test_shards_share_a_folder_and_the_site_merges_them(sharded):
    first, second = (
        _records(sharded / "results.0-of-2.json"),
        _records(sharded / "results.1-of-2.json"),
    )
    assert sorted(first) == ["class0000", "class0002"]
    assert sorted(second) == ["class0001", "class0003"]
    assert not (sharded / "results.json").exists()
    assert all(r["kind"] == "class" and len(r["top5"]) == 4 for r in first.values())
    index = _check_page(sharded / "index.html")
    assert [link for link in index.links if link.startswith("classes/")] == [
        f"classes/{slug}.html" for slug in SLUGS
    ]
    assert "4 classes" in "".join(index.text)
    for slug in SLUGS:
        page = _check_page(sharded / "classes" / f"{slug}.html")
        assert {f"../{slug}.png", f"../{slug}_rgba.png", f"../{slug}_heatmap.png"} <= set(
            page.links
        )
        assert (sharded / "thumbs" / f"{slug}.jpg").is_file()
    first_page = (sharded / "classes" / "class0000.html").read_text()
    assert 'rel="next" href="class0001.html"' in first_page and 'rel="prev"' not in first_page


def test_rerun_recomputes_nothing_whatever_the_sharding(sharded, model_file, tmp_path, capsys):
    out = tmp_path / "atlas"
    shutil.copytree(sharded, out)
    before = _mtimes(out)
    assert _atlas(model_file, out, "--shard", "0/2") == 0
    assert _atlas(model_file, out) == 0  # unsharded: the shards' results count as done
    assert _mtimes(out) == before
    assert not (out / "results.json").exists()
    assert main(["atlas", "--model", str(model_file), *FAST[:-1], "--out", str(out)]) == 0
    assert "0 computed, 4 skipped" in capsys.readouterr().out


def test_a_class_image_depends_on_the_seed_and_class_only(sharded, model_file, tmp_path):
    """Shards of batch 1 and one unsharded batch of 4 give the same images (seed, class id)."""
    out = tmp_path / "whole"
    assert _atlas(model_file, out) == 0
    for slug in SLUGS:
        alone = np.asarray(Image.open(sharded / f"{slug}.png"), dtype=np.int16)
        batched = np.asarray(Image.open(out / f"{slug}.png"), dtype=np.int16)
        assert np.abs(alone - batched).mean() < 0.5, slug
    records = _records(out / "results.json")
    assert [records[slug]["image_id"] for slug in SLUGS] == [0, 1, 2, 3]


def test_interrupted_run_keeps_finished_classes(model_file, tmp_path, monkeypatch):
    real, calls = maco_tf.core.visualization.visualize, []

    def visualize(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(maco_tf.core.visualization, "visualize", visualize)
    out = tmp_path / "atlas"
    assert _atlas(model_file, out, "--classes", "0,1,2", "--batch-size", "1") == 130
    assert sorted(_records(out / "results.json")) == ["class0000"]
    monkeypatch.setattr(maco_tf.core.visualization, "visualize", real)
    before = _mtimes(out)
    assert _atlas(model_file, out, "--classes", "0,1,2", "--batch-size", "1") == 0
    assert sorted(_records(out / "results.json")) == ["class0000", "class0001", "class0002"]
    assert _mtimes(out)["class0000.png"] == before["class0000.png"]
    assert (out / "classes" / "class0002.html").is_file()


def test_bad_input_exits_2(model_file, sharded, tmp_path, capsys):
    assert _atlas(model_file, tmp_path / "a", "--shard", "2/2") == 2
    assert "0 <= I < N" in capsys.readouterr().err
    assert _atlas(model_file, tmp_path / "a", "--shard", "one/2") == 2
    out = tmp_path / "copy"
    shutil.copytree(sharded, out)
    other_steps = ["atlas", "--model", str(model_file), "--steps", "3", "--crops", "1",
                   "--size", "32", "--out", str(out), "--quiet"]  # fmt: skip
    for shard in ("0/2", "0/1"):  # its own results file, or another shard's
        assert main([*other_steps, "--shard", shard]) == 2
        assert "steps 2, now 3" in capsys.readouterr().err
    assert sorted(p.name for p in out.glob("results*.json")) == [
        "results.0-of-2.json",
        "results.1-of-2.json",
    ]
    assert main(["atlas", "--build-only", "--out", str(tmp_path / "empty")]) == 2
    assert "no results" in capsys.readouterr().err
    assert _atlas(model_file, tmp_path / "b", "--examples", str(tmp_path / "nowhere")) == 2


def test_overwrite_replaces_results_made_with_other_settings(sharded, model_file, tmp_path):
    out = tmp_path / "atlas"
    shutil.copytree(sharded, out)
    code = main(["atlas", "--model", str(model_file), "--steps", "3", "--crops", "1", "--size",
                 "32", "--out", str(out), "--quiet", "--overwrite"])  # fmt: skip
    assert code == 0
    assert [p.name for p in out.glob("results*.json")] == ["results.json"]
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["steps"] == 3 and len(results["targets"]) == 4
    assert "3</dd>" in (out / "index.html").read_text()


def test_build_only_rebuilds_and_skips_other_settings(sharded, tmp_path, capsys):
    out = tmp_path / "atlas"
    shutil.copytree(sharded, out)
    shutil.rmtree(out / "classes")
    (out / "index.html").unlink()
    other = json.loads((out / "results.0-of-2.json").read_text())
    other["settings"]["steps"] = 99
    (out / "results.json").write_text(json.dumps(other))
    assert main(["atlas", "--build-only", "--out", str(out)]) == 0
    assert "results.json skipped: other settings (steps 2, now 99)" in capsys.readouterr().err
    assert sorted(p.stem for p in (out / "classes").glob("*.html")) == SLUGS


# ------------------------------------------------------------------------------ examples, concepts


def _example_folders(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for folder in ("0", "Class0002", "not-a-class"):
        (root / folder).mkdir(parents=True)
        for k in range(3):
            pixels = rng.integers(0, 256, (40 + k, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"photo {k}.png")
    (root / "0" / "notes.txt").write_text("not an image")
    return root


def test_examples_and_concepts(model_file, tmp_path, capsys):
    examples = _example_folders(tmp_path / "examples")
    out = tmp_path / "atlas"
    args = ["--classes", "0,1,2", "--examples", str(examples), "--concepts", "2"]
    assert _atlas(model_file, out, *args) == 0
    assert "not-a-class" in capsys.readouterr().err
    records = _records(out / "results.json")
    concepts = {slug: r for slug, r in records.items() if r["kind"] == "concept"}
    assert sorted(concepts) == [
        f"{c}_concept{k}" for c in ("class0000", "class0002") for k in (0, 1)
    ]
    assert all(r["examples"] == 3 and r["importance"] is not None for r in concepts.values())
    assert sorted(p.name for p in (out / "examples" / "class0000").iterdir()) == [
        "00_photo_0.jpg", "01_photo_1.jpg", "02_photo_2.jpg"
    ]  # fmt: skip
    page = _check_page(out / "classes" / "class0000.html")
    assert sum(link.startswith("../examples/class0000/") for link in page.links) == 3
    assert sum(link.startswith("../concepts/class0000_concept") for link in page.links) == 2
    assert "Concepts" in page.text and "Examples" in page.text
    plain = _check_page(out / "classes" / "class0001.html")
    assert "Concepts" not in plain.text and "Examples" not in plain.text
    before = _mtimes(out)
    assert _atlas(model_file, out, *args) == 0
    assert _mtimes(out) == before  # classes and concepts resumed, nothing recomputed


# ------------------------------------------------------------------------------ website content


def _fake_results(out: Path, records: list[tuple[int, str, list[int]]]) -> None:
    """A results.json of ImageNet-named records with (index, name, top-5 indices), and PNGs."""
    rng = np.random.default_rng(1)
    targets = []
    for index, name, top5 in records:
        slug = f"{index:04d}_{name.replace(' ', '_')}"
        paths = save_visualization(out, slug, rng.uniform(0, 255, (24, 24, 3)),
                                   rng.uniform(0, 1, (24, 24, 3)), (0, 255))  # fmt: skip
        targets.append({
            "slug": slug, "name": name, "kind": "class", "layer": "logits", "index": index,
            "key": f"class:logits:{index}", "files": {k: p.name for k, p in paths.items()},
            "objective_value": 1.5, "dead": False, "seed": 0, "batch_position": 0,
            "wall_time_s": 2.0, "top5": [
                {"index": i, "name": f"name {i}", "probability": 0.5 / (r + 1)}
                for r, i in enumerate(top5)
            ],
        })  # fmt: skip
    settings = {"model": "efficientnet_lite0", "model_identity": "efficientnet_lite0",
                "model_source": "zoo", "values_range": [0.0, 255.0], "method": "maco",
                "steps": 2, "crops": 1, "size": 24, "box_size": [1.0, 0.3], "seed": 0}  # fmt: skip
    runs = [{"time_s": 90.0}]
    payload = {"settings": settings, "targets": targets, "runs": runs}
    (out / results_name((0, 1))).write_text(json.dumps(payload))


def test_site_search_data_top5_links_and_escaping(tmp_path):
    out = tmp_path / "atlas"
    out.mkdir()
    _fake_results(out, [(967, "espresso", [1, 967, 3, 4, 5]), (1, "goldfish", [1, 2, 3, 4, 5])])
    summary = build_site(out)
    assert summary.classes == 2 and summary.index == out / "index.html"
    text = summary.index.read_text()
    search = dict(re.findall(r'data-search="([^"]*)"><a href="classes/([^"]+)\.html"', text))
    assert search == {
        "1 goldfish Carassius auratus n01443537 0001_goldfish": "0001_goldfish",
        "967 espresso n07920052 0967_espresso": "0967_espresso",
    }
    assert "seen as name 1, 50%" in text and "recognised, 50%" in text
    assert "1.5 min of compute" in text
    page = _check_page(out / "classes" / "0967_espresso.html")
    assert "../index.html" in page.links and "0001_goldfish.html" in page.links  # pager + top-5
    assert 'class="target"' in (out / "classes" / "0967_espresso.html").read_text()
    for asset in ("style.css", "search.js"):
        assert (out / "assets" / asset).stat().st_size > 100
    # names are escaped (a model file's classes are indices, but names come from results.json)
    records = json.loads((out / "results.json").read_text())
    records["targets"][0]["name"] = 'cup <b>"x"</b>'
    (out / "results.json").write_text(json.dumps(records))
    build_site(out)
    page = (out / "classes" / "0967_espresso.html").read_text()
    assert "<b>" not in page and "cup &lt;b&gt;&quot;x&quot;&lt;/b&gt;" in page


# ------------------------------------------------------------------------------ hostile input


def test_classes_as_an_index_range(model_file, tmp_path):
    out = tmp_path / "atlas"
    assert _atlas(model_file, out, "--classes", "1-2") == 0
    assert sorted(_records(out / "results.json")) == ["class0001", "class0002"]


def test_build_only_never_writes_outside_out(tmp_path, capsys):
    out = tmp_path / "deep" / "atlas"
    out.mkdir(parents=True)
    _fake_results(out, [(967, "espresso", [1, 967, 3, 4, 5]), (1, "goldfish", [1, 2, 3, 4, 5])])
    results = json.loads((out / "results.json").read_text())
    results["targets"][0]["slug"] = "../../x"
    (out / "results.json").write_text(json.dumps(results))
    before = sorted(str(p) for p in tmp_path.rglob("*") if out not in p.parents and p != out)
    assert main(["atlas", "--out", str(out), "--build-only"]) == 0
    after = sorted(str(p) for p in tmp_path.rglob("*") if out not in p.parents and p != out)
    assert after == before
    assert "record '../../x' skipped: not a safe file name" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "classes").iterdir()) == ["0001_goldfish.html"]


def test_shards_of_one_folder_may_run_at_once(sharded, model_file, tmp_path):
    """Each shard locks its own results file: another shard's lock does not stop it."""
    out = tmp_path / "atlas"
    shutil.copytree(sharded, out)
    with lock_held_elsewhere(out, "results.0-of-2.json"):
        assert _atlas(model_file, out, "--shard", "1/2") == 0
        assert _atlas(model_file, out, "--shard", "0/2") == 2

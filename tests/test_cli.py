import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import maco_tf.core.visualization
import maco_tf.models.loading
from maco_tf import RunConfig
from maco_tf.cli.main import main
from maco_tf.runs.results import open_results

from .conftest import build_tiny_cnn, lock_held_elsewhere

FAST = ["--steps", "2", "--crops", "1"]


@pytest.fixture(scope="module")
def nested_file(tmp_path_factory) -> Path:
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="inner_conv")(inner_in)
    backbone = keras.Model(inner_in, keras.layers.ReLU(name="inner_relu")(x), name="backbone")
    inputs = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)  # input range inferred: 0-255
    x = keras.layers.GlobalAveragePooling2D()(backbone(scaled))
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))
    path = tmp_path_factory.mktemp("models") / "nested.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def zoo():
    return maco_tf.models.loading.load_model(None)


@pytest.fixture
def cached_zoo(monkeypatch, zoo):
    """Serve the default model from a session-wide copy (loading it takes seconds)."""
    real = maco_tf.models.loading.load_model

    def load(spec=None, **kwargs):
        return zoo if spec is None else real(spec, **kwargs)

    monkeypatch.setattr(maco_tf.models.loading, "load_model", load)


def _tiny_args(tiny_file, out, *extra):
    return [
        "visualize", "--model", str(tiny_file), "--layer", "conv1", "--channel", "0-3",
        *FAST, "--size", "32", "--batch-size", "2", "--out", str(out), *extra,
    ]  # fmt: skip


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.png"))}


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def test_default_model_classes_then_resume(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["visualize", "--classes", "espresso,goldfish", *FAST, "--size", "224"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    names = {p.name for p in out.iterdir()}
    for slug in ("0967_espresso", "0001_goldfish"):
        assert {f"{slug}.png", f"{slug}_rgba.png", f"{slug}_heatmap.png"} <= names
    results = _results(out)
    assert results["settings"]["model"] == "efficientnet_lite0"
    assert results["settings"]["steps"] == 2 and results["settings"]["size"] == [224, 224]
    espresso = results["targets"][0]
    assert espresso["name"] == "espresso" and espresso["index"] == 967
    assert len(espresso["top5"]) == 5 and isinstance(espresso["top5"][0]["name"], str)
    assert 0 < sum(item["probability"] for item in espresso["top5"]) <= 1
    assert np.isfinite(espresso["objective_value"]) and espresso["wall_time_s"] >= 0
    assert results["total_time_s"] > 0
    before = _mtimes(out)

    assert main([*args, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "skipped 0967_espresso" in stdout and "skipped 0001_goldfish" in stdout
    assert "0 computed, 2 skipped" in stdout
    assert _mtimes(out) == before


def test_channels_on_a_model_file(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    assert main(_tiny_args(tiny_file, out)) == 0
    stdout = capsys.readouterr().out
    assert "saved conv1_ch0000" in stdout and "4 computed, 0 skipped" in stdout
    assert len(list(out.glob("*.png"))) == 12
    results = _results(out)
    assert [t["slug"] for t in results["targets"]] == [f"conv1_ch{i:04d}" for i in range(4)]
    first = results["targets"][0]
    assert first["name"] == "Channel#conv1_0" and first["kind"] == "channel"
    assert first["files"]["rgba"] == "conv1_ch0000_rgba.png"
    assert first["top5"][0]["name"].isdigit()  # no class names: indices
    assert results["runs"][0]["batch_size"] == 2
    assert results["settings"]["values_range"] == [0.0, 255.0]
    assert results["settings"]["noise"] == RunConfig().noise


def test_phase_spread_flag_reaches_results(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    assert main([*_tiny_args(tiny_file, out), "--phase-spread", "1", "--quiet"]) == 0
    assert _results(out)["settings"]["phase_spread"] == 1.0
    assert main([*_tiny_args(tiny_file, out), "--phase-spread", "0"]) == 2
    assert "expected a finite number > 0" in capsys.readouterr().err


def test_transforms_flag_reaches_results(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    assert main([*_tiny_args(tiny_file, out), "--transforms", "jitter:2,rotate:5", "--quiet"]) == 0
    assert _results(out)["settings"]["transforms"] == ["jitter:2", "rotate:5"]
    for bad, message in (("spin:3", "unknown transform 'spin'"), ("jitter:-1", "pixels >= 0")):
        assert main([*_tiny_args(tiny_file, out), "--transforms", bad]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]  # after argparse's usage
        assert "argument --transforms" in last and message in last


def test_snapshots_and_early_stop_flags(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    flags = ["--snapshots", "1", "--early-stop", "1", "--quiet"]
    assert main([*_tiny_args(tiny_file, out), *flags]) == 0
    results = _results(out)
    assert results["settings"]["snapshots"] == 1 and results["settings"]["early_stop"] == 1
    record = results["targets"][0]
    assert record["snapshots"] == [
        f"{record['slug']}/snapshots/step_{step:04d}.png" for step in range(1, 3)
    ]
    assert all((out / name).is_file() for name in record["snapshots"])
    assert record["steps_run"] == 2
    assert main([*_tiny_args(tiny_file, tmp_path / "other"), "--snapshots", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "snapshots=3 is more than the 2 steps" in err and len(err.splitlines()) == 1


def test_resume_skips_finished_targets(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    assert main(_tiny_args(tiny_file, out, "--quiet")) == 0
    before, results_before = _mtimes(out), (out / "results.json").read_bytes()
    assert main(_tiny_args(tiny_file, out)) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("skipped conv1_ch") == 4 and "0 computed, 4 skipped" in stdout
    assert _mtimes(out) == before
    assert (out / "results.json").read_bytes() == results_before

    (out / "conv1_ch0002_heatmap.png").unlink()  # a missing file is recomputed
    assert main(_tiny_args(tiny_file, out)) == 0
    assert "1 computed, 3 skipped" in capsys.readouterr().out


def test_settings_change_is_refused_unless_overwrite(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    assert main(_tiny_args(tiny_file, out, "--quiet")) == 0
    changed = [a if a != "2" else "3" for a in _tiny_args(tiny_file, out, "--quiet")]
    assert main(changed) == 2
    err = capsys.readouterr().err.strip()
    assert "holds results made with other settings (steps 2, now 3" in err
    assert "--overwrite" in err and len(err.splitlines()) == 1
    assert main([*changed, "--overwrite"]) == 0
    assert _results(out)["settings"]["steps"] == 3


def test_results_of_older_versions_are_recognised(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    assert main(_tiny_args(tiny_file, out, "--quiet")) == 0
    results = _results(out)
    old = {k: results["settings"][k] for k in ("model", "model_identity", "model_source")}
    for key in ("values_range", "method", "steps", "crops", "box_size", "whole_views", "noise"):
        old[key] = results["settings"][key]
    old.update(size=results["settings"]["size"][0], seed=results["settings"]["seed"])
    results["settings"] = old  # the keys written before RunConfig: size an int, no copies...
    (out / "results.json").write_text(json.dumps(results), encoding="utf-8")
    assert main(_tiny_args(tiny_file, out)) == 0
    assert "0 computed, 4 skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--size", "100000"], "size=100000 is over the limit max_size=4096"),
        (["--steps", str(10**12)], "steps=1000000000000 is over the limit max_steps"),
        (["--seed", str(2**63)], "seed 9223372036854775808 is outside [0, 2**63)"),
    ],
)
def test_bounds_refuse_with_exit_2_before_loading(tmp_path, flags, message, capsys, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(maco_tf.models.loading, "load_model", no_loading)
    args = ["visualize", "--model", "x.keras", "--layer", "conv1", "--channel", "0"]
    assert main([*args, *flags, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_seeds_do_not_alias_modulo_2_32(tmp_path, tiny_file):
    images = {}
    for seed in ("0", str(2**32)):
        out = tmp_path / seed
        assert main([*_tiny_args(tiny_file, out, "--quiet"), "--seed", seed]) == 0
        images[seed] = (out / "conv1_ch0000.png").read_bytes()
    assert images["0"] != images[str(2**32)]


def test_interrupt_keeps_finished_chunks(tmp_path, tiny_file, capsys, monkeypatch):
    out = tmp_path / "out"
    real = maco_tf.core.visualization.visualize
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(maco_tf.core.visualization, "visualize", flaky)
    assert main(_tiny_args(tiny_file, out, "--quiet")) == 130
    err = capsys.readouterr().err
    assert err.strip() == f"maco-tf: interrupted; 2 of 4 targets saved in {out}, re-run to resume"
    assert "Traceback" not in err
    results = _results(out)
    assert [t["slug"] for t in results["targets"]] == ["conv1_ch0000", "conv1_ch0001"]
    assert results["runs"][-1]["interrupted"] is True
    assert len(list(out.glob("*.png"))) == 6
    assert not list(out.glob(".*tmp"))

    monkeypatch.setattr(maco_tf.core.visualization, "visualize", real)
    assert main(_tiny_args(tiny_file, out)) == 0
    assert "2 computed, 2 skipped" in capsys.readouterr().out
    assert len(_results(out)["targets"]) == 4


def test_direction_file_and_neuron(tmp_path, tiny_file):
    directions = tmp_path / "dirs.npy"
    np.save(directions, np.random.default_rng(0).normal(size=(2, 8)).astype("float32"))
    out = tmp_path / "out"
    base = ["visualize", "--model", str(tiny_file), *FAST, "--size", "32", "--out", str(out)]
    assert main([*base, "--layer", "conv2", "--direction", str(directions), "--quiet"]) == 0
    assert main([*base, "--layer", "dense", "--neuron", "3,5", "--quiet"]) == 0
    slugs = [t["slug"] for t in _results(out)["targets"]]
    assert slugs == ["conv2_dirs_dir000", "conv2_dirs_dir001", "dense_n0003", "dense_n0005"]


def test_nested_layer_path(tmp_path, nested_file):
    out = tmp_path / "out"
    args = ["visualize", "--model", str(nested_file), "--layer", "backbone/inner_relu"]
    assert main([*args, "--channel", "1", *FAST, "--size", "32", "--out", str(out), "--quiet"]) == 0
    (target,) = _results(out)["targets"]
    assert target["slug"] == "backbone__inner_relu_ch0001"
    assert target["name"] == "Channel#backbone/inner_relu_1"
    assert (out / "backbone__inner_relu_ch0001_rgba.png").is_file()


def test_layers_command(nested_file, capsys):
    assert main(["layers", "--model", str(nested_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("backbone/inner_relu\t") for line in lines)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--model", "mobilenetv5", "--classes", "1"], "did you mean: MobileNetV2"),
        (["--model", "missing.keras", "--classes", "1"], "'missing.keras' not found"),
        (["--classes", "espreso"], "did you mean: espresso"),
        (["--classes", "crane"], "ambiguous ImageNet class 'crane'"),
        (["--layer", "top_cnv", "--channel", "3"], "did you mean: top_conv"),
        (["--layer", "top_conv", "--channel", "3000"], "(valid: 0-1279)"),
        (["--layer", "top_conv"], "exactly one of --channel, --neuron or --direction"),
        (["--channel", "3"], "need --layer"),
        ([], "nothing to visualize"),
        (["--classes", "1", "--size", "100"], "smaller than the model input 224x224"),
    ],
)
def test_bad_input_on_default_model(tmp_path, capsys, cached_zoo, args, fragment):
    assert main(["visualize", *args, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maco-tf: error: ")
    assert fragment in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--classes", "cat"], "has no class names; give class indices"),
        (["--classes", "12"], "class 12 is out of range for layer 'logits' with 10 units"),
        (["--layer", "conv9", "--neuron", "1"], "did you mean: conv2, conv1?"),
        (["--layer", "conv1", "--direction", "nope.npy"], "cannot read direction file"),
    ],
)
def test_bad_input_on_model_file(tmp_path, capsys, tiny_file, args, fragment):
    argv = ["visualize", "--model", str(tiny_file), *args, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]


def _badly_named_model(path: Path) -> Path:
    """A tiny classifier whose convolution is named "my conv:1" (not a TensorFlow scope name)."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="my conv:1")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    keras.Model(inputs, keras.layers.Dense(3, name="logits")(x)).save(path)
    return path


@pytest.mark.parametrize("command", ["visualize", "atlas"])
def test_a_layer_name_tensorflow_rejects_is_one_line(tmp_path, capsys, command):
    model = _badly_named_model(tmp_path / "named.keras")
    argv = [command, "--model", str(model), "--classes", "0", *FAST, "--size", "32"]
    argv += ["--values-range", "0,1"]  # a bare model: its range cannot be inferred
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "layer 'my conv:1'" in lines[0] and "rename it" in lines[0]


def test_corrupt_model_file(tmp_path, capsys):
    path = tmp_path / "x.keras"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    assert main(["visualize", "--model", str(path), "--classes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"maco-tf: error: could not read model file '{path}': not a .keras archive "
        "(corrupt or truncated?)"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["visualize", "--steps", "0"],
        ["visualize", "--channel", "a,b"],
        ["visualize", "--noise", "-0.1"],
        ["visualize", "--noise", "nan"],
        ["visualize", "--noise", "loud"],
        ["frobnicate"],
        [],
    ],
)
def test_argparse_errors_exit_2(capsys, args):
    assert main(args) == 2
    assert "error" in capsys.readouterr().err


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"maco-tf {maco_tf.__version__}"
    assert main(["visualize", "--help"]) == 0
    assert "--classes" in capsys.readouterr().out


def test_installed_script(tmp_path):
    script = Path(sys.executable).with_name("maco-tf")
    script = str(script) if script.exists() else shutil.which("maco-tf")
    if script is None:
        pytest.skip("maco-tf console script not installed")
    done = subprocess.run(
        [script, "visualize", "--model", "mobilenet_v5", "--classes", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "maco-tf: error: unknown model 'mobilenet_v5'" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------ hostile input


def test_negative_values_range(tmp_path, tiny_file):
    out = tmp_path / "out"
    assert main([*_tiny_args(tiny_file, out, "--quiet"), "--values-range", "-1,1"]) == 0
    assert _results(out)["settings"]["values_range"] == [-1.0, 1.0]


def _point_files_at(out: Path, slug: str, where: str) -> None:
    """Rewrite the record of ``slug`` so that its image is ``where`` (a hostile path)."""
    results = _results(out)
    for record in results["targets"]:
        if record["slug"] == slug:
            record["files"]["image"] = where
    (out / "results.json").write_text(json.dumps(results))


def test_recorded_paths_outside_out_are_never_done_nor_deleted(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    argv = [*_tiny_args(tiny_file, out), "--channel", "0-2", "--batch-size", "3"]
    assert main([*argv, "--quiet"]) == 0
    victims = [tmp_path / "victim.png", tmp_path / "absolute.png"]
    for victim in victims:
        victim.write_bytes(b"keep me")
    (out / "link.png").symlink_to(victims[0])
    hostile = {"conv1_ch0000": "../victim.png", "conv1_ch0001": str(victims[1])}
    for slug, where in {**hostile, "conv1_ch0002": "link.png"}.items():
        _point_files_at(out, slug, where)
    assert main(argv) == 0
    assert "3 computed, 0 skipped" in capsys.readouterr().out  # outside: not finished
    records = {r["slug"]: r for r in _results(out)["targets"]}
    assert records["conv1_ch0000"]["files"]["image"] == "conv1_ch0000.png"

    for slug, where in hostile.items():
        _point_files_at(out, slug, where)
    settings = {**_results(out)["settings"], "steps": 3}
    assert open_results(out / "results.json", settings, overwrite=True).targets == {}
    assert all(victim.read_bytes() == b"keep me" for victim in victims)
    assert "not deleting '../victim.png'" in capsys.readouterr().err
    assert not (out / "conv1_ch0002.png").exists()  # the folder's own files are deleted


def test_a_second_process_on_one_folder_is_refused(tmp_path, tiny_file, capsys):
    out = tmp_path / "out"
    with lock_held_elsewhere(out, "results.json") as pid:
        assert main(_tiny_args(tiny_file, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"maco-tf: error: another maco-tf process (pid {pid}")
    assert "use another --out folder" in err and len(err.splitlines()) == 1
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize("where", ["file/out", "/sys/maco-tf-out"])
def test_unwritable_out_is_refused_before_anything_runs(
    tmp_path, tiny_file, capsys, where, monkeypatch
):
    if where.startswith("/sys") and not Path("/sys").is_dir():
        pytest.skip("no /sys")
    (tmp_path / "file").write_text("x")
    out = tmp_path / where if not where.startswith("/") else Path(where)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(maco_tf.models.loading, "load_model", no_model)
    assert main(_tiny_args(tiny_file, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"maco-tf: error: --out {out} cannot be") and len(err.splitlines()) == 1


def test_ctrl_c_during_start_up_is_one_line(capsys, monkeypatch):
    import maco_tf.cli.parser

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(maco_tf.cli.parser, "build_parser", interrupted)
    assert main(["visualize", "--classes", "1"]) == 130
    assert capsys.readouterr().err == "maco-tf: interrupted\n"


def test_the_command_line_starts_without_tensorflow(tmp_path):
    """TensorFlow loads inside main(), where Ctrl-C gives one line, not at import."""
    check = "import sys, maco_tf.cli.main; print('tensorflow' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize(
    ("vectors", "fragment"),
    [
        (np.zeros((2, 8)), "direction 0 of"),
        (np.array([[1.0] * 8, [np.nan] * 8]), "direction 1 of"),
        (np.zeros((0,)), "empty array"),
    ],
)
def test_degenerate_direction_files_are_refused(tmp_path, tiny_file, capsys, vectors, fragment):
    path = tmp_path / "dirs.npy"
    np.save(path, vectors.astype("float32"))
    argv = ["visualize", "--model", str(tiny_file), "--layer", "conv2", "--direction", str(path)]
    assert main([*argv, *FAST, "--size", "32", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_grayscale_model_with_maco_points_to_a_flag(tmp_path, capsys):
    path = tmp_path / "gray.keras"
    build_tiny_cnn(size=32, channels=1, rescale=True).save(path)
    argv = ["visualize", "--model", str(path), "--layer", "conv1", "--channel", "0", *FAST]
    assert main([*argv, "--size", "32", "--out", str(tmp_path / "o")]) == 2
    assert "use --method fourier" in capsys.readouterr().err
    assert main([*argv, "--size", "32", "--method", "fourier", "--out", str(tmp_path / "o")]) == 0


def test_overwrite_deletes_the_recorded_snapshots(tmp_path):
    from maco_tf.runs.results import ResultsFile, discard

    names = ["a.png", "a_rgba.png", "a_heatmap.png", "a/snapshots/step_0004.png"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"png")
    record = {
        "slug": "a",
        "files": dict(zip(("image", "rgba", "heatmap"), names[:3], strict=True)),
        "snapshots": names[3:],
    }
    discard(ResultsFile(tmp_path / "results.json", {}, {"a": record}, []), ["x"], overwrite=True)
    assert not any((tmp_path / name).exists() for name in names)

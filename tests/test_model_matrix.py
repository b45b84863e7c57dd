"""The compatibility matrix: models users bring, saved to .keras and visualised by the CLI.

Every ``keras.applications`` constructor that builds offline at a small input size (random
weights), saved and loaded back, runs two steps of ``maco-tf visualize`` in this process, and
the input range inferred (and recorded in ``results.json``) is asserted; then the shapes of
models people write themselves. One constructor per input convention (tf, open-size raw,
caffe, raw) runs by default; the others are marked ``slow`` (CI runs them too).
docs/models.md has this table, with what each row needed.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from maco_tf.cli.main import main

FAST = ["--steps", "2", "--crops", "1", "--batch-size", "1"]

#: constructor, input side, expected range, extra constructor arguments, slow
APPLICATIONS = [
    ("MobileNet", 32, (-1, 1), {"alpha": 0.25}, False),
    ("MobileNetV2", 32, (-1, 1), {"alpha": 0.35}, True),
    ("MobileNetV3Small", 32, (0, 255), {}, False),
    ("MobileNetV3Large", 32, (0, 255), {}, True),
    ("ResNet50V2", 32, (-1, 1), {}, False),
    ("ResNet101V2", 32, (-1, 1), {}, True),
    ("ResNet152V2", 32, (-1, 1), {}, True),
    ("ResNet50", 32, (0, 255), {}, False),
    ("ResNet101", 32, (0, 255), {}, True),
    ("ResNet152", 32, (0, 255), {}, True),
    ("VGG16", 32, (0, 255), {}, True),
    ("VGG19", 32, (0, 255), {}, True),
    ("DenseNet121", 32, (0, 255), {}, True),
    ("DenseNet169", 32, (0, 255), {}, True),
    ("DenseNet201", 32, (0, 255), {}, True),
    *[(f"EfficientNetB{i}", 32, (0, 255), {}, i > 0) for i in range(8)],
    *[(f"EfficientNetV2{v}", 32, (0, 255), {}, True) for v in ("B0", "B1", "B2", "B3")],
    *[(f"EfficientNetV2{v}", 32, (0, 255), {}, True) for v in ("S", "M", "L")],
    *[(f"ConvNeXt{v}", 32, (0, 255), {}, True) for v in ("Tiny", "Small", "Base")],
    *[(f"ConvNeXt{v}", 32, (0, 255), {}, True) for v in ("Large", "XLarge")],
    ("Xception", 71, (-1, 1), {}, True),
    ("InceptionV3", 75, (-1, 1), {}, True),
    ("InceptionResNetV2", 75, (-1, 1), {}, True),
    ("NASNetMobile", 32, (-1, 1), {}, True),
    ("NASNetLarge", 32, (-1, 1), {}, True),
]


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


def _visualize(capsys, model: Path, out: Path, *flags: str) -> tuple[int, str, str]:
    argv = ["visualize", "--model", str(model), *FAST, "--out", str(out), *flags]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _settings(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["settings"]


def _check_run(capsys, model: Path, out: Path, expected, *flags: str) -> dict:
    code, said, err = _visualize(capsys, model, out, *flags)
    assert code == 0, err
    low, high = expected
    assert f"input range [{low:g}, {high:g}]: " in said
    settings = _settings(out)
    assert settings["values_range"] == [float(low), float(high)]
    assert settings["values_range_reason"]
    return settings


def _param(name, size, expected, kwargs, slow):
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(name, size, expected, kwargs, marks=marks, id=name)


@pytest.mark.parametrize("name, size, expected, kwargs", [_param(*row) for row in APPLICATIONS])
def test_application_file_runs_with_its_inferred_range(
    tmp_path, capsys, name, size, expected, kwargs
):
    constructor = getattr(keras.applications, name)
    shape = None if name.startswith("MobileNetV3") else (size, size, 3)  # left open
    model = constructor(weights=None, input_shape=shape, classes=3, **kwargs)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    del model
    flags = ["--classes", "1", "--size", str(size)]
    if shape is None:
        flags += ["--input-size", str(size)]
    settings = _check_run(capsys, path, tmp_path / "out", expected, *flags)
    assert settings["values_range_reason"].startswith(f"keras.applications {name}")


def test_open_input_without_a_flag_takes_the_family_size(tmp_path, capsys):
    path = tmp_path / "v3.keras"
    keras.applications.MobileNetV3Small(weights=None, classes=3, minimalistic=True).save(path)
    code, said, err = _visualize(capsys, path, tmp_path / "out", "--classes", "0", "--size", "224")
    assert code == 0, err
    assert "open input size closed at 224x224" in said


# ------------------------------------------------------------------- models people write


def _classifier(inputs, x, activation=None, name="mine") -> keras.Model:
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation=activation, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def _save(model: keras.Model, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


def test_sequential_with_rescaling(tmp_path, capsys):
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    path = _save(model, tmp_path, "sequential")
    _check_run(capsys, path, tmp_path / "out", (0, 255), "--layer", "conv", "--channel", "1")


def test_plain_model_asks_for_its_range(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    path = _save(_classifier(inputs, inputs), tmp_path, "plain")
    code, _, err = _visualize(capsys, path, tmp_path / "out", "--classes", "1")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--values-range LOW,HIGH" in lines[0]
    _check_run(capsys, path, tmp_path / "out", (0, 1), "--classes", "1", "--values-range", "0,1")


def test_nested_application_reachable_by_path(tmp_path, capsys):
    backbone = keras.applications.MobileNet(
        weights=None, input_shape=(32, 32, 3), alpha=0.25, include_top=False
    )
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    path = _save(keras.Model(inputs, keras.layers.Dense(3)(x)), tmp_path, "nested")
    flags = ["--layer", f"{backbone.name}/conv_pw_2_relu", "--channel", "0"]
    _check_run(capsys, path, tmp_path / "out", (-1, 1), *flags)


SUBCLASSED = """
import keras


class Sub(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = keras.layers.Rescaling(1 / 255, name="scale")
        self.conv = keras.layers.Conv2D(4, 3, name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.head = keras.layers.Dense(3, name="head")

    def call(self, x):
        return self.head(self.pool(keras.ops.relu(self.conv(self.scale(x)))))
"""


def test_subclassed_file_with_custom_objects(tmp_path, capsys):
    from maco_tf.models.custom import custom_objects

    module = tmp_path / "my_layers.py"
    module.write_text(SUBCLASSED)
    model = custom_objects(module)["Sub"](name="sub")
    model(np.zeros((1, 32, 32, 3), "float32"))
    path = _save(model, tmp_path, "sub")
    sys.modules.pop(type(model).__module__)  # as in a new process
    code, _, err = _visualize(capsys, path, tmp_path / "out", "--classes", "1")
    assert code == 2 and "--custom-objects module.py" in err
    flags = ["--layer", "conv", "--channel", "0", "--custom-objects", str(module)]
    _check_run(capsys, path, tmp_path / "out", (0, 255), *flags)


def test_grayscale_model(tmp_path, capsys):
    inputs = keras.Input((32, 32, 1))
    model = _classifier(inputs, keras.layers.Rescaling(1 / 255)(inputs))
    path = _save(model, tmp_path, "gray")
    code, _, err = _visualize(capsys, path, tmp_path / "out", "--classes", "0")
    assert code == 2 and "--method fourier" in err and "magnitude_dataset=" in err
    flags = ["--classes", "0", "--method", "fourier"]
    _check_run(capsys, path, tmp_path / "out", (0, 255), *flags)


def test_softmax_output_is_stripped(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    model = _classifier(inputs, keras.layers.Rescaling(1 / 255)(inputs), activation="softmax")
    path = _save(model, tmp_path, "softmax")
    code, said, err = _visualize(capsys, path, tmp_path / "out", "--classes", "2")
    assert code == 0, err
    assert "softmax of 'head' removed" in said


def test_multi_output_first_or_named(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    first = keras.layers.Dense(3, name="first")(x)
    second = keras.layers.Dense(5, name="second")(x)
    path = _save(keras.Model(inputs, [first, second]), tmp_path, "two")
    code, said, err = _visualize(capsys, path, tmp_path / "a", "--classes", "2")
    assert code == 0 and "--output NAME" in said, err
    _check_run(capsys, path, tmp_path / "b", (0, 255), "--classes", "4", "--output", "second")


def test_multi_input_is_a_clear_error(tmp_path, capsys):
    image, extra = keras.Input((32, 32, 3)), keras.Input((2,))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(image))
    outputs = keras.layers.Dense(3)(keras.layers.Concatenate()([x, extra]))
    path = _save(keras.Model([image, extra], outputs), tmp_path, "two_inputs")
    code, _, err = _visualize(capsys, path, tmp_path / "out", "--classes", "1")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "2 inputs" in lines[0]

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def build_tiny_cnn(size: int = 32, channels: int = 3, seed: int = 0) -> keras.Model:
    """A small random CNN with named layers, for fast engine tests."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, channels), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.Activation("relu", name="relu1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.Activation("tanh", name="act2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(16, name="dense")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="session")
def tiny_model() -> keras.Model:
    return build_tiny_cnn()


@pytest.fixture(scope="session")
def gray_model() -> keras.Model:
    return build_tiny_cnn(channels=1, seed=1)


#: Few small steps, with Xplique's schedules and no whole views (as the drop-in).
FAST = dict(steps=4, crops=2, size=48, seed=0, whole_views=0, noise=0.08, box_size=None)


@pytest.fixture
def fast_settings() -> dict:
    return dict(FAST)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@contextlib.contextmanager
def lock_held_elsewhere(folder: Path, name: str) -> Iterator[int]:
    """Another process holds ``OutputFolder(folder).lock(name)`` while the block runs; its pid."""
    holder = (
        "import sys; from maco_tf.files import OutputFolder\n"
        f"with OutputFolder({str(folder)!r}).lock({name!r}):\n"
        "    print('locked', flush=True); sys.stdin.readline()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    try:
        assert process.stdout.readline().strip() == "locked"
        yield process.pid
    finally:
        process.communicate("\n", timeout=60)

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def build_tiny_cnn(
    size: int = 32, channels: int = 3, seed: int = 0, rescale: bool = False
) -> keras.Model:
    """A small random CNN with named layers, for fast engine tests.

    ``rescale``: a ``Rescaling(1/255)`` first, so that its input range (0-255) is inferred.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, channels), name="image")
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs) if rescale else inputs
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(x)
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
def tiny_file(tmp_path_factory) -> Path:
    """The tiny CNN saved as ``tiny.keras``, for the command line."""
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    build_tiny_cnn(size=32, rescale=True).save(path)
    return path


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

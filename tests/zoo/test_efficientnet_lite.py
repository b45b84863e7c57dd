"""Tests for the Keras EfficientNet-Lite0 and -Lite1 rebuilt from bundled PyTorch checkpoints."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data

from maco_tf.models.zoo import efficientnet_lite as lite
from maco_tf.models.zoo.efficientnet_lite import (
    EFFICIENTNET_LITE0_SPEC,
    EFFICIENTNET_LITE1_SPEC,
    ModelSpec,
    UnknownLiteVariantError,
    build_efficientnet_lite,
    cache_path,
    load_efficientnet_lite,
    load_efficientnet_lite0,
)
from maco_tf.models.zoo.photos import imagenet_photos

ESPRESSO = 967
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ROCKETS = (657, 744, 812)  # missile, projectile, space shuttle
MOPED_LIKE = (665, 670)  # moped, motor scooter


def square_224(image: np.ndarray) -> np.ndarray:
    """Centre-crop to a square, resize to 224x224 (bilinear), float32 RGB in [0, 255]."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(image[top : top + side, left : left + side, :3])
    resized = Image.fromarray(crop).resize((224, 224), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "coffee": data.coffee,
    "chelsea": data.chelsea,
    "rocket": data.rocket,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("maco_tf_cache")


@pytest.fixture(scope="module")
def model(cache_dir: Path) -> keras.Model:
    return load_efficientnet_lite0(cache_dir)


@pytest.fixture(scope="module")
def photo_batch() -> np.ndarray:
    return np.stack([square_224(load()) for load in PHOTOS.values()])


@pytest.fixture(scope="module")
def logits(model: keras.Model, photo_batch: np.ndarray) -> dict[str, np.ndarray]:
    out = model.predict(photo_batch, verbose=0)
    return dict(zip(PHOTOS, out, strict=True))


def top(logit_row: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(logit_row)[::-1][:k]]


# -------------------------------------------------------------------- architecture


def test_spec_and_structure(model: keras.Model) -> None:
    spec = model.maco_spec
    assert spec is EFFICIENTNET_LITE0_SPEC
    assert isinstance(spec, ModelSpec)
    assert spec.input_size == (224, 224)
    assert spec.values_range == (0.0, 255.0)
    assert spec.num_classes == 1000
    assert spec.logits_layer == "logits"
    with pytest.raises(AttributeError):
        spec.num_classes = 10  # frozen

    assert tuple(model.input_shape) == (None, 224, 224, 3)
    assert tuple(model.output_shape) == (None, 1000)
    assert model.layers[1].name == "rescaling"
    names = {layer.name for layer in model.layers}
    assert {
        "stem_conv",
        "block1a_dwconv",
        "block3b_expand_conv",
        "block7a_project_bn",
        "top_conv",
        "avg_pool",
        "logits",
    } <= names
    assert model.get_layer("logits").activation is keras.activations.linear
    # EfficientNet-Lite0 has 4.652M trainable parameters.
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 4_652_008


def test_rescaling_maps_pixels_to_unit_range(model: keras.Model) -> None:
    layer = model.get_layer("rescaling")
    out = keras.ops.convert_to_numpy(layer(np.array([[0.0, 127.0, 255.0]], np.float32)))
    np.testing.assert_allclose(out, [[-127 / 128, 0.0, 1.0]], atol=1e-6)


# --------------------------------------------------------------------- predictions


def test_coffee_is_espresso(logits: dict[str, np.ndarray]) -> None:
    assert top(logits["coffee"], 1) == [ESPRESSO]


def test_chelsea_is_a_cat(logits: dict[str, np.ndarray]) -> None:
    assert top(logits["chelsea"], 1)[0] in CATS


def test_rocket_is_a_rocket(logits: dict[str, np.ndarray]) -> None:
    assert top(logits["rocket"], 1)[0] in ROCKETS
    assert set(top(logits["rocket"], 5)) >= {657, 744}


def test_motorcycle_is_a_moped(logits: dict[str, np.ndarray]) -> None:
    assert top(logits["motorcycle"], 1)[0] in MOPED_LIKE


def test_logits_are_differentiable_wrt_pixels(model: keras.Model, photo_batch: np.ndarray) -> None:
    x = tf.constant(photo_batch[:1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = model(x, training=False)[:, ESPRESSO]
    grad = tape.gradient(score, x).numpy()
    assert np.isfinite(grad).all()
    assert np.abs(grad).max() > 0


# --------------------------------------------------------------------------- cache


def _refuse_checkpoint(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the checkpoint should not be read when the cache is valid")


def test_second_load_uses_cache(
    model: keras.Model,
    cache_dir: Path,
    photo_batch: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cache_path(cache_dir).is_file()
    assert sorted(os.listdir(cache_dir)) == [cache_path(cache_dir).name]  # no temp leftovers
    monkeypatch.setattr(lite, "load_torch_state_dict", _refuse_checkpoint)
    again = load_efficientnet_lite0(cache_dir)
    np.testing.assert_array_equal(
        again.predict(photo_batch, verbose=0), model.predict(photo_batch, verbose=0)
    )


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bit_flip"])
def test_corrupt_cache_is_rebuilt(
    model: keras.Model,
    cache_dir: Path,
    tmp_path: Path,
    photo_batch: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    good = cache_path(cache_dir).read_bytes()
    broken = {
        "garbage": b"not a weight file",
        "truncated": good[: len(good) // 2],
        "bit_flip": good[:9_000_000] + bytes([good[9_000_000] ^ 0x55]) + good[9_000_001:],
    }[damage]
    cache_path(tmp_path).write_bytes(broken)
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = load_efficientnet_lite0(tmp_path)
    np.testing.assert_array_equal(
        rebuilt.predict(photo_batch[:1], verbose=0), model.predict(photo_batch[:1], verbose=0)
    )
    assert cache_path(tmp_path).read_bytes() != broken
    monkeypatch.setattr(lite, "load_torch_state_dict", _refuse_checkpoint)
    load_efficientnet_lite0(tmp_path)  # the rebuilt cache is valid


def test_failed_cache_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lite.os, "replace", disk_full)
    with pytest.warns(UserWarning, match="could not write weight cache"):
        fresh = load_efficientnet_lite0(tmp_path)
    assert fresh.get_layer("logits").get_weights()[0].shape == (1280, 1000)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- the Lite family


def test_lite1_structure() -> None:
    model = build_efficientnet_lite("efficientnet-lite1")
    assert model.name == "efficientnet_lite1"
    assert tuple(model.input_shape) == (None, 240, 240, 3)
    blocks = [layer.name for layer in model.layers if layer.name.endswith("_project_conv")]
    assert len(blocks) == 21  # depth 1.1: stages 1, 3, 3, 4, 4, 5, 1 (first and last unscaled)
    assert blocks[-2:] == ["block6e_project_conv", "block7a_project_conv"]
    assert model.get_layer("block7a_project_conv").filters == 320  # width 1.0
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 5_416_680


def test_width_multiplier_rounds_filters_as_efficientnet() -> None:
    widths = [lite._scaled_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)]
    assert widths == [16, 24, 48, 88, 120, 208, 352]  # EfficientNet-B2 / Lite2 channels
    assert [lite._scaled_filters(f, 1.4) for f in (16, 40, 112)] == [24, 56, 160]


def test_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(UnknownLiteVariantError, match="efficientnet_lite0, efficientnet_lite1"):
        build_efficientnet_lite("efficientnet_lite9")


@pytest.fixture(scope="module")
def zoo_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture(scope="module", params=["efficientnet_lite0", "efficientnet_lite1"])
def zoo_model(request: pytest.FixtureRequest, zoo_cache_dir: Path) -> keras.Model:
    return load_efficientnet_lite(request.param, zoo_cache_dir)


def _photo_ranks(model: keras.Model) -> np.ndarray:
    """1-based rank of the true class of each labelled ImageNet photo."""
    images, labels = imagenet_photos(model.maco_spec.input_size[0])
    logits = model.predict(images.astype(np.float32), verbose=0)
    true = logits[np.arange(len(labels)), labels]
    return 1 + (logits > true[:, None]).sum(axis=1)


def test_zoo_models_classify_real_imagenet_photos(zoo_model: keras.Model) -> None:
    ranks = _photo_ranks(zoo_model)
    top1, top5 = float(np.mean(ranks == 1)), float(np.mean(ranks <= 5))
    bounds = {"efficientnet_lite0": (0.75, 0.95), "efficientnet_lite1": (0.85, 0.95)}
    least_top1, least_top5 = bounds[zoo_model.name]
    assert len(ranks) == 20
    assert top1 >= least_top1, f"{zoo_model.name}: top-1 {top1:.2f} on the 20 photos"
    assert top5 >= least_top5, f"{zoo_model.name}: top-5 {top5:.2f} on the 20 photos"


def test_each_variant_has_its_own_cache(zoo_model: keras.Model, zoo_cache_dir: Path) -> None:
    spec = zoo_model.maco_spec
    assert spec in (EFFICIENTNET_LITE0_SPEC, EFFICIENTNET_LITE1_SPEC)
    assert cache_path(zoo_cache_dir, spec.name).name == f"{spec.name}.weights.npz"
    assert cache_path(zoo_cache_dir, spec.name).is_file()

"""KerasHub models (maco_tf.models.hub): tiny architectures built from their configs.

Nothing is downloaded: each family is built from its constructor with random weights at a
tiny size, with an image converter of one of the usual kinds (ImageNet mean/std per channel for
ResNet, EfficientNet and DINOv2, ``[-1, 1]`` for ViT, ``[0, 1]`` for CLIP); presets are
exercised by saving these models as local preset folders. Skipped where keras-hub is not
installed (``pip install maco_tf[hub]``), except the test of the message that says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys

import keras
import numpy as np
import pytest

import maco_tf
from maco_tf.cli.main import main
from maco_tf.models.hub import (
    CONVERTER_VALUES_RANGE,
    HubModelError,
    converter_affine,
    is_hub_model,
    load_hub_model,
)
from maco_tf.models.layers import layer_paths
from maco_tf.models.loading import UnknownModelError
from maco_tf.targets import channel, class_logits, direction, tokens

needs_hub = pytest.mark.skipif(
    importlib.util.find_spec("keras_hub") is None, reason="keras-hub not installed"
)

SIZE = 32
STEPS = dict(steps=2, crops=2, size=48, seed=0)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET_SCALE = [1 / (255 * s) for s in STD]
IMAGENET_OFFSET = [-m / s for m, s in zip(MEAN, STD, strict=True)]


class Converter:
    """Stands for a KerasHub image converter: only ``scale`` and ``offset`` are read."""

    def __init__(self, scale, offset):
        self.scale, self.offset = scale, offset


# ------------------------------------------------------------------ converter mapping


@pytest.mark.parametrize(
    ("scale", "offset", "expected"),
    [
        (1 / 127.5, -1.0, ((1 / 127.5,) * 3, (-1.0,) * 3)),
        (1 / 255, None, ((1 / 255,) * 3, (0.0,) * 3)),
        (None, [1.0, 2.0, 3.0], ((1.0,) * 3, (1.0, 2.0, 3.0))),
        (IMAGENET_SCALE, IMAGENET_OFFSET, (tuple(IMAGENET_SCALE), tuple(IMAGENET_OFFSET))),
    ],
)
def test_converter_affine_is_one_scale_and_offset_per_channel(scale, offset, expected):
    got = converter_affine(Converter(scale, offset))
    np.testing.assert_allclose(got, expected)


def test_converter_without_scale_or_offset_changes_nothing():
    assert converter_affine(Converter(None, None)) is None


def test_converter_with_a_wrong_channel_count_is_refused():
    with pytest.raises(HubModelError, match="one per channel"):
        converter_affine(Converter([1.0, 2.0], None))


def test_missing_keras_hub_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import keras_hub -> ImportError
    with pytest.raises(HubModelError, match=r"pip install maco_tf\[hub\]"):
        maco_tf.load_model("hub:resnet_50_imagenet")


def test_hub_names_are_told_apart_without_importing_keras_hub():
    assert is_hub_model("hub:resnet_50_imagenet") and is_hub_model(" HUB:x")
    assert not is_hub_model("resnet50") and not is_hub_model(keras.Sequential())


# ------------------------------------------------------------------ tiny architectures


def _resnet():
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),  # open size, as the presets: the converter fixes it
    )
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(SIZE, SIZE), scale=IMAGENET_SCALE, offset=IMAGENET_OFFSET
    )
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=10, preprocessor=preprocessor
    )


def _efficientnet():
    import keras_hub

    backbone = keras_hub.models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"],
        stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
        num_features=32,
        input_shape=(SIZE, SIZE, 3),
    )
    converter = keras_hub.layers.EfficientNetImageConverter(
        image_size=(SIZE, SIZE), scale=IMAGENET_SCALE, offset=IMAGENET_OFFSET
    )
    preprocessor = keras_hub.models.EfficientNetImageClassifierPreprocessor(
        image_converter=converter
    )
    return keras_hub.models.EfficientNetImageClassifier(
        backbone=backbone, num_classes=10, preprocessor=preprocessor, activation="softmax"
    )


def _vit():
    import keras_hub

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
        mlp_dim=32,
    )  # fmt: skip
    converter = keras_hub.layers.ViTImageConverter(
        image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1.0
    )
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=10, preprocessor=preprocessor
    )


def _dinov2():
    """A backbone without a classifier head, as the DINOv2 presets."""
    import keras_hub

    backbone = keras_hub.models.DINOV2Backbone(
        patch_size=8, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32,
        image_shape=(SIZE, SIZE, 3), position_embedding_shape=(SIZE, SIZE, 3),
    )  # fmt: skip
    converter = keras_hub.layers.DINOV2ImageConverter(
        image_size=(SIZE, SIZE), scale=IMAGENET_SCALE, offset=IMAGENET_OFFSET
    )
    return backbone, converter


@pytest.fixture(scope="module")
def resnet():
    keras.utils.set_random_seed(0)
    return _resnet()


def _assert_ran(run, count):
    """Finite images in the converter's range, transparency defined and alive for each."""
    assert run.images.shape == (count, 48, 48, 3)
    assert np.all(np.isfinite(run.images))
    low, high = CONVERTER_VALUES_RANGE
    assert run.images.min() >= low and run.images.max() <= high
    assert np.all(np.isfinite(run.transparency)) and not run.dead.any()
    assert np.all(run.nonfinite_steps == 0)


@needs_hub
def test_resnet_classifier_class_and_backbone_channels(resnet):
    loaded = maco_tf.load_model(resnet)  # an in-memory KerasHub task
    assert loaded.values_range == CONVERTER_VALUES_RANGE and loaded.input_size == (SIZE, SIZE)
    assert loaded.source == "keras_hub"
    assert loaded.logits_layer == f"{resnet.name}/predictions"
    assert "per channel [-2.12, 2.25]" in loaded.notes[0]
    conversion = loaded.model.get_layer("image_conversion")
    np.testing.assert_allclose(conversion.scale, IMAGENET_SCALE, rtol=1e-6)
    block = f"{resnet.name}/{resnet.backbone.name}/stack1_block0_out"
    assert block in layer_paths(loaded.model)
    objective = class_logits(loaded.model, [1, 2], layer=loaded.logits_layer) + channel(
        loaded.model, block, [0]
    )
    _assert_ran(maco_tf.visualize(objective, values_range=loaded.values_range, **STEPS), 2)


@needs_hub
def test_efficientnet_classifier_classes_on_logits_not_softmax():
    keras.utils.set_random_seed(0)
    loaded = load_hub_model(_efficientnet())
    assert any("softmax" in note for note in loaded.notes)
    scores = keras.ops.convert_to_numpy(loaded.model(np.full((1, SIZE, SIZE, 3), 128.0)))
    assert not np.isclose(scores.sum(), 1.0) or scores.min() < 0
    objective = class_logits(loaded.model, [0, 3], layer=loaded.logits_layer)
    _assert_ran(maco_tf.visualize(objective, values_range=loaded.values_range, **STEPS), 2)


@needs_hub
def test_vit_token_objectives_on_class_and_patch_tokens():
    keras.utils.set_random_seed(0)
    classifier = _vit()
    loaded = load_hub_model(classifier)
    assert loaded.notes[0].endswith("[0, 255] -> [-1, 1]")
    encoder = f"{classifier.name}/{classifier.backbone.name}/vit_encoder"
    assert loaded.model.get_layer(classifier.name)  # the classifier, nested
    objective = (
        tokens.token_neuron(loaded.model, encoder, [0, 5])  # class token
        + tokens.token_channel(loaded.model, encoder, [1])  # mean of the 16 patch tokens
    )
    run = maco_tf.visualize(objective, values_range=loaded.values_range, **STEPS)
    _assert_ran(run, 2)


@needs_hub
def test_dinov2_backbone_without_head_takes_layer_and_token_objectives():
    keras.utils.set_random_seed(0)
    backbone, converter = _dinov2()
    with pytest.raises(HubModelError, match="values_range="):
        load_hub_model(backbone)  # no converter: the range is asked for, not assumed
    loaded = load_hub_model(backbone, converter=converter)
    assert loaded.logits_layer is None and loaded.class_names is None
    out = f"{backbone.name}/{backbone.layers[-1].name}"
    vectors = np.random.default_rng(0).normal(size=(2, 16)).astype("float32")
    objective = tokens.token_direction(loaded.model, out, vectors, tokens="cls") + direction(
        loaded.model, out, vectors[:1]
    )
    _assert_ran(maco_tf.visualize(objective, values_range=loaded.values_range, **STEPS), 2)


def _clip():
    """An image-text backbone: its vision tower (a dict input, blocks as layers) is used."""
    import keras_hub

    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=8, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
        image_shape=(SIZE, SIZE, 3),
    )  # fmt: skip
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=64, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
        intermediate_dim=32, max_sequence_length=8,
    )  # fmt: skip
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=8)
    converter = keras_hub.layers.CLIPImageConverter(image_size=(SIZE, SIZE), scale=1 / 255)
    return backbone, converter


@needs_hub
def test_clip_backbone_gives_its_vision_tower_with_blocks_as_layers():
    keras.utils.set_random_seed(0)
    backbone, converter = _clip()
    loaded = load_hub_model(backbone, converter=converter)
    tower = backbone.vision_encoder
    assert any("vision tower" in note for note in loaded.notes)
    assert loaded.notes[0].endswith("[0, 255] -> [0, 1]")
    block = f"{tower.name}/{tower.layers[3].name}"  # images, embedding, pre-norm, block 0
    assert block.endswith("encoder_block_0")
    objective = tokens.token_channel(loaded.model, block, [0, 1], tokens="patches")
    _assert_ran(maco_tf.visualize(objective, values_range=loaded.values_range, **STEPS), 2)


# ------------------------------------------------------------------------- presets, CLI


@pytest.fixture(scope="module")
def resnet_preset(resnet, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "tiny_resnet"
    resnet.save_to_preset(str(folder))
    return folder


@needs_hub
def test_classifier_preset_folder_loads_as_in_memory(resnet, resnet_preset):
    loaded = maco_tf.load_model(f"hub:{resnet_preset}")
    assert loaded.values_range == CONVERTER_VALUES_RANGE and loaded.input_size == (SIZE, SIZE)
    assert loaded.logits_layer.endswith("/predictions")
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    expected = resnet(resnet.preprocessor(images))  # calling a task skips its preprocessor
    np.testing.assert_allclose(loaded.model(images), expected, atol=1e-4)


@needs_hub
def test_backbone_preset_folder_gives_the_backbone(tmp_path):
    keras.utils.set_random_seed(0)
    backbone, converter = _dinov2()
    backbone.save_to_preset(str(tmp_path))
    converter.save_to_preset(str(tmp_path))
    loaded = maco_tf.load_model(f"hub:{tmp_path}")
    assert loaded.logits_layer is None and "image_conversion" in layer_paths(loaded.model)


@needs_hub
def test_cli_layers_and_visualize_a_preset(resnet_preset, tmp_path, capsys):
    assert main(["layers", "--model", f"hub:{resnet_preset}"]) == 0
    listed = capsys.readouterr().out
    # Keras numbers a second model of the same name in one process (res_net_backbone_1)
    assert re.search(r"res_net_backbone(_\d+)?/stack1_block0_out\t", listed), listed
    assert "image_conversion" in listed
    out = tmp_path / "out"
    args = ["visualize", "--model", f"hub:{resnet_preset}", "--classes", "1,2", "--steps", "2",
            "--crops", "1", "--size", "32", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["values_range"] == list(CONVERTER_VALUES_RANGE)
    assert len(list(out.glob("*_rgba.png"))) == 2


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network (an unreachable proxy) and an empty KerasHub cache."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))


@needs_hub
def test_uncached_preset_offline_is_one_line_and_exit_2(offline, capsys):
    with pytest.raises(HubModelError, match="not in the local cache") as caught:
        maco_tf.load_model("hub:resnet_18_imagenet")
    assert "\n" not in str(caught.value) and "hub:PATH" in str(caught.value)
    assert main(["layers", "--model", "hub:resnet_18_imagenet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not in the local cache" in err and len(err.splitlines()) == 1


@needs_hub
def test_unknown_preset_suggests_close_names():
    with pytest.raises(UnknownModelError, match="hub:resnet_50_imagenet"):
        maco_tf.load_model("hub:resnet_50_imagnet")


@needs_hub
def test_cached_preset_loads_offline(offline, resnet_preset):
    """A preset in KerasHub's cache (here: the tiny ResNet planted there) needs no network."""
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle
    from keras_hub.src.utils.preset_utils import BUILTIN_PRESETS

    handle = BUILTIN_PRESETS["resnet_18_imagenet"]["kaggle_handle"].removeprefix("kaggle://")
    handle = parse_model_handle(handle)
    cache = Cache()
    for file in resnet_preset.iterdir():
        target = cache.get_path(handle, file.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(file, target)
        cache.mark_as_complete(handle, file.name)
    loaded = maco_tf.load_model("hub:resnet_18_imagenet")
    assert loaded.identity == "hub:resnet_18_imagenet" and loaded.input_size == (SIZE, SIZE)

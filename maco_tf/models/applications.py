"""The ``keras.applications`` models: how each is built, recognised and fed.

One table, :data:`APPLICATIONS`, serves both directions: building an application by name
(:func:`maco_tf.models.loading.load_model`) and recognising one in a saved or in-memory model
(:func:`maco_tf.models.contract.infer_contract`), from its name and a few of its layer names.

Preprocessing conventions (``preprocessing``):

* ``"tf"``: the model takes ``[-1, 1]`` (MobileNet, MobileNetV2, ResNet*V2, Xception,
  Inception, NASNet).
* ``"raw"``: the model takes RGB ``[0, 255]`` and normalises inside (EfficientNet,
  EfficientNetV2, ConvNeXt, MobileNetV3); built with ``include_preprocessing=False`` it takes
  what ``without_own`` says instead.
* ``"caffe"`` (VGG, ResNet: BGR, minus the ImageNet mean) and ``"torch"`` (DenseNet: ImageNet
  mean and std): a preprocessing layer is put in front, so that the model takes RGB
  ``[0, 255]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras

__all__ = ["APPLICATIONS", "PREPROCESSING_RANGES", "Application", "ImageNetPreprocessing"]

_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

#: Input range of each preprocessing convention, once its layer (if any) is in front.
PREPROCESSING_RANGES: Mapping[str, tuple[float, float]] = {
    "tf": (-1.0, 1.0),
    "raw": (0.0, 255.0),
    "caffe": (0.0, 255.0),
    "torch": (0.0, 255.0),
}


@dataclass(frozen=True)
class Application:
    """One ``keras.applications`` constructor: its input convention and how to recognise it.

    Attributes
    ----------
    constructor
        Name in ``keras.applications`` (``"ResNet50V2"``).
    preprocessing
        ``"tf"``, ``"raw"``, ``"caffe"`` or ``"torch"`` (see the module docstring).
    input_size
        Side of the images it was trained on.
    pattern
        Regular expression the model's name matches (case-insensitive, whole name).
    signature
        Layer names the model has (tells it from a user's model of the same name).
    without_own
        For ``"raw"``: the convention when built without its own preprocessing layers.
    """

    constructor: str
    preprocessing: str
    input_size: int
    pattern: str
    signature: tuple[str, ...]
    without_own: str | None = None

    def matches(self, name: str, layer_names: Sequence[str] | set[str]) -> bool:
        """True when a model of this name and these layer names is this application."""
        names = set(layer_names)
        return bool(re.fullmatch(self.pattern, name, re.IGNORECASE)) and all(
            layer in names for layer in self.signature
        )


def _app(
    constructor: str,
    preprocessing: str,
    size: int,
    pattern: str,
    signature: tuple[str, ...],
    without_own: str | None = None,
) -> tuple[str, Application]:
    return constructor, Application(
        constructor, preprocessing, size, pattern, signature, without_own
    )


_RESNET = ("conv1_conv", "conv2_block1_out")
_EFFICIENTNET_SIZES = (224, 240, 260, 300, 380, 456, 528, 600)
_EFFICIENTNET_V2_SIZES = {"B0": 224, "B1": 240, "B2": 260, "B3": 300, "S": 384, "M": 480, "L": 480}

#: Known ``keras.applications`` constructors, by constructor name.
APPLICATIONS: Mapping[str, Application] = dict(
    [
        _app("Xception", "tf", 299, r"xception", ("block1_conv1", "block14_sepconv2")),
        _app("InceptionV3", "tf", 299, r"inception_v3", ("mixed10",)),
        _app("InceptionResNetV2", "tf", 299, r"inception_resnet_v2", ("conv_7b",)),
        _app("MobileNet", "tf", 224, r"mobilenet_[\d.]+_\d+", ("conv1", "conv_dw_1")),
        _app("MobileNetV2", "tf", 224, r"mobilenetv2_[\d.]+_\d+", ("Conv1", "block_1_expand")),
        *[
            _app(f"ResNet{d}V2", "tf", 224, f"resnet{d}v2", (*_RESNET, "post_bn"))
            for d in (50, 101, 152)
        ],
        _app("NASNetMobile", "tf", 224, r"nasnet_mobile", ("stem_conv1",)),
        _app("NASNetLarge", "tf", 331, r"nasnet_large", ("stem_conv1",)),
        *[
            _app(f"VGG{d}", "caffe", 224, f"vgg{d}", ("block1_conv1", "block5_conv3"))
            for d in (16, 19)
        ],
        *[_app(f"ResNet{d}", "caffe", 224, f"resnet{d}", _RESNET) for d in (50, 101, 152)],
        *[
            _app(f"DenseNet{d}", "torch", 224, f"densenet{d}", ("conv1_conv", "pool1"))
            for d in (121, 169, 201)
        ],
        *[
            _app(f"EfficientNetB{i}", "raw", size, f"efficientnetb{i}", ("stem_conv",), "raw")
            for i, size in enumerate(_EFFICIENTNET_SIZES)
        ],
        *[
            _app(f"EfficientNetV2{v}", "raw", size, f"efficientnetv2-{v}", ("stem_conv",), "tf")
            for v, size in _EFFICIENTNET_V2_SIZES.items()
        ],
        *[
            _app(f"ConvNeXt{v}", "raw", 224, f"convnext_{v}", (), "torch")
            for v in ("Tiny", "Small", "Base", "Large", "XLarge")
        ],
        *[
            _app(f"MobileNetV3{v}", "raw", 224, f"mobilenetv3{v}", ("conv", "conv_bn"), "tf")
            for v in ("Small", "Large")
        ],
    ]
)


@keras.saving.register_keras_serializable(package="maco_tf")
class ImageNetPreprocessing(keras.layers.Layer):
    """RGB ``[0, 255]`` to the input a Keras application expects (``"caffe"`` or ``"torch"``).

    ``"caffe"``: RGB to BGR, minus the ImageNet BGR mean (VGG, ResNet).
    ``"torch"``: scaled to ``[0, 1]``, minus mean, divided by std per channel (DenseNet).

    Parameters
    ----------
    mode
        ``"caffe"`` or ``"torch"``.
    """

    def __init__(self, mode: str = "caffe", **kwargs: object) -> None:
        super().__init__(**kwargs)
        if mode not in ("caffe", "torch"):
            raise ValueError(f"mode must be 'caffe' or 'torch', got {mode!r}")
        self.mode = mode

    def call(self, inputs):  # noqa: D102
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return keras.ops.flip(x, axis=-1) - keras.ops.convert_to_tensor(_CAFFE_MEAN_BGR)
        mean = keras.ops.convert_to_tensor(_IMAGENET_MEAN_RGB)
        std = keras.ops.convert_to_tensor(_IMAGENET_STD_RGB)
        return (x / 255.0 - mean) / std

    def compute_output_shape(self, input_shape):  # noqa: D102
        return input_shape

    def get_config(self) -> dict:  # noqa: D102
        return {**super().get_config(), "mode": self.mode}

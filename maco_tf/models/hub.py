"""KerasHub models: ``load_model("hub:resnet_50_imagenet")``, ``--model hub:PRESET``.

A KerasHub preset (a built-in name, a ``kaggle://`` or ``hf://`` handle, or a local preset
folder) holds a backbone, often an image-classifier head, and an *image converter* that states
the preprocessing: ``resized_pixels * scale + offset``, ``scale`` and ``offset`` global or per
channel (ImageNet mean/std folded in). KerasHub converters take RGB pixels in ``[0, 255]``.

The model maco_tf optimises is::

    image (H, W, 3) in [0, 255]  ->  ImageConversion(scale, offset)  ->  classifier or backbone

so the image lives in ``[0, 255]`` (the loaded ``values_range``) whatever the network expects,
and the converter's affine map is a layer of the model (omitted when the converter passes
pixels unchanged). ``H, W`` is the backbone's fixed input size, else ``input_size``, else the
converter's ``image_size``, else 224.

* An image-classifier preset gives the classifier: class objectives maximise its logits
  (``<classifier>/predictions``; a softmax head is made linear, with a note).
* A preset without a classifier head gives the backbone alone, for layer, channel, direction and
  token objectives (:mod:`maco_tf.targets`, :mod:`maco_tf.targets.tokens`); of an image-text
  backbone (CLIP, SigLIP), its vision tower.
* Layers are addressed by path into the nested classifier and backbone, e.g.
  ``"res_net_image_classifier/res_net_backbone/stack3_block2_out"`` (``maco-tf layers --model
  hub:PRESET`` lists them). A transformer's encoder is one KerasHub layer: its blocks are not
  separate paths, the encoder's output (and the embeddings') are.

In-memory KerasHub objects work too: an ``ImageClassifier`` task (its preprocessor's converter
is used) or a ``Backbone`` (give its ``converter``, or ``values_range``).

``keras-hub`` is an optional extra (``pip install maco_tf[hub]``), imported only here and only
when a KerasHub model is asked for. Presets download through KerasHub (Kaggle or Hugging Face)
on first use and are read from its cache afterwards; offline, a preset that is not cached is a
:class:`HubModelError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from maco_tf.checks import check_values_range
from maco_tf.errors import format_suggestions, suggest
from maco_tf.models.layers import is_softmax_activation
from maco_tf.models.loaded import LoadedModel, ModelLoadError, UnknownModelError
from maco_tf.models.zoo import get_imagenet_classes

__all__ = [
    "CONVERTER_VALUES_RANGE",
    "HUB_PREFIX",
    "HubModelError",
    "ImageConversion",
    "converter_affine",
    "is_hub_model",
    "load_hub_model",
]

#: Prefix of a KerasHub preset in a model name: ``hub:resnet_50_imagenet``.
HUB_PREFIX = "hub:"
#: Range of the pixels a KerasHub image converter takes (and of the images optimised).
CONVERTER_VALUES_RANGE = (0.0, 255.0)
#: Input size used when neither the converter nor the backbone fixes one.
DEFAULT_HUB_INPUT_SIZE = 224

_INSTALL = "pip install maco_tf[hub]"


class HubModelError(ModelLoadError):
    """A KerasHub model cannot be loaded: keras-hub missing, preset not cached or unusable."""


def _keras_hub():
    """The keras_hub module, or :class:`HubModelError` naming the extra to install."""
    try:
        import keras_hub
    except ImportError as exc:
        raise HubModelError(
            f"KerasHub models need the keras-hub package, which is not installed "
            f"({type(exc).__name__}: {exc}); install it with: {_INSTALL}"
        ) from exc
    return keras_hub


def is_hub_model(spec: object) -> bool:
    """True for a ``"hub:PRESET"`` name or an in-memory KerasHub model (no keras_hub import).

    Parameters
    ----------
    spec
        What was given to :func:`maco_tf.load_model`.

    Returns
    -------
    hub
        Whether :func:`load_hub_model` should load it.
    """
    if isinstance(spec, str):
        return spec.strip().lower().startswith(HUB_PREFIX)
    return any(cls.__module__.split(".")[0] == "keras_hub" for cls in type(spec).__mro__)


# ------------------------------------------------------------------------- converter


def _per_channel(value: object, channels: int, name: str, neutral: float) -> tuple[float, ...]:
    if value is None:
        return (neutral,) * channels
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, channels)
    if values.size != channels or not np.all(np.isfinite(values)):
        raise HubModelError(
            f"the image converter's {name} {value!r} is not one finite number or one per "
            f"channel ({channels})"
        )
    return tuple(float(v) for v in values)


def converter_affine(
    converter: object, channels: int = 3
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The per-channel ``(scale, offset)`` of a KerasHub image converter, None for identity.

    A converter maps pixels ``x`` in ``[0, 255]`` to ``x * scale + offset`` (either may be
    None: skipped); ImageNet mean/std appear as per-channel values.

    Parameters
    ----------
    converter
        A ``keras_hub.layers.ImageConverter`` (anything with ``scale`` and ``offset``).
    channels
        Channels of the images.

    Returns
    -------
    affine
        ``(scale, offset)``, one float per channel, or None when the converter changes nothing.

    Raises
    ------
    HubModelError
        For a scale or offset that is neither a number nor one per channel.
    """
    scale, offset = getattr(converter, "scale", None), getattr(converter, "offset", None)
    if scale is None and offset is None:
        return None
    return (
        _per_channel(scale, channels, "scale", 1.0),
        _per_channel(offset, channels, "offset", 0.0),
    )


@keras.saving.register_keras_serializable(package="maco_tf")
class ImageConversion(keras.layers.Layer):
    """``x * scale + offset`` per channel: a KerasHub image converter's value mapping.

    Parameters
    ----------
    scale, offset
        One float per channel.
    """

    def __init__(self, scale: Sequence[float], offset: Sequence[float], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.scale = tuple(float(s) for s in scale)
        self.offset = tuple(float(o) for o in offset)

    def call(self, inputs):  # noqa: D102
        x = keras.ops.cast(inputs, self.compute_dtype)
        return x * keras.ops.convert_to_tensor(self.scale) + keras.ops.convert_to_tensor(
            self.offset
        )

    def compute_output_shape(self, input_shape):  # noqa: D102
        return input_shape

    def get_config(self) -> dict:  # noqa: D102
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _describe_affine(affine: tuple[tuple[float, ...], tuple[float, ...]] | None) -> str:
    if affine is None:
        return "the image converter passes pixels unchanged: the network takes [0, 255]"
    scale, offset = (np.asarray(a) for a in affine)
    low, high = offset, 255.0 * scale + offset
    low, high = np.minimum(low, high), np.maximum(low, high)
    if np.allclose(low, low[0]) and np.allclose(high, high[0]):
        target = f"[{low[0]:.3g}, {high[0]:.3g}]"
    else:
        target = ", ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in zip(low, high, strict=True))
        target = f"per channel {target}"
    return f"image converter x * scale + offset as a first layer: [0, 255] -> {target}"


# --------------------------------------------------------------------------- loading


def _input_size(
    converter: object, backbone: keras.Model, input_size: int | Sequence[int] | None
) -> tuple[int, int]:
    """The backbone's fixed size, else ``input_size``, else the converter's, else 224."""
    shape = tuple(backbone.inputs[0].shape)
    if len(shape) == 4 and shape[1] is not None and shape[2] is not None:
        return int(shape[1]), int(shape[2])
    if input_size is not None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        return int(size[0]), int(size[1])
    size = getattr(converter, "image_size", None)
    if size is not None and None not in tuple(size):
        return int(size[0]), int(size[1])
    return DEFAULT_HUB_INPUT_SIZE, DEFAULT_HUB_INPUT_SIZE


def _linear_head(task: keras.Model) -> tuple[str | None, tuple[str, ...]]:
    """The classifier's logits layer path, its softmax made linear (with a note)."""
    dense = getattr(task, "output_dense", None)
    if dense is None:
        return None, ()
    notes = ()
    if is_softmax_activation(getattr(dense, "activation", None)):
        dense.activation = keras.activations.linear
        notes = (f"softmax of {dense.name!r} switched off in the classifier: classes use logits",)
    return f"{task.name}/{dense.name}", notes


def _assemble(
    network: keras.Model,
    backbone: keras.Model,
    converter: object,
    values_range: tuple[float, float] | None,
    input_size: int | Sequence[int] | None,
) -> tuple[keras.Model, tuple[float, float], tuple[str, ...]]:
    """The model image -> [conversion] -> network, its values range and notes."""
    channels = int(backbone.inputs[0].shape[-1])
    height, width = _input_size(converter, backbone, input_size)
    inputs = keras.Input((height, width, channels), name="image")
    x = inputs
    notes: tuple[str, ...] = ()
    if converter is not None:
        affine = converter_affine(converter, channels)
        if affine is not None:
            x = ImageConversion(*affine, name="image_conversion")(x)
        notes = (_describe_affine(affine),)
        values_range = values_range or CONVERTER_VALUES_RANGE
    elif values_range is None:
        raise HubModelError(
            f"KerasHub model {network.name!r} comes without an image converter, so its input "
            f"range is unknown: give converter= (a keras_hub ImageConverter) or values_range= "
            f"(command line: --values-range LOW,HIGH)"
        )
    structure = network.input
    if isinstance(structure, dict):  # CLIP/SigLIP vision towers take {"images": ...}
        x = {next(iter(structure)): x}
    model = keras.Model(inputs, network(x), name=f"hub_{network.name}")
    return model, values_range, notes


def _output_units(model: keras.Model) -> int | None:
    shape = tuple(model.outputs[0].shape)
    return int(shape[-1]) if len(shape) == 2 and shape[-1] is not None else None


def _from_objects(
    network: object,
    converter: object,
    values_range: tuple[float, float] | None,
    input_size: int | Sequence[int] | None,
    identity: str,
) -> LoadedModel:
    hub = _keras_hub()
    if isinstance(network, hub.models.ImageClassifier):
        task, backbone = network, network.backbone
        preprocessor = getattr(task, "preprocessor", None)
        converter = converter or getattr(preprocessor, "image_converter", None)
        logits, head_notes = _linear_head(task)
    elif isinstance(network, hub.models.Backbone):
        tower = getattr(network, "vision_encoder", None)  # image and text backbones (CLIP...)
        head_notes = ()
        if isinstance(tower, keras.Model):
            head_notes = (f"vision tower {tower.name!r} of {network.name!r} used",)
            network = tower
        task, backbone, logits = network, network, None
    else:
        raise HubModelError(
            f"KerasHub object {type(network).__name__} is neither an ImageClassifier nor a "
            f"Backbone; give an image classifier or an image backbone"
        )
    shape = tuple(backbone.inputs[0].shape) if len(backbone.inputs) == 1 else ()
    if len(shape) != 4:
        raise HubModelError(
            f"KerasHub model {task.name!r} does not take one image (inputs "
            f"{[tuple(i.shape) for i in backbone.inputs]}); give an image classifier or backbone"
        )
    model, values_range, notes = _assemble(task, backbone, converter, values_range, input_size)
    units = _output_units(model) if logits else None
    return LoadedModel(
        model=model,
        name=task.name,
        values_range=values_range,
        input_size=tuple(int(d) for d in model.inputs[0].shape[1:3]),
        logits_layer=logits,
        class_names=get_imagenet_classes() if units == 1000 else None,
        source="keras_hub",
        identity=identity or f"keras_hub:{type(task).__name__}:{task.name}",
        notes=notes + head_notes,
    )


def _preset_identity(preset: str) -> str:
    path = Path(preset).expanduser()
    if path.is_dir():
        config = path / "config.json"
        stat = (config if config.exists() else path).stat()
        return f"hub:{path.resolve()}|{stat.st_mtime_ns}"
    return f"hub:{preset}"


def _check_known(hub, preset: str) -> None:
    """Refuse a name that is neither a built-in preset, a handle nor a local folder."""
    if "://" in preset or Path(preset).expanduser().is_dir():
        return
    names = sorted(set(hub.models.ImageClassifier.presets) | set(hub.models.Backbone.presets))
    if preset in names:
        return
    if os.sep in preset or preset.startswith((".", "~", "/")):
        raise ModelLoadError(f"KerasHub preset folder '{preset}' not found")
    suggestions = [f"{HUB_PREFIX}{n}" for n in suggest(preset, names)]
    raise UnknownModelError(
        f"unknown KerasHub preset {preset!r} (not a built-in preset, a kaggle:// or hf:// "
        f"handle, or a preset folder){format_suggestions(suggestions)}"
    )


def _not_available(preset: str, exc: BaseException) -> HubModelError:
    text = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {text[0][:160] if text else ''}"
    return HubModelError(
        f"KerasHub preset {preset!r} is not in the local cache and could not be downloaded "
        f"({reason}); run once with network to cache it (KAGGLEHUB_CACHE sets where), or give "
        f"a local preset folder: --model hub:PATH"
    )


def _from_preset(
    preset: str, values_range: tuple[float, float] | None, input_size: int | Sequence[int] | None
) -> LoadedModel:
    hub = _keras_hub()
    _check_known(hub, preset)
    try:
        try:
            network = hub.models.ImageClassifier.from_preset(preset)
            converter = None
        except (ValueError, TypeError):  # no classifier head in this preset: its backbone
            network = hub.models.Backbone.from_preset(preset)
            try:
                converter = hub.layers.ImageConverter.from_preset(preset)
            except (ValueError, TypeError, FileNotFoundError):
                converter = None
    except OSError as exc:  # network failures (requests, kagglehub) are OSErrors
        raise _not_available(preset, exc) from exc
    except (ValueError, TypeError) as exc:
        raise HubModelError(
            f"KerasHub preset {preset!r} holds no image classifier or backbone usable here: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
        ) from exc
    return _from_objects(network, converter, values_range, input_size, _preset_identity(preset))


def load_hub_model(
    spec: object,
    *,
    converter: object = None,
    values_range: Sequence[float] | None = None,
    input_size: int | Sequence[int] | None = None,
) -> LoadedModel:
    """Load a KerasHub preset or wrap an in-memory KerasHub model (see the module docstring).

    Parameters
    ----------
    spec
        ``"hub:PRESET"`` (a built-in preset name, a ``kaggle://`` / ``hf://`` handle or a local
        preset folder), or a ``keras_hub.models.ImageClassifier`` or ``Backbone`` object.
    converter
        Image converter of an in-memory backbone (a classifier's own converter is used by
        default).
    values_range
        Range of the optimised image, fed to the converter layer; default ``(0, 255)``, the
        pixels KerasHub converters take. Needed for a backbone without converter.
    input_size
        Image size (int or ``(height, width)``) of a backbone whose input size is open;
        default the converter's ``image_size``, else 224.

    Returns
    -------
    loaded
        The model (image -> conversion -> classifier or backbone) and its contract; its
        ``notes`` say what the converter maps to.

    Raises
    ------
    HubModelError
        keras-hub missing (names ``pip install maco_tf[hub]``), a preset neither cached nor
        downloadable, a preset or object without an image classifier or backbone, a backbone
        without converter or ``values_range``.
    UnknownModelError
        For an unknown preset name (with close names).
    """
    values_range = None if values_range is None else check_values_range(values_range)
    if isinstance(spec, str):
        preset = spec.strip()[len(HUB_PREFIX) :].strip()
        if not preset:
            raise UnknownModelError(f"no preset after {HUB_PREFIX!r}: e.g. hub:resnet_50_imagenet")
        return _from_preset(preset, values_range, input_size)
    return _from_objects(spec, converter, values_range, input_size, "")

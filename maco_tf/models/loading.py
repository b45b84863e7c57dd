"""Load the model to visualise: the offline zoo, a Keras file, a SavedModel, or an application.

:func:`load_model` turns what a user types (``--model`` of the command line) into a
:class:`LoadedModel`: the Keras model plus the facts the optimisation needs (input value range,
input size, logits layer, class names).

Sources, tried in this order:

* ``None`` or ``"efficientnet-lite0"``: the bundled EfficientNet-Lite0 (offline, ImageNet
  weights, RGB ``[0, 255]`` at 224 px, logits layer ``"logits"``); ``"efficientnet-lite1"``:
  the bundled EfficientNet-Lite1 (the same at 240 px). ``-`` and ``_`` are interchangeable.
* An existing path: a ``.keras`` / ``.h5`` / ``.hdf5`` file (``keras.models.load_model``), or a
  TensorFlow SavedModel folder (wrapped with ``keras.layers.TFSMLayer``: only the model's output
  can be targeted, and its serving signature must have a fixed image size).
  For files the value range defaults to ``(0, 255)``; pass ``values_range`` (command line:
  ``--values-range LOW,HIGH``) when the model expects something else. A final softmax is
  removed so that class objectives maximise logits.
* A ``keras.applications`` name, case, ``-`` and ``_`` insensitive (``MobileNetV2``,
  ``mobilenet_v2``, ``resnet50``). ``weights="imagenet"`` makes Keras download the weights to
  ``~/.keras/models`` on first use (network needed once); ``weights=None`` builds a random
  model. The classifier is built without softmax, and each application's preprocessing is
  honoured: MobileNet/MobileNetV2/ResNet*V2/Inception/Xception/NASNet take ``[-1, 1]``;
  EfficientNet/EfficientNetV2/ConvNeXt/MobileNetV3 take RGB ``[0, 255]`` (they normalise
  inside); VGG/ResNet (caffe: BGR, mean-subtracted) and DenseNet (torch: ImageNet mean/std)
  get their preprocessing as a first layer, so the model takes RGB ``[0, 255]``.
* ``hub:PRESET`` or an in-memory KerasHub model: see :mod:`maco_tf.models.hub` (optional
  extra ``maco_tf[hub]``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

from maco_tf.checks import check_values_range
from maco_tf.errors import IncompatibleModelError, MacoError, format_suggestions, suggest
from maco_tf.models.layers import is_softmax_activation, is_softmax_layer
from maco_tf.models.zoo import (
    EFFICIENTNET_LITE_VARIANTS,
    ImageNetClasses,
    get_imagenet_classes,
)

__all__ = [
    "APPLICATIONS",
    "DEFAULT_FILE_VALUES_RANGE",
    "ZOO_NAME",
    "ZOO_NAMES",
    "ImageNetPreprocessing",
    "LoadedModel",
    "ModelLoadError",
    "UnknownModelError",
    "known_model_names",
    "load_model",
]

#: Name of the default offline zoo model.
ZOO_NAME = "efficientnet-lite0"
#: Names of the offline zoo models, the default first.
ZOO_NAMES = tuple(name.replace("_", "-") for name in EFFICIENTNET_LITE_VARIANTS)
#: Input range assumed for models loaded from a file or folder (override with values_range).
DEFAULT_FILE_VALUES_RANGE = (0.0, 255.0)

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class UnknownModelError(MacoError):
    """The model name is neither a file, a folder, the zoo model nor a Keras application."""


class ModelLoadError(MacoError):
    """A model file or folder is missing, unreadable or not usable."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for :func:`maco_tf.visualize`, with its preprocessing contract.

    Attributes
    ----------
    model
        The Keras model (single image input, fixed size).
    name
        Short name (``"efficientnet_lite0"``, ``"mobilenetv2_1.00_224"``, the file stem...).
    values_range
        Range of the input pixel values the model expects.
    input_size
        ``(height, width)`` of its input.
    logits_layer
        Layer (name or path) whose output are the class logits, or None if unknown.
    class_names
        ImageNet classes when the model classifies ImageNet, else None.
    source
        What was loaded: ``"zoo"``, ``"keras.applications"``, ``"file"`` or ``"savedmodel"``.
    identity
        A string identifying the weights (name and weights, or path, size and modification
        time): equal identities give equal images for equal settings.
    notes
        Changes made to the model while loading (softmax removed, output chosen...).
    """

    model: keras.Model
    name: str
    values_range: tuple[float, float]
    input_size: tuple[int, int]
    logits_layer: str | None
    class_names: ImageNetClasses | None = None
    source: str = "zoo"
    identity: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------- preprocessing layer


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


# ------------------------------------------------------------------ keras.applications


@dataclass(frozen=True)
class _Application:
    """How to build one ``keras.applications`` model and feed it."""

    constructor: str
    preprocessing: str  # "tf" ([-1, 1]), "raw" ([0, 255] inside), "caffe", "torch"
    input_size: int = 224


def _family(names: Sequence[str], preprocessing: str, size: int = 224) -> dict[str, _Application]:
    return {name: _Application(name, preprocessing, size) for name in names}


#: Known ``keras.applications`` constructors and their input convention.
APPLICATIONS: Mapping[str, _Application] = {
    **_family(["Xception", "InceptionV3", "InceptionResNetV2"], "tf", 299),
    **_family(["MobileNet", "MobileNetV2", "ResNet50V2", "ResNet101V2", "ResNet152V2"], "tf"),
    **_family(["NASNetMobile"], "tf"),
    **_family(["NASNetLarge"], "tf", 331),
    **_family(["VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152"], "caffe"),
    **_family(["DenseNet121", "DenseNet169", "DenseNet201"], "torch"),
    **_family([f"EfficientNetB{i}" for i in range(8)], "raw"),
    **_family([f"EfficientNetV2{v}" for v in ("B0", "B1", "B2", "B3", "S", "M", "L")], "raw"),
    **_family([f"ConvNeXt{v}" for v in ("Tiny", "Small", "Base", "Large", "XLarge")], "raw"),
    **_family(["MobileNetV3Small", "MobileNetV3Large"], "raw"),
}

_VALUES_RANGES = {
    "tf": (-1.0, 1.0),
    "raw": (0.0, 255.0),
    "caffe": (0.0, 255.0),
    "torch": (0.0, 255.0),
}


def _normalize(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", name).casefold()


def known_model_names() -> list[str]:
    """Model names :func:`load_model` accepts besides paths: the zoo models and applications."""
    return [*ZOO_NAMES] + [name for name in APPLICATIONS if hasattr(keras.applications, name)]


def _build_application(
    app: _Application, weights: str | None, kwargs: Mapping[str, object]
) -> keras.Model:
    constructor = getattr(keras.applications, app.constructor)
    options = {"weights": weights, "classifier_activation": None, **kwargs}
    if app.preprocessing in ("caffe", "torch"):
        shape = tuple(options.pop("input_shape", None) or (app.input_size, app.input_size, 3))
        inputs = keras.Input(shape, name="image")
        preprocessed = ImageNetPreprocessing(app.preprocessing, name="imagenet_preprocessing")(
            inputs
        )
        return constructor(input_tensor=preprocessed, **options)
    return constructor(**options)


def _load_application(
    app: _Application, weights: str | None, kwargs: Mapping[str, object]
) -> LoadedModel:
    try:
        model = _build_application(app, weights, kwargs)
    except (OSError, ValueError) as exc:
        hint = ""
        if weights == "imagenet":
            hint = " (the ImageNet weights are downloaded by Keras on first use: is there network?)"
        raise ModelLoadError(
            f"could not build keras.applications.{app.constructor}{hint}: {_first_line(exc)}"
        ) from exc
    height, width = _input_size(model)
    logits = model.layers[-1].name
    classes = get_imagenet_classes() if _output_units(model) == 1000 else None
    return LoadedModel(
        model=model,
        name=model.name,
        values_range=_VALUES_RANGES[app.preprocessing],
        input_size=(height, width),
        logits_layer=logits,
        class_names=classes,
        source="keras.applications",
        identity=f"keras.applications.{app.constructor}(weights={weights}, {dict(kwargs)})",
    )


# ------------------------------------------------------------------------ files, folders


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _input_size(model: keras.Model) -> tuple[int, int]:
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = ()
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise IncompatibleModelError(
            f"model {model.name!r} has input shape {shape or 'unknown'}; MACO needs a single "
            f"image input of fixed size (batch, height, width, channels)"
        )
    return int(shape[1]), int(shape[2])


def _output_units(model: keras.Model) -> int | None:
    try:
        shape = tuple(model.outputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return int(shape[-1]) if len(shape) == 2 and shape[-1] is not None else None


def _strip_softmax(model: keras.Model) -> tuple[keras.Model, str, tuple[str, ...]]:
    """Model whose last layer gives logits, its logits layer, and notes of what changed."""
    last = model.layers[-1]
    if is_softmax_layer(last):
        previous = last.input._keras_history[0] if hasattr(last.input, "_keras_history") else None
        if previous is not None and previous in model.layers:
            note = f"final softmax layer {last.name!r} skipped: classes use {previous.name!r}"
            return model, previous.name, (note,)
    if isinstance(last, keras.layers.Dense) and is_softmax_activation(last.activation):
        config = {**last.get_config(), "activation": "linear", "name": f"{last.name}_logits"}
        linear = keras.layers.Dense.from_config(config)
        logits = linear(last.input)
        linear.set_weights(last.get_weights())
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        rebuilt = keras.Model(inputs, logits, name=model.name)
        note = f"softmax of {last.name!r} removed: classes use the linear layer {linear.name!r}"
        return rebuilt, linear.name, (note,)
    return model, last.name, ()


def _file_identity(path: Path) -> str:
    stat = path.stat()
    if path.is_dir():
        pb = path / "saved_model.pb"
        stat = pb.stat() if pb.exists() else stat
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _check_container(path: Path) -> None:
    """Refuse files that are not the archive their suffix says (Keras's own error misleads)."""
    suffix = path.suffix.lower()
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"could not read model file '{path}': not a .keras archive (corrupt or truncated?)"
        )
    if suffix in (".h5", ".hdf5"):
        with open(path, "rb") as handle:
            if handle.read(8) != b"\x89HDF\r\n\x1a\n":
                raise ModelLoadError(
                    f"could not read model file '{path}': not an HDF5 file (corrupt or truncated?)"
                )


def _load_keras_file(path: Path) -> keras.Model:
    _check_container(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # any failure to read a user file is a user-facing error
        raise ModelLoadError(
            f"could not read model file '{path}' (a corrupt file, or custom layers that are not "
            f"registered?): {_first_line(exc)}"
        ) from exc


def _serving_signature(path: Path) -> tuple[str, str, tuple]:
    """Endpoint name, input name and input shape of a SavedModel's serving signature."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # any failure to read a user folder is a user-facing error
        raise ModelLoadError(f"could not read SavedModel '{path}': {_first_line(exc)}") from exc
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    endpoint = next((n for n in ("serving_default", "serve") if n in signatures), None)
    if endpoint is None:
        endpoint = next(iter(sorted(signatures)), None)
    if endpoint is None:
        raise ModelLoadError(f"SavedModel '{path}' has no serving signature to call")
    args, kwargs = signatures[endpoint].structured_input_signature
    specs = list(args) + list(kwargs.values())
    if len(specs) != 1:
        raise IncompatibleModelError(
            f"SavedModel '{path}' endpoint {endpoint!r} takes {len(specs)} inputs; MACO needs "
            f"a single image input"
        )
    return endpoint, next(iter(kwargs), "image"), tuple(specs[0].shape)


def _load_saved_model(path: Path) -> tuple[keras.Model, str, tuple[str, ...]]:
    endpoint, input_name, shape = _serving_signature(path)
    if len(shape) != 4 or any(dim is None for dim in shape[1:]):
        raise IncompatibleModelError(
            f"SavedModel '{path}' takes inputs of shape {shape}; MACO needs a fixed image size "
            f"(batch, height, width, channels): re-export it with a fixed-size input"
        )
    layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint, name="saved_model")
    inputs = keras.Input(shape[1:], name=re.sub(r"\W", "_", input_name) or "image")
    outputs = layer(inputs)
    notes = [
        f"SavedModel wrapped with TFSMLayer (endpoint {endpoint!r}): only 'logits' and "
        f"'saved_model' can be targeted"
    ]
    if isinstance(outputs, Mapping):
        keys = sorted(outputs)
        key = next((k for k in keys if "logit" in k.lower()), keys[0])
        if len(keys) > 1:
            notes.append(f"SavedModel output {key!r} used (of {', '.join(keys)})")
        outputs = outputs[key]
    logits = keras.layers.Identity(name="logits")(outputs)
    return keras.Model(inputs, logits, name=path.name or "saved_model"), "logits", tuple(notes)


def _load_path(path: Path, values_range: tuple[float, float] | None) -> LoadedModel:
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelLoadError(
                f"folder '{path}' is not a TensorFlow SavedModel (no saved_model.pb); give a "
                f".keras file, a SavedModel folder or a model name"
            )
        model, logits, notes = _load_saved_model(path)
        source = "savedmodel"
    else:
        model = _load_keras_file(path)
        if not isinstance(model, keras.Model):
            raise ModelLoadError(f"'{path}' does not hold a Keras model")
        model, logits, notes = _strip_softmax(model)
        source = "file"
    return LoadedModel(
        model=model,
        name=path.stem if path.is_file() else path.name,
        values_range=values_range or DEFAULT_FILE_VALUES_RANGE,
        input_size=_input_size(model),
        logits_layer=logits,
        class_names=get_imagenet_classes() if _output_units(model) == 1000 else None,
        source=source,
        identity=_file_identity(path),
        notes=notes,
    )


def _looks_like_path(spec: str) -> bool:
    return (
        os.sep in spec
        or "/" in spec
        or spec.startswith(("~", "."))
        or spec.lower().endswith((*_KERAS_SUFFIXES, ".pb"))
    )


# ------------------------------------------------------------------------------ public


def _zoo_name(spec: str | os.PathLike | None) -> str | None:
    """The zoo model ``spec`` names (None: the default), or None when it names none."""
    if spec is None:
        return ZOO_NAME
    key = _normalize(os.fspath(spec))
    return next((name for name in ZOO_NAMES if _normalize(name) == key), None)


def _load_zoo(name: str) -> LoadedModel:
    from maco_tf.models.zoo import load_efficientnet_lite

    spec = EFFICIENTNET_LITE_VARIANTS[name.replace("-", "_")].spec
    return LoadedModel(
        model=load_efficientnet_lite(spec.name),
        name=spec.name,
        values_range=spec.values_range,
        input_size=spec.input_size,
        logits_layer=spec.logits_layer,
        class_names=get_imagenet_classes(),
        source="zoo",
        identity=spec.name,
    )


def load_model(
    spec: str | os.PathLike | None = None,
    *,
    weights: str | None = "imagenet",
    values_range: Sequence[float] | None = None,
    application_kwargs: Mapping[str, object] | None = None,
) -> LoadedModel:
    """Load a model by name or path (see the module docstring for the sources).

    Parameters
    ----------
    spec
        None or ``"efficientnet-lite0"`` (the default offline zoo model),
        ``"efficientnet-lite1"`` (the larger one, 240 px), a path to a ``.keras`` /
        ``.h5`` file or a SavedModel folder, or a ``keras.applications`` name.
    weights
        Weights of a ``keras.applications`` model: ``"imagenet"`` (downloaded by Keras on
        first use) or None (random, e.g. for tests).
    values_range
        Override of the input range; default: the source's own (``(0, 255)`` for files).
    application_kwargs
        Extra arguments of the ``keras.applications`` constructor (``input_shape``,
        ``alpha``...).

    Returns
    -------
    loaded
        The model and its preprocessing contract.

    Raises
    ------
    UnknownModelError
        For an unknown name (with close names).
    ModelLoadError
        For a missing, unreadable or corrupt file or folder.
    IncompatibleModelError
        For a model without a single fixed-size image input.
    """
    values_range = None if values_range is None else check_values_range(values_range)
    from maco_tf.models import hub  # imports keras-hub (an optional extra) only when asked

    if hub.is_hub_model(spec):
        return hub.load_hub_model(spec, values_range=values_range)
    zoo_name = _zoo_name(spec)
    if zoo_name is not None:
        loaded = _load_zoo(zoo_name)
    else:
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if path.exists():
            return _load_path(path, values_range)
        if _looks_like_path(text):
            raise ModelLoadError(f"model file or folder '{text}' not found")
        loaded = _load_by_name(text, weights, application_kwargs or {})
    if values_range is not None:
        loaded = dataclasses.replace(loaded, values_range=values_range)
    return loaded


def _load_by_name(name: str, weights: str | None, kwargs: Mapping[str, object]) -> LoadedModel:
    by_key = {_normalize(n): n for n in known_model_names()}
    found = by_key.get(_normalize(name))
    if found is None:
        suggestions = [by_key[k] for k in suggest(_normalize(name), list(by_key))]
        raise UnknownModelError(
            f"unknown model {name!r} (not a file, folder or known model name)"
            f"{format_suggestions(suggestions)}"
        )
    return _load_application(APPLICATIONS[found], weights, kwargs)

"""Load the model to visualise: the offline zoo, a Keras file, a SavedModel, or an application.

:func:`load_model` turns what a user types (``--model`` of the command line) into a
:class:`LoadedModel`: the Keras model plus the facts the optimisation needs (input value range,
input size, logits layer, class names).

Sources, tried in this order:

* ``None`` or ``"efficientnet-lite0"``: the bundled EfficientNet-Lite0 (offline, ImageNet
  weights, RGB ``[0, 255]`` at 224 px, logits layer ``"logits"``); ``"efficientnet-lite1"``:
  the bundled EfficientNet-Lite1 (the same at 240 px). ``-`` and ``_`` are interchangeable.
* A Keras model in memory (functional, Sequential, or subclassed: traced into a functional
  graph on a ``keras.Input``, see :func:`maco_tf.models.graphs.as_functional`).
* An existing path: a ``.keras`` / ``.h5`` / ``.hdf5`` file (``keras.models.load_model``,
  with ``custom_objects``: command line ``--custom-objects module.py``), or a TensorFlow
  SavedModel folder (wrapped with ``keras.layers.TFSMLayer``: only the model's output can be
  targeted, and its serving signature must have a fixed image size).
* A ``keras.applications`` name, case, ``-`` and ``_`` insensitive (``MobileNetV2``,
  ``mobilenet_v2``, ``resnet50``). ``weights="imagenet"`` makes Keras download the weights to
  ``~/.keras/models`` on first use (network needed once); ``weights=None`` builds a random
  model, without softmax.
* ``hub:PRESET`` or an in-memory KerasHub model: see :mod:`maco_tf.models.hub` (optional
  extra ``maco_tf[hub]``).

For models in memory and files, the input contract is inferred
(:func:`maco_tf.models.contract.infer_contract`: the ``keras.applications`` model it is, or
the preprocessing layer at its input), else :class:`~maco_tf.models.contract.ModelContractError`
asks for ``values_range``; an explicit ``values_range`` always wins. VGG/ResNet (caffe) and
DenseNet (torch) get their preprocessing as a first layer, so that they take RGB ``[0, 255]``.
Then: one image input (several are refused), one output (the first, or ``output``), an open
``(None, None, C)`` input closed at ``input_size`` (else the size its family was trained at,
else 224), and a final softmax removed (:func:`maco_tf.models.logits.strip_softmax`) so that
class objectives maximise logits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

from maco_tf.checks import check_values_range
from maco_tf.errors import IncompatibleModelError, MacoError, format_suggestions, suggest
from maco_tf.models.applications import (
    APPLICATIONS,
    PREPROCESSING_RANGES,
    Application,
    ImageNetPreprocessing,
)
from maco_tf.models.contract import InputContract, explicit_contract, infer_contract
from maco_tf.models.custom import custom_objects as read_custom_objects
from maco_tf.models.graphs import (
    DEFAULT_INPUT_SIZE,
    as_functional,
    open_input,
    rebuild_on_input,
    single_image_model,
)
from maco_tf.models.loaded import LoadedModel, ModelLoadError, UnknownModelError
from maco_tf.models.logits import strip_softmax
from maco_tf.models.zoo import (
    EFFICIENTNET_LITE_VARIANTS,
    get_imagenet_classes,
)

__all__ = [
    "APPLICATIONS",
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

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


# ------------------------------------------------------------------ keras.applications


def _normalize(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", name).casefold()


def known_model_names() -> list[str]:
    """Model names :func:`load_model` accepts besides paths: the zoo models and applications."""
    return [*ZOO_NAMES] + [name for name in APPLICATIONS if hasattr(keras.applications, name)]


def _build_application(
    app: Application, weights: str | None, kwargs: Mapping[str, object], input_size: int | None
) -> keras.Model:
    constructor = getattr(keras.applications, app.constructor)
    options = {"weights": weights, "classifier_activation": None, **kwargs}
    side = input_size or app.input_size
    shape = tuple(options.pop("input_shape", None) or (side, side, 3))
    if app.preprocessing in ("caffe", "torch"):
        inputs = keras.Input(shape, name="image")
        preprocessed = ImageNetPreprocessing(app.preprocessing, name="imagenet_preprocessing")(
            inputs
        )
        return constructor(input_tensor=preprocessed, **options)
    return constructor(input_shape=shape, **options)


def _application_error(app: Application, weights: str | None, exc: Exception) -> ModelLoadError:
    text = str(exc)
    if weights == "imagenet" and ("URL fetch failure" in text or isinstance(exc, OSError)):
        return ModelLoadError(
            f"could not download the ImageNet weights of keras.applications.{app.constructor} "
            f"(no network?): connect once (Keras keeps them in ~/.keras/models), or give --model "
            f"a saved .keras file or efficientnet-lite0 (offline)"
        )
    return ModelLoadError(
        f"could not build keras.applications.{app.constructor}: {_first_line(exc)}; check "
        f"--input-size (Python: input_size=, application_kwargs=)"
    )


def _load_application(
    app: Application, weights: str | None, kwargs: Mapping[str, object], input_size: int | None
) -> LoadedModel:
    try:
        model = _build_application(app, weights, kwargs, input_size)
    except Exception as exc:  # Keras raises a bare Exception when a download fails
        raise _application_error(app, weights, exc) from exc
    height, width = _input_size(model)
    logits = model.layers[-1].name
    classes = get_imagenet_classes() if _output_units(model) == 1000 else None
    options = {**kwargs, **({"input_size": input_size} if input_size else {})}
    return LoadedModel(
        model=model,
        name=model.name,
        values_range=PREPROCESSING_RANGES[app.preprocessing],
        input_size=(height, width),
        logits_layer=logits,
        class_names=classes,
        source="keras.applications",
        identity=f"keras.applications.{app.constructor}(weights={weights}, {options})",
        range_reason=f"keras.applications {app.constructor}",
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


def _load_keras_file(path: Path, objects: Mapping[str, object]) -> keras.Model:
    _check_container(path)
    try:
        return keras.models.load_model(path, compile=False, custom_objects=dict(objects) or None)
    except Exception as exc:  # any failure to read a user file is a user-facing error
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", str(exc))
        if missing:
            raise ModelLoadError(
                f"model file '{path}' uses the custom class {missing.group(1)!r}, which is not "
                f"registered: give the Python file that defines it with --custom-objects "
                f"module.py (Python: custom_objects={{{missing.group(1)!r}: "
                f"{missing.group(1)}}})"
            ) from exc
        raise ModelLoadError(
            f"could not read model file '{path}' (a corrupt file, or custom layers: see "
            f"--custom-objects): {_first_line(exc)}"
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


def _load_saved_model(
    path: Path, input_size: int | None
) -> tuple[keras.Model, str, tuple[str, ...]]:
    endpoint, input_name, shape = _serving_signature(path)
    if len(shape) != 4 or shape[-1] is None:
        raise IncompatibleModelError(
            f"SavedModel '{path}' takes inputs of shape {shape}; MACO needs images (batch, "
            f"height, width, channels) with a known channel count: re-export it so"
        )
    notes = [
        f"SavedModel wrapped with TFSMLayer (endpoint {endpoint!r}): only 'logits' and "
        f"'saved_model' can be targeted"
    ]
    height, width = shape[1:3]
    if input_size is not None or height is None or width is None:
        side = input_size or DEFAULT_INPUT_SIZE
        if height is None or width is None:
            notes.append(f"open input size closed at {side}x{side} (--input-size to change)")
        height, width = side, side
    layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint, name="saved_model")
    inputs = keras.Input((height, width, shape[-1]), name=re.sub(r"\W", "_", input_name) or "image")
    outputs = layer(inputs)
    if isinstance(outputs, Mapping):
        keys = sorted(outputs)
        key = next((k for k in keys if "logit" in k.lower()), keys[0])
        if len(keys) > 1:
            notes.append(f"SavedModel output {key!r} used (of {', '.join(keys)})")
        outputs = outputs[key]
    logits = keras.layers.Identity(name="logits")(outputs)
    return keras.Model(inputs, logits, name=path.name or "saved_model"), "logits", tuple(notes)


@dataclass(frozen=True)
class _Options:
    """What the caller asked of a model in memory or in a file (see :func:`load_model`)."""

    values_range: tuple[float, float] | None = None
    input_size: int | None = None
    output: str | None = None
    custom_objects: Mapping[str, object] = field(default_factory=dict)


def _closed_size(model: keras.Model, contract: InputContract, options: _Options) -> tuple | None:
    """The input size to rebuild on (an open input, or ``input_size``), and None for none."""
    current = tuple(model.inputs[0].shape[1:3])
    if options.input_size is not None:
        side = options.input_size
    elif open_input(model):
        app = contract.application
        side = app.input_size if app is not None else DEFAULT_INPUT_SIZE
    else:
        return None
    return None if current == (side, side) else (side, side)


def _prepare(model: keras.Model, options: _Options) -> tuple[keras.Model, str, InputContract, list]:
    """A model ready for MACO (see the module docstring), its logits layer, contract, notes."""
    model = as_functional(model, options.input_size)
    model, notes = single_image_model(model, options.output)
    if options.values_range is not None:
        contract = explicit_contract(options.values_range, model)
    else:
        contract = infer_contract(model)
    notes = list(notes)
    size = _closed_size(model, contract, options)
    if size is not None and open_input(model):
        notes.append(f"open input size closed at {size[0]}x{size[1]} (--input-size to change)")
    front = None
    if contract.preprocessing is not None:
        front = ImageNetPreprocessing(contract.preprocessing, name="imagenet_preprocessing")
    if size is not None or front is not None:
        model = rebuild_on_input(model, size, front)
    model, logits, stripped = strip_softmax(model)
    return model, logits, contract, notes + list(stripped)


def _loaded(
    model: keras.Model, name: str, source: str, identity: str, options: _Options, notes=()
) -> LoadedModel:
    model, logits, contract, more = _prepare(model, options)
    return LoadedModel(
        model=model,
        name=name,
        values_range=contract.values_range,
        input_size=_input_size(model),
        logits_layer=logits,
        class_names=get_imagenet_classes() if _output_units(model) == 1000 else None,
        source=source,
        identity=identity,
        notes=(*notes, *more),
        range_reason=contract.reason,
    )


def _load_path(path: Path, options: _Options) -> LoadedModel:
    identity = _file_identity(path)
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelLoadError(
                f"folder '{path}' is not a TensorFlow SavedModel (no saved_model.pb); give a "
                f".keras file, a SavedModel folder or a model name"
            )
        model, _, notes = _load_saved_model(path, options.input_size)
        return _loaded(model, path.name, "savedmodel", identity, options, notes)
    model = _load_keras_file(path, options.custom_objects)
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"'{path}' does not hold a Keras model")
    return _loaded(model, path.stem, "file", identity, options)


def _memory_identity(model: keras.Model) -> str:
    """Name, class and a digest of the weights of a model in memory."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(keras.ops.convert_to_numpy(weight).tobytes())
    return f"memory:{model.name}|{type(model).__name__}|{digest.hexdigest()[:16]}"


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
        range_reason=f"the zoo's {spec.name}",
    )


def load_model(
    spec: str | os.PathLike | keras.Model | None = None,
    *,
    weights: str | None = "imagenet",
    values_range: Sequence[float] | None = None,
    input_size: int | None = None,
    custom_objects: str | os.PathLike | Mapping[str, object] | None = None,
    output: str | None = None,
    application_kwargs: Mapping[str, object] | None = None,
) -> LoadedModel:
    """Load a model by name or path, or take one in memory (see the module docstring).

    Parameters
    ----------
    spec
        None or ``"efficientnet-lite0"`` (the default offline zoo model),
        ``"efficientnet-lite1"`` (the larger one, 240 px), a Keras model in memory, a path to
        a ``.keras`` / ``.h5`` file or a SavedModel folder, or a ``keras.applications`` name.
    weights
        Weights of a ``keras.applications`` model: ``"imagenet"`` (downloaded by Keras on
        first use) or None (random, e.g. for tests).
    values_range
        The input range the model expects, which wins over the inferred one (command line:
        ``--values-range``).
    input_size
        Side of the square input to build the model on (command line: ``--input-size``);
        default: its own, or for an open ``(None, None, C)`` input the size its family was
        trained at, else 224.
    custom_objects
        The custom classes of a model file: ``{name: class}`` or a path to the Python file
        that defines them (command line: ``--custom-objects module.py``).
    output
        For a model with several outputs, the name of the one to use (command line:
        ``--output``); default: the first.
    application_kwargs
        Extra arguments of the ``keras.applications`` constructor (``input_shape``,
        ``alpha``...).

    Returns
    -------
    loaded
        The model and its preprocessing contract (``values_range`` and ``range_reason``).

    Raises
    ------
    UnknownModelError
        For an unknown name (with close names).
    ModelLoadError
        For a missing, unreadable or corrupt file or folder, unregistered custom classes, or
        ImageNet weights that cannot be downloaded.
    ModelContractError
        When the input range cannot be inferred and ``values_range`` is not given.
    IncompatibleModelError
        For a model with several inputs, no image input, an unknown ``output``, or a
        subclassed model that cannot be traced.
    """
    values_range = None if values_range is None else check_values_range(values_range)
    if input_size is not None and (isinstance(input_size, bool) or int(input_size) < 1):
        raise MacoError(f"input_size must be a positive int (--input-size N), got {input_size!r}")
    from maco_tf.models import hub  # imports keras-hub (an optional extra) only when asked

    if hub.is_hub_model(spec):
        return hub.load_hub_model(spec, values_range=values_range, input_size=input_size)
    options = _Options(values_range, input_size, output, read_custom_objects(custom_objects))
    if isinstance(spec, keras.Model):
        return _loaded(spec, spec.name, "memory", _memory_identity(spec), options)
    zoo_name = _zoo_name(spec)
    if zoo_name is not None:
        loaded = _load_zoo(zoo_name)
    else:
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if path.exists():
            return _load_path(path, options)
        if _looks_like_path(text):
            raise ModelLoadError(f"model file or folder '{text}' not found")
        loaded = _load_by_name(text, weights, application_kwargs or {}, input_size)
    if values_range is not None:
        reason = "--values-range / values_range="
        loaded = dataclasses.replace(loaded, values_range=values_range, range_reason=reason)
    return loaded


def _load_by_name(
    name: str, weights: str | None, kwargs: Mapping[str, object], input_size: int | None
) -> LoadedModel:
    by_key = {_normalize(n): n for n in known_model_names()}
    found = by_key.get(_normalize(name))
    if found is None:
        suggestions = [by_key[k] for k in suggest(_normalize(name), list(by_key))]
        raise UnknownModelError(
            f"unknown model {name!r} (not a file, folder or known model name)"
            f"{format_suggestions(suggestions)}"
        )
    return _load_application(APPLICATIONS[found], weights, kwargs, input_size)

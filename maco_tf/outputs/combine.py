"""One call for a class: its MACO image and transparency beside attributions of real images.

Feature visualization answers *what does the model look for?*; attribution methods answer
*where does it look in this image?*. :func:`explain_class` puts both side by side for one
class: it optimises (or takes) the class's MACO image with its transparency map, runs any
number of Xplique attribution methods (``Saliency``, ``GradCAM``, ``Rise``,
``IntegratedGradients``... or explainer instances you built) on real images of the class (and on
the MACO image itself), and returns a :class:`ClassExplanation` that plots and saves the lot.

Examples
--------
>>> from skimage import data
>>> from maco_tf.models.zoo import load_efficientnet_lite0
>>> model = load_efficientnet_lite0()          # RGB in [0, 255]
>>> explanation = explain_class(                # doctest: +SKIP
...     model, "espresso", [data.coffee()],
...     methods=("Saliency", "GradCAM", "RISE"),
...     method_kwargs={"RISE": {"nb_samples": 500}},
...     values_range=(0, 255),
...     visualization={"steps": 128, "size": 320},
... )
>>> explanation.plot().savefig("espresso.png")  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from maco_tf.checks import check_values_range
from maco_tf.core.config import RunConfig
from maco_tf.core.visualization import Visualization, visualize
from maco_tf.errors import (
    IncompatibleModelError,
    InvalidSettingError,
    MacoError,
    format_suggestions,
)
from maco_tf.errors import suggest as _suggest
from maco_tf.models.images import map_range, prepare_photos, resize_images, unwrap_model
from maco_tf.models.layers import (
    as_probabilities,
    find_layer,
    layer_label,
    layer_output,
    model_input_size,
)
from maco_tf.outputs.render import to_rgba, to_uint8

__all__ = [
    "DEFAULT_VISUALIZATION",
    "ClassExplanation",
    "UnknownAttributionMethodError",
    "attribution_methods",
    "explain_class",
    "last_conv_layer",
]

DEFAULT_VISUALIZATION: dict[str, object] = {
    "steps": 128,
    "crops": 16,
    "size": None,
    "box_size": (1.0, 0.6),
    "whole_views": 0,
    "noise": 0.08,
    "seed": 0,
}
"""Settings (:class:`~maco_tf.RunConfig` fields) of the MACO run :func:`explain_class` makes.

The image has the model's input size (its ``values_range`` is the model's). ``box_size`` is a
linear ramp from 1.0 to 0.6 of the side: attribution methods look at the *whole* image, and
with large crops the model also recognises the class in the whole MACO image (see
``docs/attributions.md``)."""
_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)


class UnknownAttributionMethodError(MacoError):
    """An attribution method name is not one of Xplique's explainers."""


def _key(name: str) -> str:
    """Normalised method name: ``"Grad-CAM"``, ``"grad_cam"`` and ``"GradCAM"`` are the same."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def attribution_methods() -> dict[str, type]:
    """Xplique's attribution explainers by class name (``"Saliency"``, ``"GradCAM"``...).

    Returns
    -------
    methods
        ``{class name: explainer class}`` for every class exported by ``xplique.attributions``
        that has an ``explain`` method.
    """
    from xplique import attributions

    found = {}
    for name in getattr(attributions, "__all__", dir(attributions)):
        item = getattr(attributions, name, None)
        if inspect.isclass(item) and callable(getattr(item, "explain", None)):
            found[name] = item
    return found


def _method_class(name: str) -> type:
    """The Xplique explainer class for a (case- and punctuation-insensitive) name."""
    known = attribution_methods()
    by_key = {_key(n): cls for n, cls in known.items()}
    cls = by_key.get(_key(name))
    if cls is None:
        hints = _suggest(name, known)
        raise UnknownAttributionMethodError(
            f"unknown attribution method {name!r}{format_suggestions(hints)} "
            f"(known: {', '.join(sorted(known))}; or pass an explainer instance)"
        )
    return cls


def last_conv_layer(model: keras.Model) -> str:
    """Name of the last convolution of ``model`` with a spatial output, for Grad-CAM.

    Only the model's own layers are searched (Grad-CAM reads the layer's output in the model's
    graph); for EfficientNet-Lite0 this is ``"top_conv"``.

    Parameters
    ----------
    model
        A Keras model.

    Returns
    -------
    name
        The layer's name.

    Raises
    ------
    IncompatibleModelError
        When the model has no convolution of its own (e.g. a backbone nested as one layer):
        pass ``conv_layer=`` to :func:`explain_class`, or use another method.
    """
    for layer in reversed(model.layers):
        if isinstance(layer, _CONV_TYPES) and len(layer.output.shape) == 4:
            return layer.name
    raise IncompatibleModelError(
        f"model {model.name!r} has no convolution layer of its own for Grad-CAM; pass "
        f"conv_layer= (a 4-D layer of the model), or choose methods without a conv layer"
    )


# ----------------------------------------------------------------------------- result


@dataclass
class ClassExplanation:
    """A class's MACO image and transparency beside attributions of real images of the class.

    Attributes
    ----------
    class_id, class_name
        The explained class (output unit of the logits layer) and its display name.
    image
        ``(H, W, C)`` the MACO image, in ``values_range``.
    transparency
        ``(H, W, C)`` its accumulated gradient magnitude
        (see :func:`maco_tf.outputs.render.importance`).
    images
        ``(N, h, w, C)`` the real images, cropped and resized to the model input, in
        ``values_range``: what the attribution methods and the model saw.
    attributions
        ``{method: (N, h, w) maps}`` in the order the methods were given.
    predictions
        ``(N, K)`` the model's outputs (logits layer) on ``images``.
    values_range
        The model's input range.
    visualization_attributions
        ``{method: (h, w) map}`` of each method on the MACO image resized to the model input,
        or None when not computed.
    visualization_prediction
        ``(K,)`` the model's outputs on the resized MACO image, or None.
    class_names
        Names indexed by class, for labels (ImageNet's for 1000-class models), or None.
    visualization
        The :class:`~maco_tf.Visualization` of the MACO run, when :func:`explain_class` made
        it or was given one.
    """

    class_id: int
    class_name: str
    image: np.ndarray
    transparency: np.ndarray
    images: np.ndarray
    attributions: dict[str, np.ndarray]
    predictions: np.ndarray
    values_range: tuple[float, float]
    visualization_attributions: dict[str, np.ndarray] | None = None
    visualization_prediction: np.ndarray | None = None
    class_names: Sequence[str] | None = field(default=None, repr=False)
    visualization: Visualization | None = field(default=None, repr=False)

    @property
    def methods(self) -> tuple[str, ...]:
        """Names of the attribution methods, in order."""
        return tuple(self.attributions)

    @property
    def probabilities(self) -> np.ndarray:
        """``(N, K)`` class probabilities: softmax of the predictions (unless already ones)."""
        return as_probabilities(self.predictions)

    @property
    def predicted_classes(self) -> np.ndarray:
        """``(N,)`` top-1 class of each real image."""
        return np.argmax(self.predictions, axis=-1)

    @property
    def class_probability(self) -> np.ndarray:
        """``(N,)`` probability of the explained class on each real image."""
        return self.probabilities[:, self.class_id]

    @property
    def visualization_probability(self) -> float | None:
        """Probability of the explained class on the (resized) MACO image, or None."""
        if self.visualization_prediction is None:
            return None
        return float(as_probabilities(self.visualization_prediction[None])[0, self.class_id])

    def label(self, class_id: int) -> str:
        """Display name of a class (its index when the names are unknown)."""
        if self.class_names is not None and 0 <= class_id < len(self.class_names):
            return str(self.class_names[class_id])
        return f"class {class_id}"

    def plot(
        self,
        cmap: str = "jet",
        alpha: float = 0.5,
        percentile: float = 99.5,
        absolute: bool = True,
        cell_size: float = 2.4,
        dpi: float | None = None,
    ):
        """Figure: the MACO image (transparency as alpha), then one row per real image.

        Row 0 shows the MACO image over white with its transparency as alpha, then each
        method's attribution of the MACO image (when computed). Each next row shows a real
        image, titled with the model's top-1 class and the explained class's probability, then
        each method's attribution as a heatmap over the image.

        Parameters
        ----------
        cmap
            Matplotlib colormap of the attribution heatmaps.
        alpha
            Opacity of the heatmaps over the images.
        percentile
            Attribution values above this percentile are clipped (per map) before scaling to
            [0, 1], so that a few extreme pixels do not flatten the rest.
        absolute
            Show the magnitude of signed attributions (Integrated Gradients, SmoothGrad...).
        cell_size
            Side of one panel, in inches.
        dpi
            Resolution of the figure; default matplotlib's ``figure.dpi``.

        Returns
        -------
        figure
            A ``matplotlib.figure.Figure`` (not registered with pyplot: display it in a
            notebook by returning it, or ``figure.savefig(path)``).
        """
        from matplotlib.figure import Figure

        methods = self.methods
        rows, cols = 1 + len(self.images), 1 + max(len(methods), 1)
        figure = Figure(
            figsize=(cell_size * cols, cell_size * rows * 1.15), dpi=dpi, layout="constrained"
        )
        axes = np.asarray(figure.subplots(rows, cols, squeeze=False))
        for ax in axes.flat:
            ax.set_axis_off()

        maco_title = f"MACO: {self.class_name}"
        if self.visualization_prediction is not None:
            top = self.label(int(np.argmax(self.visualization_prediction)))
            maco_title += f"\ntop-1: {top}, p={self.visualization_probability:.2f}"
        axes[0, 0].imshow(_over_white(to_rgba(self.image, self.transparency, self.values_range)))
        axes[0, 0].set_title(maco_title, fontsize=9)
        if self.visualization_attributions is not None:
            small = resize_images(self.image[None], self.images.shape[1:3])[0]
            small = to_uint8(small, self.values_range)
            for col, name in enumerate(methods, start=1):
                self._overlay(
                    axes[0, col],
                    small,
                    self.visualization_attributions[name],
                    cmap,
                    alpha,
                    percentile,
                    absolute,
                )
                axes[0, col].set_title(f"{name} (MACO)", fontsize=9)
        for row in range(len(self.images)):
            photo = to_uint8(self.images[row], self.values_range)
            if photo.shape[-1] == 1:
                photo = np.repeat(photo, 3, axis=-1)
            axes[row + 1, 0].imshow(photo)
            top = int(self.predicted_classes[row])
            axes[row + 1, 0].set_title(
                f"top-1: {self.label(top)}\np({self.class_name})={self.class_probability[row]:.2f}",
                fontsize=9,
            )
            for col, name in enumerate(methods, start=1):
                self._overlay(
                    axes[row + 1, col],
                    photo,
                    self.attributions[name][row],
                    cmap,
                    alpha,
                    percentile,
                    absolute,
                )
                axes[row + 1, col].set_title(name, fontsize=9)
        return figure

    @staticmethod
    def _overlay(ax, picture, attribution, cmap, alpha, percentile, absolute) -> None:
        if picture.shape[-1] == 1:
            picture = np.repeat(picture, 3, axis=-1)
        ax.imshow(picture)
        ax.imshow(
            _normalise(attribution, percentile, absolute),
            cmap=cmap,
            alpha=alpha,
            vmin=0.0,
            vmax=1.0,
        )

    def save(self, path: str | os.PathLike, **plot_kwargs: object) -> Path:
        """Save the figure of :meth:`plot` (``.png``, ``.pdf``...) or the arrays (``.npz``).

        Parameters
        ----------
        path
            Target file; its folder is created. A ``.npz`` path stores ``image``,
            ``transparency``, ``images``, ``predictions``, ``attributions/<method>`` and
            ``visualization_attributions/<method>`` arrays; any other suffix is a figure
            format matplotlib knows.
        **plot_kwargs
            Arguments of :meth:`plot`.

        Returns
        -------
        path
            The written file.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".npz":
            arrays = {
                "image": self.image,
                "transparency": self.transparency,
                "images": self.images,
                "predictions": self.predictions,
                "class_id": np.asarray(self.class_id),
                "values_range": np.asarray(self.values_range),
            }
            for name, maps in self.attributions.items():
                arrays[f"attributions/{name}"] = maps
            for name, maps in (self.visualization_attributions or {}).items():
                arrays[f"visualization_attributions/{name}"] = maps
            np.savez_compressed(path, **arrays)
            return path
        figure = self.plot(**plot_kwargs)
        figure.savefig(path, bbox_inches="tight")
        return path


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA uint8 image over white (as the MACO paper shows transparency)."""
    alpha = rgba[..., 3:4].astype(np.float64) / 255.0
    rgb = rgba[..., :3].astype(np.float64) * alpha + 255.0 * (1.0 - alpha)
    return np.round(rgb).astype(np.uint8)


def _normalise(attribution: np.ndarray, percentile: float, absolute: bool) -> np.ndarray:
    """An attribution map scaled to [0, 1] for display, as Xplique's ``plot_attributions``.

    Values are clipped to their ``[100 - percentile, percentile]`` percentiles, then mapped
    linearly (minimum to 0, maximum to 1): maps with a large offset, such as RISE's, still
    show their variations.
    """
    values = np.asarray(attribution, dtype=np.float64)
    values = np.where(np.isfinite(values), values, 0.0)
    if absolute:
        values = np.abs(values)
    low, high = np.percentile(values, 100.0 - percentile), np.percentile(values, percentile)
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((np.clip(values, low, high) - low) / (high - low)).astype(np.float32)


# ----------------------------------------------------------------------------- inputs


def _class_names(model: object, given: Sequence[str] | None, units: int):
    """Class names for titles: the given ones, a LoadedModel's, else ImageNet's for 1000 units."""
    if given is not None:
        return given
    if getattr(model, "class_names", None) is not None:
        return model.class_names
    if units == 1000:
        from maco_tf.models.zoo import get_imagenet_classes

        return get_imagenet_classes()
    return None


def _resolve_class(class_id: int | str, names: Sequence[str] | None, units: int) -> int:
    if isinstance(class_id, str):
        stripped = class_id.strip()
        if re.fullmatch(r"[+-]?\d+", stripped):
            class_id = int(stripped)
        elif units == 1000 and names is not None and hasattr(names, "index"):
            from maco_tf.models.zoo import resolve_classes

            (class_id,) = resolve_classes(stripped)
        elif names is not None:
            matches = [i for i, name in enumerate(names) if str(name).lower() == stripped.lower()]
            if not matches:
                raise MacoError(
                    f"unknown class {class_id!r}"
                    f"{format_suggestions(_suggest(stripped, [str(n) for n in names]))}"
                )
            class_id = matches[0]
        else:
            raise MacoError(f"class {class_id!r} is a name but the model's classes have none")
    if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)):
        raise MacoError(f"class_id must be an integer or a class name, got {class_id!r}")
    if not 0 <= int(class_id) < units:
        raise MacoError(f"class {class_id} is out of range for {units} outputs (0-{units - 1})")
    return int(class_id)


def _scoring_model(model: keras.Model, logits_layer: str | int | None) -> tuple[keras.Model, str]:
    """The model cut at its logits layer (the model itself when that is its output)."""
    if logits_layer is None:
        names = {layer.name for layer in model.layers}
        logits_layer = "logits" if "logits" in names else model.layers[-1].name
    chain = find_layer(model, logits_layer)
    label = layer_label(model, logits_layer)
    if len(chain) == 1 and chain[0] is model.layers[-1] and len(model.outputs) == 1:
        return model, label
    scorer = keras.Model(
        model.inputs, layer_output(model, logits_layer), name=f"{model.name}_logits"
    )
    return scorer, label


def _explainers(
    methods: object,
    method_kwargs: Mapping[str, Mapping[str, object]] | None,
    model: keras.Model,
    conv_layer: str | int | None,
) -> dict[str, object]:
    """``{label: explainer}`` from names, classes, instances or a ``{name: kwargs}`` mapping."""
    if isinstance(methods, (str, bytes)) or not isinstance(methods, (Sequence, Mapping)):
        methods = [methods]
    items = list(methods.items()) if isinstance(methods, Mapping) else [(m, None) for m in methods]
    if not items:
        raise InvalidSettingError("no attribution method given; e.g. methods=('Saliency',)")
    extra = {_key(str(k)): dict(v) for k, v in (method_kwargs or {}).items()}
    explainers: dict[str, object] = {}
    used_keys = set()
    for method, kwargs in items:
        if isinstance(method, str):
            cls, label = _method_class(method), method
        elif inspect.isclass(method):
            cls, label = method, method.__name__
        elif callable(getattr(method, "explain", None)):
            if kwargs:
                raise InvalidSettingError(
                    f"{type(method).__name__} is already built; its kwargs {kwargs!r} cannot apply"
                )
            explainers[_unique(type(method).__name__, explainers)] = method
            continue
        else:
            raise InvalidSettingError(
                f"methods must be Xplique method names, explainer classes or instances; got "
                f"{method!r}"
            )
        options = dict(kwargs or {})
        for key in (_key(label), _key(cls.__name__)):
            if key in extra:
                options = {**extra[key], **options}
                used_keys.add(key)
        parameters = inspect.signature(cls.__init__).parameters
        if "conv_layer" in parameters and options.get("conv_layer") is None:
            options["conv_layer"] = conv_layer if conv_layer is not None else last_conv_layer(model)
        try:
            explainers[_unique(label, explainers)] = cls(model, **options)
        except TypeError as exc:
            raise InvalidSettingError(
                f"cannot build {cls.__name__} with {options!r}: {exc}"
            ) from exc
    unused = set(extra) - used_keys
    if unused:
        raise InvalidSettingError(
            f"method_kwargs names methods that are not used: {', '.join(sorted(unused))}"
        )
    return explainers


def _unique(label: str, taken: Mapping[str, object]) -> str:
    if label not in taken:
        return label
    count = 2
    while f"{label} #{count}" in taken:
        count += 1
    return f"{label} #{count}"


def _maps(explanations: object, count: int) -> np.ndarray:
    """Attributions as ``(N, h, w)`` float32 (channels averaged)."""
    maps = np.asarray(explanations, dtype=np.float32)
    if maps.ndim == 4:
        maps = maps[..., 0] if maps.shape[-1] == 1 else maps.mean(axis=-1)
    if maps.ndim != 3 or maps.shape[0] != count:
        raise IncompatibleModelError(
            f"the attribution method returned shape {np.shape(explanations)}; expected "
            f"({count}, H, W[, C]) image attributions"
        )
    return maps


def _visualization_image(
    visualization: object,
    model: keras.Model,
    class_id: int,
    class_label: str,
    logits_label: str,
    values_range: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, Visualization | None]:
    """The MACO image and transparency (in the model's range), made or taken from the input."""
    if isinstance(visualization, Visualization):
        index = 0
        if len(visualization) > 1:
            matches = [i for i, name in enumerate(visualization.names) if name == class_label]
            if not matches:
                raise InvalidSettingError(
                    f"the visualization holds {len(visualization)} images "
                    f"({', '.join(visualization.names)}) and none is named {class_label!r}; "
                    f"pass (visualization.images[i], visualization.transparency[i])"
                )
            index = matches[0]
        image = map_range(visualization.images[index], visualization.values_range, values_range)
        return image, visualization.transparency[index], visualization
    if isinstance(visualization, tuple) and len(visualization) == 2:
        image, transparency = (np.asarray(v, dtype=np.float32) for v in visualization)
        if image.ndim != 3 or transparency.shape[:2] != image.shape[:2]:
            raise InvalidSettingError(
                f"visualization=(image, transparency) needs two (H, W, C) arrays; got shapes "
                f"{image.shape} and {transparency.shape}"
            )
        return image, transparency, None
    from maco_tf.targets.units import neuron

    config = _visualization_config(visualization, values_range)
    objective = neuron(model, logits_label, class_id, names=class_label)
    result = visualize(objective, config)
    return result.images[0], result.transparency[0], result


def _visualization_config(visualization: object, values_range: tuple[float, float]) -> RunConfig:
    """The one :class:`RunConfig` of the class's MACO run, in the model's value range."""
    if isinstance(visualization, RunConfig):
        return visualization.replace(values_range=values_range)
    if visualization is not None and not isinstance(visualization, Mapping):
        raise InvalidSettingError(
            "visualization must be None, a maco_tf.RunConfig, a dict of its settings, a "
            "maco_tf.Visualization or an (image, transparency) pair; got "
            f"{type(visualization).__name__}"
        )
    settings = dict(visualization or {})
    given = settings.pop("values_range", None)
    if given is not None and check_values_range(given) != values_range:
        raise InvalidSettingError(
            "visualization['values_range'] differs from values_range; give the model's range once"
        )
    return RunConfig(**DEFAULT_VISUALIZATION).replace(values_range=values_range, **settings)


# ----------------------------------------------------------------------------- entry point


def explain_class(
    model: object,
    class_id: int | str,
    images: object,
    methods: object = ("Saliency", "GradCAM"),
    *,
    values_range: Sequence[float] | None = None,
    images_range: Sequence[float] | None = None,
    visualization: Visualization | Mapping[str, object] | tuple | None = None,
    method_kwargs: Mapping[str, Mapping[str, object]] | None = None,
    logits_layer: str | int | None = None,
    conv_layer: str | int | None = None,
    class_names: Sequence[str] | None = None,
    explain_visualization: bool = True,
    crop: bool = True,
) -> ClassExplanation:
    """MACO image of a class with its transparency, beside Xplique attributions of real images.

    Parameters
    ----------
    model
        A Keras classifier (single image input of fixed size) or a
        :class:`~maco_tf.LoadedModel` (its range, logits layer and class names are then used).
    class_id
        The class (output unit of the logits layer); an ImageNet class name (``"espresso"``)
        for 1000-class models, or a name of ``class_names``.
    images
        Real images of the class: an array ``(N, H, W, C)``, one image ``(H, W, C)``, or a
        list of images of any sizes. Each is centre-cropped to the model's aspect ratio (see
        ``crop``) and resized to its input size.
    methods
        Xplique attribution methods: names of ``xplique.attributions`` classes
        (``"Saliency"``, ``"GradCAM"``, ``"GradCAMPP"``, ``"Rise"``/``"RISE"``,
        ``"IntegratedGradients"``, ``"SmoothGrad"``, ``"Occlusion"``... case-insensitive),
        explainer classes, explainer instances built on the model, or a mapping
        ``{name: constructor kwargs}``. Methods with a ``conv_layer`` argument (Grad-CAM,
        Grad-CAM++) get ``conv_layer`` or, by default, :func:`last_conv_layer`.
    values_range
        ``(low, high)`` range of the model's inputs (``(0, 255)`` for the zoo's
        EfficientNet-Lite0); default the :class:`~maco_tf.LoadedModel`'s, else ``(-1, 1)``
        as :func:`maco_tf.maco`.
    images_range
        Range of the given ``images``; default ``(0, 255)`` for uint8 images, else
        ``values_range``. They are mapped linearly to ``values_range``.
    visualization
        None: optimise the class's MACO image with :data:`DEFAULT_VISUALIZATION`; a
        :class:`~maco_tf.RunConfig` to use instead; a dict of :class:`~maco_tf.RunConfig`
        fields overriding :data:`DEFAULT_VISUALIZATION` (``steps``, ``size``, ``seed``...); a
        :class:`~maco_tf.Visualization` (one image, or the one named after the class) or an
        ``(image, transparency)`` pair made earlier.
    method_kwargs
        Constructor arguments per method name, e.g. ``{"RISE": {"nb_samples": 500}}`` (RISE
        runs 4000 forward passes per image by default: slow on a CPU).
    logits_layer
        Layer whose units are the classes (pre-softmax); default ``"logits"`` when the model
        has such a layer, else its last layer. Attributions explain this layer's output too.
    conv_layer
        Layer for Grad-CAM-like methods; default the model's last convolution.
    class_names
        Names indexed by class, for titles; default ImageNet's for 1000-class models.
    explain_visualization
        Also run each method on the MACO image (resized to the model input).
    crop
        Centre-crop each real image to the model's aspect ratio before resizing (else the
        image is stretched).

    Returns
    -------
    explanation
        A :class:`ClassExplanation`; ``.plot()`` draws it, ``.save(path)`` writes it.

    Raises
    ------
    UnknownAttributionMethodError
        For a method name that is not an Xplique explainer (with suggestions).
    maco_tf.MacoError
        For other bad input (class out of range, images of the wrong channel count...).
    """
    keras_model, declared_range, declared_logits = unwrap_model(model)
    height, width, channels = model_input_size(keras_model)
    if values_range is None:
        values_range = declared_range or (-1.0, 1.0)
    values_range = check_values_range(values_range, "values_range")
    if logits_layer is None:
        logits_layer = declared_logits
    scorer, logits_label = _scoring_model(keras_model, logits_layer)
    units = int(np.prod(scorer.outputs[0].shape[1:]))
    if len(scorer.outputs[0].shape) != 2:
        raise IncompatibleModelError(
            f"layer {logits_label!r} has output shape {tuple(scorer.outputs[0].shape)}; "
            f"explain_class needs class scores (batch, classes): pass logits_layer="
        )
    names = _class_names(model, class_names, units)
    class_id = _resolve_class(class_id, names, units)
    class_label = (
        str(names[class_id]) if names is not None and class_id < len(names) else f"class {class_id}"
    )

    photos = prepare_photos(images, (height, width, channels), values_range, images_range, crop)
    explainers = _explainers(methods, method_kwargs, scorer, conv_layer)
    image, transparency, run = _visualization_image(
        visualization, keras_model, class_id, class_label, logits_label, values_range
    )
    if image.shape[-1] != channels:
        raise InvalidSettingError(
            f"the MACO image has {image.shape[-1]} channels; the model takes {channels}"
        )

    inputs = photos
    if explain_visualization:
        inputs = np.concatenate([resize_images(image[None], (height, width)), photos])
    targets = np.zeros((len(inputs), units), dtype=np.float32)
    targets[:, class_id] = 1.0
    predictions = np.asarray(scorer.predict(inputs, verbose=0), dtype=np.float32)
    attributions, on_visualization = {}, {}
    for label, explainer in explainers.items():
        maps = _maps(explainer.explain(inputs, targets), len(inputs))
        if explain_visualization:
            on_visualization[label], maps = maps[0], maps[1:]
        attributions[label] = maps
    first = 1 if explain_visualization else 0
    return ClassExplanation(
        class_id=class_id,
        class_name=class_label,
        image=np.asarray(image, dtype=np.float32),
        transparency=np.asarray(transparency, dtype=np.float32),
        images=photos,
        attributions=attributions,
        predictions=predictions[first:],
        values_range=values_range,
        visualization_attributions=on_visualization if explain_visualization else None,
        visualization_prediction=predictions[0] if explain_visualization else None,
        class_names=names,
        visualization=run,
    )

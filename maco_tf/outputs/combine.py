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
from maco_tf.outputs.attributions import attribution_maps, build_explainers
from maco_tf.outputs.figures import HeatmapStyle, plot_explanation

__all__ = ["DEFAULT_VISUALIZATION", "ClassExplanation", "explain_class"]

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
        each method's attribution as a heatmap over the image (drawn by
        :func:`~maco_tf.outputs.figures.plot_explanation`).

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
        style = HeatmapStyle(cmap=cmap, alpha=alpha, percentile=percentile, absolute=absolute)
        return plot_explanation(self, style, cell_size=cell_size, dpi=dpi)

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
        Grad-CAM++) get ``conv_layer`` or, by default,
        :func:`~maco_tf.outputs.attributions.last_conv_layer`.
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
    maco_tf.outputs.attributions.UnknownAttributionMethodError
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
    explainers = build_explainers(methods, method_kwargs, scorer, conv_layer)
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
        maps = attribution_maps(explainer.explain(inputs, targets), len(inputs))
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

"""maco_tf: MACO feature visualization for any Keras model, batched and compiled.

``from maco_tf import maco`` is a drop-in replacement for
``from xplique.features_visualizations import maco``.
"""

from .api import (
    DeadObjectiveWarning,
    Visualization,
    clear_cache,
    default_optimizer,
    fourier,
    maco,
    pixel,
    visualize,
)
from .errors import (
    IncompatibleModelError,
    InvalidSettingError,
    MacoError,
    SpectrumError,
    UnknownLayerError,
)
from .layers import layer_output, layer_paths
from .metrics import (
    MetricInputError,
    RecognitionScores,
    feature_extractor,
    fid,
    plausibility,
    self_recognition,
    transferability,
)
from .models import LoadedModel, load_model
from .render import heatmap, importance, save_png, save_visualization, to_rgba, to_uint8

__version__ = "0.1.0"

__all__ = [
    "DeadObjectiveWarning",
    "IncompatibleModelError",
    "LoadedModel",
    "MetricInputError",
    "RecognitionScores",
    "InvalidSettingError",
    "MacoError",
    "SpectrumError",
    "UnknownLayerError",
    "Visualization",
    "clear_cache",
    "default_optimizer",
    "feature_extractor",
    "fid",
    "fourier",
    "heatmap",
    "importance",
    "layer_output",
    "layer_paths",
    "load_model",
    "maco",
    "pixel",
    "plausibility",
    "save_png",
    "save_visualization",
    "self_recognition",
    "to_rgba",
    "to_uint8",
    "transferability",
    "visualize",
]

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
from .render import heatmap, importance, save_png, save_visualization, to_rgba, to_uint8

__version__ = "0.1.0"

__all__ = [
    "DeadObjectiveWarning",
    "IncompatibleModelError",
    "InvalidSettingError",
    "MacoError",
    "SpectrumError",
    "UnknownLayerError",
    "Visualization",
    "clear_cache",
    "default_optimizer",
    "fourier",
    "heatmap",
    "importance",
    "maco",
    "pixel",
    "save_png",
    "save_visualization",
    "to_rgba",
    "to_uint8",
    "visualize",
]

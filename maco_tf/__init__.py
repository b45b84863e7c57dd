"""maco_tf: MACO feature visualization for any Keras model, batched and compiled.

``from maco_tf import maco`` is a drop-in replacement for
``from xplique.features_visualizations import maco``.
"""

from . import concepts, inversion, tokens
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
from .combine import ClassExplanation, explain_class
from .concepts import (
    ConceptIndexError,
    ConceptModelError,
    ConceptVisualization,
    CraftNotFittedError,
    concept_objective,
    visualize_concepts,
)
from .errors import (
    IncompatibleModelError,
    InvalidSettingError,
    MacoError,
    SpectrumError,
    UnknownLayerError,
)
from .inversion import InversionTargetError, inversion_objective, invert
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
from .tokens import (
    TokenLayerError,
    TokenSelectionError,
    token_channel,
    token_direction,
    token_neuron,
)

__version__ = "0.1.0"

__all__ = [
    "ClassExplanation",
    "explain_class",
    "ConceptIndexError",
    "ConceptModelError",
    "ConceptVisualization",
    "CraftNotFittedError",
    "InversionTargetError",
    "TokenLayerError",
    "TokenSelectionError",
    "concept_objective",
    "concepts",
    "inversion",
    "inversion_objective",
    "invert",
    "token_channel",
    "token_direction",
    "token_neuron",
    "tokens",
    "visualize_concepts",
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

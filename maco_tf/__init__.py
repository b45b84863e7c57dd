"""maco_tf: MACO feature visualization for any Keras model, batched and compiled.

``from maco_tf import maco`` is a drop-in replacement for
``from xplique.features_visualizations import maco``.
"""

import maco_tf.targets as targets
from maco_tf.core.visualization import (
    DeadObjectiveWarning,
    Visualization,
    clear_cache,
    default_optimizer,
    fourier,
    maco,
    pixel,
    visualize,
)
from maco_tf.errors import (
    IncompatibleModelError,
    InvalidSettingError,
    MacoError,
    SpectrumError,
    UnknownLayerError,
)
from maco_tf.models.layers import layer_output, layer_paths
from maco_tf.models.loading import LoadedModel, load_model
from maco_tf.outputs.combine import ClassExplanation, explain_class
from maco_tf.outputs.metrics import (
    MetricInputError,
    RecognitionScores,
    feature_extractor,
    fid,
    plausibility,
    self_recognition,
    transferability,
)
from maco_tf.outputs.render import (
    heatmap,
    importance,
    save_png,
    save_visualization,
    to_rgba,
    to_uint8,
)
from maco_tf.outputs.trust import (
    TrustReport,
    load_photos,
    path_similarity,
    top_activating,
    trust_check,
)
from maco_tf.targets import concepts, inversion, tokens
from maco_tf.targets.concepts import (
    ConceptIndexError,
    ConceptModelError,
    ConceptVisualization,
    CraftNotFittedError,
    concept_objective,
    visualize_concepts,
)
from maco_tf.targets.inversion import InversionTargetError, inversion_objective, invert
from maco_tf.targets.tokens import (
    TokenLayerError,
    TokenSelectionError,
    token_channel,
    token_direction,
    token_neuron,
)
from maco_tf.version import __version__

__all__ = [
    "__version__",
    "targets",
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
    "TrustReport",
    "load_photos",
    "path_similarity",
    "top_activating",
    "trust_check",
    "visualize",
]

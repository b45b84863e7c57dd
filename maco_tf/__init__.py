"""maco_tf: MACO feature visualization for any Keras model, batched and compiled.

``from maco_tf import maco`` is a drop-in replacement for
``from xplique.features_visualizations import maco``.

The names below are imported on first use (PEP 562), so that ``import maco_tf`` and the
``maco-tf`` command start without loading TensorFlow until they need it (the command can then
answer Ctrl-C during start-up with one line).
"""

from __future__ import annotations

import importlib

from maco_tf.errors import (
    IncompatibleModelError,
    InvalidSettingError,
    MacoError,
    SpectrumError,
    UnknownLayerError,
)
from maco_tf.version import __version__

#: Public names by the module they come from (imported when first used); ``__all__`` is
#: derived from this table, so a new export is one entry here.
_EXPORTS = {
    "maco_tf.core.callbacks": ("Callback", "Progress"),
    "maco_tf.core.config": ("EngineConfig", "RunConfig"),
    "maco_tf.core.dropin": ("EagerFallbackWarning", "fourier", "maco", "optimize", "pixel"),
    "maco_tf.core.limits": ("Limits",),
    "maco_tf.core.parameterization": (
        "FourierParameterization",
        "MacoParameterization",
        "Parameterization",
        "PixelParameterization",
    ),
    "maco_tf.core.regularizers": ("blur_penalty", "l1", "l2", "total_variation"),
    "maco_tf.core.visualization": (
        "DeadObjectiveWarning",
        "Visualization",
        "clear_cache",
        "default_optimizer",
        "visualize",
    ),
    "maco_tf.models.contract": ("ModelContractError",),
    "maco_tf.models.layers": ("layer_output", "layer_paths"),
    "maco_tf.models.loading": ("LoadedModel", "load_model"),
    "maco_tf.outputs.combine": ("ClassExplanation", "explain_class"),
    "maco_tf.outputs.features": ("MetricInputError", "feature_extractor"),
    "maco_tf.outputs.fid": ("fid",),
    "maco_tf.outputs.metrics": (
        "RecognitionScores",
        "plausibility",
        "self_recognition",
        "transferability",
    ),
    "maco_tf.outputs.recognition": ("RobustRecognition", "robust_recognition"),
    "maco_tf.outputs.render": (
        "heatmap",
        "importance",
        "save_png",
        "save_visualization",
        "to_rgba",
        "to_uint8",
    ),
    "maco_tf.outputs.tensorboard": ("TensorBoardLogger",),
    "maco_tf.outputs.references": ("load_photos", "top_activating"),
    "maco_tf.outputs.trust": ("TrustReport", "path_similarity", "trust_check"),
    "maco_tf.targets.accentuation": ("Accentuation", "AccentuationInputError", "accentuate"),
    "maco_tf.targets.concepts": (
        "ConceptIndexError",
        "ConceptModelError",
        "ConceptVisualization",
        "CraftNotFittedError",
        "concept_objective",
        "visualize_concepts",
    ),
    "maco_tf.targets.diversity": ("diversity",),
    "maco_tf.targets.inversion": ("InversionTargetError", "inversion_objective", "invert"),
    "maco_tf.targets.tokens": (
        "TokenLayerError",
        "TokenSelectionError",
        "token_channel",
        "token_direction",
        "token_neuron",
    ),
}
#: Public sub-modules.
_MODULES = {
    "targets": "maco_tf.targets",
    "accentuation": "maco_tf.targets.accentuation",
    "concepts": "maco_tf.targets.concepts",
    "inversion": "maco_tf.targets.inversion",
    "tokens": "maco_tf.targets.tokens",
}
_ORIGIN = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> object:
    """Import a public name of maco_tf on first use (PEP 562)."""
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _ORIGIN:
        value = getattr(importlib.import_module(_ORIGIN[name]), name)
    else:
        raise AttributeError(f"module 'maco_tf' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The public names (imported or not yet)."""
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "__version__",
    "IncompatibleModelError",
    "InvalidSettingError",
    "MacoError",
    "SpectrumError",
    "UnknownLayerError",
    *_MODULES,
    *_ORIGIN,
]

"""Offline models and ImageNet metadata: EfficientNet-Lite0, a safe checkpoint reader, classes."""

from maco_tf.models.zoo.checkpoint import (
    CheckpointError,
    CheckpointLimits,
    UnsafeCheckpointError,
    load_torch_state_dict,
)
from maco_tf.models.zoo.efficientnet_lite import (
    EFFICIENTNET_LITE0_SPEC,
    ModelSpec,
    build_efficientnet_lite0,
    load_efficientnet_lite0,
)
from maco_tf.models.zoo.imagenet import (
    AmbiguousClassError,
    ClassIndexError,
    ImageNetClassError,
    ImageNetClasses,
    UnknownClassError,
    get_imagenet_classes,
    resolve_classes,
)

__all__ = [
    "EFFICIENTNET_LITE0_SPEC",
    "AmbiguousClassError",
    "CheckpointError",
    "CheckpointLimits",
    "ClassIndexError",
    "ImageNetClassError",
    "ImageNetClasses",
    "ModelSpec",
    "UnknownClassError",
    "UnsafeCheckpointError",
    "build_efficientnet_lite0",
    "get_imagenet_classes",
    "load_efficientnet_lite0",
    "load_torch_state_dict",
    "resolve_classes",
]

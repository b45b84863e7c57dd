"""Offline models and ImageNet data: EfficientNet-Lite0/1, a safe checkpoint reader, classes."""

from maco_tf.models.zoo.checkpoint import (
    CheckpointError,
    CheckpointLimits,
    UnsafeCheckpointError,
    load_torch_state_dict,
)
from maco_tf.models.zoo.efficientnet_lite import (
    EFFICIENTNET_LITE0_SPEC,
    EFFICIENTNET_LITE1_SPEC,
    EFFICIENTNET_LITE_VARIANTS,
    LiteVariant,
    ModelSpec,
    UnknownLiteVariantError,
    build_efficientnet_lite,
    build_efficientnet_lite0,
    load_efficientnet_lite,
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
    "EFFICIENTNET_LITE1_SPEC",
    "EFFICIENTNET_LITE_VARIANTS",
    "LiteVariant",
    "UnknownLiteVariantError",
    "build_efficientnet_lite",
    "load_efficientnet_lite",
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

"""What to maximise.

Units of a layer (``units``: class logits, neurons, channels, directions),
vision-transformer tokens (``tokens``), CRAFT concepts (``concepts``), feature inversion
(``inversion``), and the diversity term (``diversity``) that spreads a batch of images apart.

The unit factories are re-exported here, so ``from maco_tf import targets`` then
``targets.channel(model, layer, ids)`` works.
"""

from maco_tf.targets.diversity import diversity
from maco_tf.targets.units import (
    DirectionShapeError,
    TargetIndexError,
    channel,
    class_logits,
    direction,
    neuron,
    select,
)

__all__ = [
    "DirectionShapeError",
    "TargetIndexError",
    "channel",
    "class_logits",
    "direction",
    "diversity",
    "neuron",
    "select",
]

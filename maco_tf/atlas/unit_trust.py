"""The trust score of a unit's visualization in the unit atlas (Geirhos et al., ICML 2024).

A :data:`TrustCheck` is called once per unit by the patch phase of :mod:`maco_tf.atlas.units`
with the unit's saved visualization and the responses of the ``--examples`` photos to the unit;
it returns the record entry shown on the unit's page, or None. :func:`path_trust` is the check of
:mod:`maco_tf.outputs.trust`: the unit's :data:`TRUST_REFERENCES` most-activating photos are the
references, up to :data:`BASELINE_PHOTOS` of the others (evenly spread over the ranking) the
baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from maco_tf.atlas.patches import Responses, load_photos
from maco_tf.models.images import read_array
from maco_tf.models.loading import LoadedModel
from maco_tf.outputs.trust import path_similarity
from maco_tf.runs.trust_records import TRUST_REFERENCES

__all__ = ["BASELINE_PHOTOS", "TRUST_REFERENCES", "TrustCheck", "path_trust"]

#: ``check(loaded, visualization_png, responses, column) -> record entry or None``.
TrustCheck = Callable[[LoadedModel, Path, Responses, int], "dict | None"]
#: Largest number of other photos that make the baseline.
BASELINE_PHOTOS = 32


def _reference_split(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the references (top responses) and of the baseline (spread over the rest)."""
    order = np.argsort(-values, kind="stable")
    count = min(TRUST_REFERENCES, len(order) - 1)
    rest = order[count:]
    if len(rest) > BASELINE_PHOTOS:
        rest = rest[np.linspace(0, len(rest) - 1, BASELINE_PHOTOS).round().astype(int)]
    return order[:count], rest


def path_trust(
    loaded: LoadedModel, visualization: Path, responses: Responses, column: int
) -> dict | None:
    """The path-similarity trust entry of one unit, or None with fewer than 3 photos.

    Parameters
    ----------
    loaded
        The model.
    visualization
        The unit's saved visualization (an 8-bit RGB PNG).
    responses
        The photos' responses to the atlas's units.
    column
        This unit's column in ``responses``.

    Returns
    -------
    entry
        ``{"score", "layers", "visualization", "natural", "baseline", "references",
        "baseline_photos"}``: the score and the per-layer profiles of
        :class:`maco_tf.outputs.trust.TrustReport`.
    """
    references, baseline = _reference_split(responses.values[:, column])
    if len(references) < 2:
        return None
    natural, _ = load_photos([responses.photos[i] for i in references], loaded)
    others, _ = load_photos([responses.photos[i] for i in baseline], loaded)
    pixels = read_array(visualization, what="visualization").astype(np.float32)[None]
    report = path_similarity(
        loaded,
        pixels,
        natural,
        others,
        values_range=(0.0, 255.0),
        natural_range=loaded.values_range,
        model_range=loaded.values_range,
    )
    return {**report.entry(0), "references": len(natural), "baseline_photos": len(others)}

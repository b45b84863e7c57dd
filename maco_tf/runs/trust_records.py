"""The trust check of ``maco-tf visualize --examples DIR`` (Geirhos et al., ICML 2024).

:func:`load_examples` reads the photos once, before any optimisation, with the loader of
:mod:`maco_tf.outputs.trust`; :func:`trust_entries` scores a chunk's visualizations against them
with :func:`maco_tf.outputs.trust.trust_check` (each target's :data:`TRUST_REFERENCES`
most-activating photos are its references, the other photos its baseline) and returns the entry
each target's record in ``results.json`` holds under ``"trust"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maco_tf.errors import MacoError
from maco_tf.models.loading import LoadedModel
from maco_tf.outputs.references import PHOTO_RANGE, load_photos
from maco_tf.outputs.trust import trust_check

__all__ = ["MIN_PHOTOS", "TRUST_REFERENCES", "load_examples", "trust_entries"]

#: Most-activating photos each visualization is compared with (fewer with few photos).
TRUST_REFERENCES = 8
#: Fewest photos: two references compared with one another, and one baseline photo.
MIN_PHOTOS = 3


def load_examples(folder: str | Path, loaded: LoadedModel) -> np.ndarray:
    """The photos of ``folder`` at the model's input size, range :data:`PHOTO_RANGE`.

    Parameters
    ----------
    folder
        A folder of natural photos (not searched recursively).
    loaded
        The model; it must take RGB images.

    Returns
    -------
    photos
        ``(N, H, W, 3)`` float32, ``N >= MIN_PHOTOS``.

    Raises
    ------
    MacoError
        For a missing folder, one without images or with an unreadable image (named), fewer
        than :data:`MIN_PHOTOS` photos, or a model that does not take RGB images.
    """
    channels = int(loaded.model.inputs[0].shape[-1])
    if channels != 3:
        raise MacoError(
            f"--examples needs a model that takes RGB images; this one takes {channels} "
            f"channel(s); drop --examples"
        )
    try:
        photos = load_photos(folder, loaded.input_size)
    except MacoError as exc:
        raise MacoError(f"--examples: {exc}") from None
    if len(photos) < MIN_PHOTOS:
        raise MacoError(
            f"--examples {folder} holds {len(photos)} photo(s); the trust check needs at least "
            f"{MIN_PHOTOS} (references and a baseline), add photos"
        )
    return photos


def trust_entries(
    objective: object, images: np.ndarray, photos: np.ndarray, loaded: LoadedModel
) -> list[dict]:
    """The trust entry of each visualization of a chunk.

    Parameters
    ----------
    objective
        The chunk's objective (one combination per image, in order).
    images
        ``(C, H, W, 3)`` visualizations in the model's value range.
    photos
        From :func:`load_examples`.
    loaded
        The model.

    Returns
    -------
    entries
        Per image ``{"score", "flagged", "layers", "visualization", "natural", "baseline",
        "references", "baseline_photos"}``: the score (None when the references say nothing
        about the unit), whether :meth:`~maco_tf.outputs.trust.TrustReport.flagged` flags it,
        and the per-layer profiles.
    """
    references = min(TRUST_REFERENCES, len(photos) - 1)
    report = trust_check(
        objective,
        images,
        photos,
        k=references,
        values_range=loaded.values_range,
        photos_range=PHOTO_RANGE,
        model_range=loaded.values_range,
    )
    flagged = report.flagged()
    entries = []
    for index in range(len(report.scores)):
        entries.append(
            {
                **report.entry(index),
                "flagged": bool(flagged[index]),
                "references": references,
                "baseline_photos": len(photos) - references,
            }
        )
    return entries

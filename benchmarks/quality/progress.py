"""Results written as they come, so that an interrupted quality run resumes where it stopped.

Every finished piece of a run (a scored row with its images, a measured cost) is saved at
once in ``<out>/progress/<key>.json`` (and ``<key>.npy`` for images), with the settings that
made it (its *fingerprint*: classes, steps, seeds, sizes...). A later run with the same
``--out`` takes a piece back only when its fingerprint is the same; anything else is
recomputed and overwritten. ``--fresh`` ignores what is saved.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np


def _normal(value: object) -> object:
    """``value`` as JSON would give it back (tuples as lists, numpy scalars as numbers)."""

    def default(item: object) -> object:
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        return str(item)

    return json.loads(json.dumps(value, default=default))


class Progress:
    """The saved pieces of one run folder.

    Parameters
    ----------
    out
        The run's output folder (pieces go to ``out/progress``).
    fresh
        True: ignore the saved pieces (they are overwritten as the run goes).
    """

    def __init__(self, out: str, fresh: bool = False) -> None:
        self.folder = os.path.join(out, "progress")
        self.fresh = fresh
        self.reused: list[str] = []

    def _path(self, key: str, suffix: str) -> str:
        return os.path.join(self.folder, re.sub(r"[^A-Za-z0-9_.-]", "_", key) + suffix)

    def load(self, key: str, fingerprint: dict) -> tuple[dict, np.ndarray | None] | None:
        """The saved ``(row, images)`` of ``key`` made with ``fingerprint``, else None."""
        path = self._path(key, ".json")
        if self.fresh or not os.path.exists(path):
            return None
        with open(path) as handle:
            saved = json.load(handle)
        if saved.get("fingerprint") != _normal(fingerprint):
            return None
        images_path = self._path(key, ".npy")
        images = np.load(images_path) if os.path.exists(images_path) else None
        if saved.get("has_images") and images is None:
            return None
        self.reused.append(key)
        print(f"  {key}: taken from {self.folder}", flush=True)
        return saved["row"], images

    def save(
        self, key: str, fingerprint: dict, row: dict, images: np.ndarray | None = None
    ) -> None:
        """Save ``row`` (JSON-able) and ``images`` of ``key`` at once (images first)."""
        os.makedirs(self.folder, exist_ok=True)
        if images is not None:
            np.save(self._path(key, ".npy"), np.asarray(images, dtype=np.float32))
        payload = {
            "fingerprint": _normal(fingerprint),
            "has_images": images is not None,
            "row": _normal(row),
        }
        temporary = self._path(key, ".json.tmp")
        with open(temporary, "w") as handle:
            json.dump(payload, handle)
        os.replace(temporary, self._path(key, ".json"))

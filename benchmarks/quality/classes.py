"""Which ImageNet classes a quality run reports: a seeded draw that avoids the tuned ones."""

from __future__ import annotations

import numpy as np

#: Classes the project tuned its settings on, or names in the README, docs, notebooks and
#: earlier benchmark tables: never reported by the seeded draw.
EXCLUDED_CLASSES: dict[int, str] = {
    1: "goldfish",
    88: "macaw",
    130: "flamingo",
    145: "king penguin",
    207: "golden retriever",
    281: "tabby",
    285: "Egyptian Mau",
    291: "lion",
    323: "monarch butterfly",
    402: "acoustic guitar",
    417: "balloon",
    574: "golf ball",
    652: "military uniform",
    657: "missile",
    665: "moped",
    698: "palace",
    817: "sports car",
    948: "Granny Smith",
    951: "lemon",
    954: "banana",
    963: "pizza",
    967: "espresso",
    980: "volcano",
    985: "daisy",
}

NB_CLASSES = 1000


def draw_classes(
    count: int, seed: int, excluded: set[int] | None = None, skip: int = 0
) -> list[int]:
    """``count`` distinct ImageNet classes drawn with ``seed``, none of ``excluded``.

    Parameters
    ----------
    count
        How many classes (1 to the number left after the exclusions).
    seed
        Seed of the draw: the same seed gives the same classes, in the same order.
    excluded
        Classes never drawn; default :data:`EXCLUDED_CLASSES`.
    skip
        Classes of the draw passed over first: the classes ``skip`` to ``skip + count - 1`` of
        the same seeded order. Tuning runs use ``skip=30`` so they never see the 30 classes a
        report draws with the same seed.

    Returns
    -------
    list of int
        Class indices in draw order.

    Raises
    ------
    ValueError
        For a ``count`` outside that range (after ``skip``), or a negative ``skip``.
    """
    excluded = set(EXCLUDED_CLASSES) if excluded is None else set(excluded)
    pool = np.array([c for c in range(NB_CLASSES) if c not in excluded])
    if skip < 0:
        raise ValueError(f"skip must be >= 0; got {skip}")
    if not 1 <= count <= len(pool) - skip:
        raise ValueError(f"count must be between 1 and {len(pool) - skip}; got {count}")
    order = np.random.default_rng(seed).permutation(len(pool))
    return [int(c) for c in pool[order[skip : skip + count]]]

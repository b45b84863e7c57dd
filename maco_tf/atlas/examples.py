"""Example photos of the classes: ``--examples DIR`` matched to classes, copied into the site.

``DIR`` holds one sub-folder of images per class, named by class name, index, WordNet id or slug.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from maco_tf.atlas.photo_copies import reduced_copy
from maco_tf.core.limits import Limits
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models.images import image_files
from maco_tf.models.zoo import ImageNetClassError, get_imagenet_classes
from maco_tf.runs.plans import slug as file_slug

__all__ = [
    "EXAMPLE_DIR",
    "copy_all_examples",
    "example_images",
    "is_imagenet",
    "match_example_folders",
    "report_unmatched",
]

#: Sub-folder of ``--out`` with the reduced copies, one folder per class slug.
EXAMPLE_DIR = "examples"
EXAMPLE_SIDE = 320
#: Largest number of example images per class that are shown and given to CRAFT.
MAX_EXAMPLES = 48
_SEPARATORS_RE = re.compile(r"[\s_\-]+")


def _normalize(text: str) -> str:
    return _SEPARATORS_RE.sub(" ", text.casefold()).strip()


def is_imagenet(index: int, name: str) -> bool:
    """Whether ``(index, name)`` is the ImageNet class of that index."""
    classes = get_imagenet_classes()
    return 0 <= index < len(classes) and classes.name(index) == name


def match_example_folders(
    root: Path, classes: Sequence[tuple[str, int, str]]
) -> tuple[dict[str, Path], list[str]]:
    """Map class slugs to their example folder in ``root``; also the unmatched folder names.

    Parameters
    ----------
    root
        The ``--examples`` folder.
    classes
        ``(slug, index, name)`` of the classes of the run.

    Raises
    ------
    MacoError
        If ``root`` is not a folder.
    """
    if not root.is_dir():
        raise MacoError(f"--examples {root} is not a folder")
    by_key: dict[str, str] = {}
    by_index: dict[int, str] = {}
    for slug, index, name in classes:
        by_index[index] = slug
        for alias in (slug, str(index), name):
            by_key.setdefault(_normalize(alias), slug)
    imagenet = bool(classes) and all(is_imagenet(index, name) for _, index, name in classes)
    found: dict[str, Path] = {}
    unmatched: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        slug = by_key.get(_normalize(folder.name))
        if slug is None and imagenet:
            try:
                slug = by_index.get(get_imagenet_classes().index(folder.name))
            except ImageNetClassError:
                slug = None
        if slug is None:
            unmatched.append(folder.name)
        else:
            found[slug] = folder
    return found, unmatched


def report_unmatched(unmatched: Sequence[str]) -> None:
    """One note on stderr naming the example folders that match no class."""
    if unmatched:
        print(
            f"maco-tf: note: example folders matching no class of this atlas ignored: "
            f"{', '.join(unmatched)}",
            file=sys.stderr,
        )


def example_images(folder: Path) -> list[Path]:
    """The image files of a folder, sorted by name, at most :data:`MAX_EXAMPLES`.

    Listed by :func:`maco_tf.models.images.image_files` (entries that are not regular files
    named and skipped; the photos kept bounded in total pixels).
    """
    bounds = Limits.from_environment().image_bounds()
    return image_files(folder, first=MAX_EXAMPLES, bounds=bounds)


def _copy_examples(out: Path, slug: str, sources: Sequence[Path]) -> list[str]:
    """Write reduced copies of a class's examples into ``out/examples/<slug>/``.

    Returns the names of the images that could not be read. Copies of images that are no longer
    in ``sources`` are removed.
    """
    guard = OutputFolder(out)
    folder = guard.path(f"{EXAMPLE_DIR}/{slug}")
    written, unreadable = set(), []
    for position, source in enumerate(sources):
        target = guard.path(f"{EXAMPLE_DIR}/{slug}/{position:02d}_{file_slug(source.stem)}.jpg")
        if reduced_copy(source, target, EXAMPLE_SIDE):
            written.add(target.name)
        else:
            unreadable.append(source.name)
    if folder.is_dir():
        for stale in folder.glob("*.jpg"):
            if stale.name not in written:
                guard.remove(f"{EXAMPLE_DIR}/{slug}/{stale.name}")
    return unreadable


def copy_all_examples(
    out: Path, folders: dict[str, Path], say: Callable[[str], None]
) -> dict[str, list[Path]]:
    """Copy every matched class's examples into the site; the readable sources by slug."""
    sources: dict[str, list[Path]] = {}
    for slug, folder in folders.items():
        images = example_images(folder)
        unreadable = _copy_examples(out, slug, images)
        for name in unreadable:
            print(f"maco-tf: warning: cannot read example image {folder / name}", file=sys.stderr)
        sources[slug] = [p for p in images if p.name not in unreadable]
        say(f"examples: {len(sources[slug])} images for {slug} from {folder}")
    return sources

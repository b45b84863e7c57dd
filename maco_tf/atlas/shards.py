"""The results files of an atlas folder: one per shard, merged into what the folder has finished.

``--shard I/N`` records its classes in ``results.I-of-N.json`` (``results.json`` without
sharding), so shards can share one folder; a class finished in *any* results file of the folder
made with the same settings counts as done.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.runs.results import (
    RESULTS_FILE,
    Results,
    discard,
    open_results,
    read_results,
    record_done,
)
from maco_tf.runs.settings import settings_diff

__all__ = ["finished", "merge_records", "open_shard", "results_name", "results_paths"]

_RESULTS_RE = re.compile(r"results(?:\.(\d+)-of-(\d+))?\.json")


def results_name(shard: tuple[int, int]) -> str:
    """Results file of a shard: ``results.json`` for ``(0, 1)``, else ``results.I-of-N.json``."""
    index, count = shard
    return RESULTS_FILE if count == 1 else f"results.{index}-of-{count}.json"


def results_paths(out: Path) -> list[Path]:
    """Every ``results.json`` / ``results.I-of-N.json`` file in ``out``, sorted by name.

    A results file that is a symlink out of the folder is not one of them.
    """
    if not out.is_dir():
        return []
    folder = OutputFolder(out)
    names = (p.name for p in out.iterdir() if _RESULTS_RE.fullmatch(p.name))
    return sorted(out / name for name in names if folder.is_file(name))


def open_shard(out: Path, name: str, settings: dict, overwrite: bool) -> Results:
    """Open the shard's results file as ``maco-tf visualize`` opens ``results.json``.

    Its records are kept if their settings match. One folder holds one set of settings: a
    results file of the folder (this shard's or another's) made with other settings is refused,
    unless ``overwrite``, which deletes it and its images. Unreadable results files of other
    shards are left alone.

    Raises
    ------
    MacoError
        For results made with other settings, or an unreadable own file, without ``overwrite``.
    """
    own = out / name
    for path in results_paths(out):
        if path == own:
            continue
        try:
            found = read_results(path)
        except MacoError:
            continue
        differences = settings_diff(found.settings, settings)
        if differences:
            discard(found, differences, overwrite)
    return open_results(own, settings, overwrite)


def finished(out: Path, own: Results) -> Results:
    """What every results file of ``out`` with ``own``'s settings has finished (read-only view)."""
    merged = Results(own.path, own.settings)
    for path in results_paths(out):
        if path == own.path:
            continue
        try:
            found = read_results(path)
        except MacoError:
            continue
        if not settings_diff(found.settings, own.settings):
            merge_records(out, merged.targets, found.records.values())
    merge_records(out, merged.targets, own.targets.values())
    return merged


def merge_records(out: Path, into: dict[str, dict], records: Iterable[dict]) -> None:
    """Add records by slug; a finished record is never replaced by an unfinished one."""
    for record in records:
        slug = record["slug"]
        if slug not in into or not record_done(out, into[slug]) or record_done(out, record):
            into[slug] = record

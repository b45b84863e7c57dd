"""What the atlas website shows: the finished records of a folder's results files, merged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maco_tf.atlas.examples import EXAMPLE_DIR
from maco_tf.atlas.shards import merge_records, results_paths
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder, UnsafePathError, is_safe_name
from maco_tf.runs.results import ResultsFile, read_results, record_done, total_time
from maco_tf.runs.settings import settings_diff, settings_key
from maco_tf.version import __version__

__all__ = ["Site", "collect"]


@dataclass
class Site:
    """The data of the website: settings, class records in index order, concepts, examples."""

    out: Path
    settings: dict
    classes: list[dict]
    concepts: dict[str, list[dict]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    total_time_s: float = 0.0
    version: str = __version__


def _choose_files(
    files: list[ResultsFile], settings: dict | None
) -> tuple[list[ResultsFile], list[str]]:
    """The results files to show: those with ``settings`` (default: the largest group)."""
    groups: dict[str, list[ResultsFile]] = {}
    for found in files:
        groups.setdefault(settings_key(found.settings), []).append(found)
    if not groups:
        return [], []
    if settings is not None:
        key = settings_key(settings)
    else:
        key = max(groups, key=lambda k: (sum(len(f.records) for f in groups[k]), k))
    chosen = groups.get(key, [])
    notes = [
        f"{found.path.name} skipped: other settings "
        f"({'; '.join(settings_diff(chosen[0].settings, found.settings)) if chosen else ''})"
        for k, group in groups.items()
        if k != key
        for found in group
    ]
    return chosen, notes


def collect(
    out: Path, settings: dict | None, kinds: Sequence[str] = ("class",)
) -> tuple[Site, list[str]]:
    """Merge the results files of ``out`` into the website's data; also notes on skipped files.

    The files are read and checked as on resume (:func:`~maco_tf.runs.results.read_results`):
    a malformed record is skipped with a note, as is a file that cannot be read.

    Parameters
    ----------
    out
        The atlas folder.
    settings
        Show the results made with these settings; default: the settings of most results.
    kinds
        The record kinds shown as pages (``Site.classes``), ordered by layer, kind and index.

    Raises
    ------
    MacoError
        If ``out`` holds no readable results (with those settings).
    """
    files, notes = [], []
    for path in results_paths(out):
        try:
            found = read_results(path)
        except MacoError as exc:
            notes.append(f"{path.name} skipped: {exc}")
            continue
        files.append(found)
        notes.extend(found.warnings)
    chosen, skipped = _choose_files(files, settings)
    notes.extend(skipped)
    if not chosen:
        raise MacoError(f"no results in {out} to build an atlas from; run maco-tf atlas first")
    records: dict[str, dict] = {}
    for found in chosen:
        merge_records(out, records, _safe_records(found, notes))
    done = [r for r in records.values() if record_done(out, r)]
    classes = sorted(
        (r for r in done if r.get("kind") in kinds),
        key=lambda r: (r.get("layer", ""), kinds.index(r["kind"]), r["index"], r["slug"]),
    )
    concepts: dict[str, list[dict]] = {}
    for record in done:
        if record.get("kind") == "concept":
            concepts.setdefault(record["class_slug"], []).append(record)
    for group in concepts.values():
        group.sort(key=lambda r: (r.get("rank") is None, r.get("rank") or 0, r["index"]))
    site = Site(
        out=out,
        settings=chosen[0].settings,
        classes=classes,
        concepts=concepts,
        examples={r["slug"]: _site_examples(out, r["slug"]) for r in classes},
        total_time_s=total_time([run for found in chosen for run in found.runs]),
    )
    return site, notes


def _safe_records(found: ResultsFile, notes: list[str]) -> list[dict]:
    """The records of a results file whose slugs are safe page names; a note for the others."""
    safe = []
    for record in found.records.values():
        slugs = [record.get("slug")]
        if record.get("kind") == "concept":
            slugs.append(record.get("class_slug"))
        if all(is_safe_name(slug) for slug in slugs):
            safe.append(record)
        else:
            notes.append(f"{found.path.name}: record {slugs[0]!r} skipped: not a safe file name")
    return safe


def _site_examples(out: Path, slug: str) -> list[str]:
    try:
        folder = OutputFolder(out).path(f"{EXAMPLE_DIR}/{slug}")
    except UnsafePathError:
        return []
    if not folder.is_dir():
        return []
    return [f"{EXAMPLE_DIR}/{slug}/{p.name}" for p in sorted(folder.glob("*.jpg"))]

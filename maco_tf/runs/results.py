"""Results files: what a run has finished, kept in memory and rewritten atomically.

A results file (``results.json``) holds the run's settings, one record per finished target
(its slug, identity ``key``, files relative to the folder, objective value, top-5...) and one
record per run. A target counts as done when a record with its key names three files that exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from maco_tf.errors import MacoError
from maco_tf.files import write_text_atomically
from maco_tf.runs.plans import Target
from maco_tf.runs.settings import settings_diff
from maco_tf.version import __version__

__all__ = [
    "FILE_KINDS",
    "RESULTS_FILE",
    "Results",
    "ResultsFile",
    "discard",
    "open_results",
    "read_results",
    "record_done",
]

RESULTS_FILE = "results.json"
#: The files of a target, by kind: ``<slug>.png``, ``<slug>_rgba.png``, ``<slug>_heatmap.png``.
FILE_KINDS = ("image", "rgba", "heatmap")


def record_done(out: Path, record: dict) -> bool:
    """Whether the three files a record names exist in ``out``."""
    files = record.get("files") or {}
    return all(kind in files and (out / files[kind]).is_file() for kind in FILE_KINDS)


@dataclass
class Results:
    """The content of one results file, kept in memory and rewritten after each chunk."""

    path: Path
    settings: dict
    targets: dict[str, dict] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        """The file's content: version, settings, target records, total time and run records."""
        return {
            "maco_tf_version": __version__,
            "settings": self.settings,
            "targets": list(self.targets.values()),
            "total_time_s": round(sum(run.get("time_s", 0.0) for run in self.runs), 3),
            "runs": self.runs,
        }

    def save(self) -> None:
        """Rewrite the file atomically (:func:`maco_tf.files.write_atomically`)."""
        write_text_atomically(self.path, json.dumps(self.to_json(), indent=2) + "\n")

    def is_done(self, target: Target) -> bool:
        """Recorded with the same identity, and its three PNGs are on disk."""
        record = self.targets.get(target.slug)
        if record is None or record.get("key") != target.key:
            return False
        return record_done(self.path.parent, record)


@dataclass(frozen=True)
class ResultsFile:
    """One results file, as read."""

    path: Path
    settings: dict
    records: dict[str, dict]
    runs: list[dict]


def read_results(path: Path) -> ResultsFile:
    """Read a results file.

    Raises
    ------
    MacoError
        If it is unreadable or malformed.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings = dict(data["settings"])
        records = {str(record["slug"]): dict(record) for record in data["targets"]}
        runs = list(data.get("runs", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MacoError(f"cannot read {path} ({type(exc).__name__})") from None
    return ResultsFile(path, settings, records, runs)


def discard(found: ResultsFile, differences: list[str], overwrite: bool) -> None:
    """Refuse results made with other settings, or (``overwrite``) delete them and their images.

    Raises
    ------
    MacoError
        Without ``overwrite``: naming the differences and the ways out.
    """
    if not overwrite:
        raise MacoError(
            f"{found.path} holds results made with other settings ({'; '.join(differences)}); "
            f"use another --out folder, or pass --overwrite to replace them"
        )
    out = found.path.parent
    for record in found.records.values():
        for file in (record.get("files") or {}).values():
            (out / file).unlink(missing_ok=True)
    found.path.unlink(missing_ok=True)


def open_results(path: Path, settings: dict, overwrite: bool) -> Results:
    """The results file at ``path`` if its settings match, else a refusal or a fresh start.

    Parameters
    ----------
    path
        The results file (it may not exist yet).
    settings
        The run's settings.
    overwrite
        Start afresh instead of refusing an unreadable file or one made with other settings
        (deleting that file and the images it records).

    Raises
    ------
    MacoError
        If the file is unreadable or has other settings and ``overwrite`` is false.
    """
    results = Results(path, settings)
    if not path.exists():
        return results
    try:
        found = read_results(path)
    except MacoError as exc:
        if overwrite:
            return results
        raise MacoError(
            f"{exc}; delete it, use another --out folder, or pass --overwrite"
        ) from None
    differences = settings_diff(found.settings, settings)
    if differences:
        discard(found, differences, overwrite)
        return results
    results.targets, results.runs = dict(found.records), list(found.runs)
    return results

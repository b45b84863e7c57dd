"""Results files: what a run has finished, kept in memory and rewritten atomically.

A results file (``results.json``) holds the run's settings, one record per finished target
(its slug, identity ``key``, files relative to the folder, objective value, top-5...) and one
record per run. A target counts as done when a record with its key names three files that exist
inside the folder: every path a results file names goes through :class:`maco_tf.files.OutputFolder`,
so a record naming a file elsewhere (absolute, ``..``, a symlink out) is not done, and
``--overwrite`` never deletes such a file.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder, UnsafePathError, is_safe_name
from maco_tf.outputs.render import save_png, save_visualization, to_uint8
from maco_tf.runs.plans import Target
from maco_tf.runs.records import (
    MAX_RESULTS_BYTES,
    MAX_RUN_TIME_S,
    ResultsFormatError,
    check_content,
    json_safe,
    parse_bounded,
)
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
    "save_target_files",
    "total_time",
    "warn",
]

RESULTS_FILE = "results.json"
#: The files of a target, by kind: ``<slug>.png``, ``<slug>_rgba.png``, ``<slug>_heatmap.png``.
FILE_KINDS = ("image", "rgba", "heatmap")


def record_done(out: Path, record: dict) -> bool:
    """Whether the three files a record names exist in ``out`` (at safe paths)."""
    files = record.get("files")
    if not isinstance(files, dict):
        return False
    folder = OutputFolder(out)
    return all(folder.is_file(files.get(kind)) for kind in FILE_KINDS)


def save_target_files(
    folder: OutputFolder,
    stem: str,
    image: np.ndarray,
    transparency: np.ndarray,
    values_range: tuple[float, float],
) -> dict[str, str]:
    """Save the three PNGs of a target in ``folder``; the files by kind, as results record them.

    Parameters
    ----------
    folder
        The output folder.
    stem
        ``<slug>`` or ``<sub-folder>/<slug>``: the files are ``<stem>.png``, ``<stem>_rgba.png``
        and ``<stem>_heatmap.png``.
    image, transparency, values_range
        As :func:`~maco_tf.outputs.render.save_visualization` takes them.

    Returns
    -------
    files
        The files by kind (:data:`FILE_KINDS`), relative to the folder, as results record them.

    Raises
    ------
    UnsafePathError
        If the slug is not a safe name or the files would lie outside the folder.
    """
    parent, _, slug = stem.rpartition("/")
    if not is_safe_name(slug):
        raise UnsafePathError(f"refusing to write files for {slug!r}: not a safe file name")
    folder.path(f"{stem}.png")
    where = folder.path(parent) if parent else folder.root
    paths = save_visualization(where, slug, image, transparency, values_range)
    return {kind: paths[kind].relative_to(folder.root).as_posix() for kind in FILE_KINDS}


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
            "total_time_s": total_time(self.runs),
            "runs": self.runs,
        }

    @property
    def folder(self) -> OutputFolder:
        """The folder of the results file, through which its files are written."""
        return OutputFolder(self.path.parent)

    def save(self) -> None:
        """Rewrite the file atomically (:func:`maco_tf.files.write_atomically`).

        Standard JSON only: a non-finite float (a diverged objective, say) is written as
        ``null``, which :func:`read_results` reads back.
        """
        text = json.dumps(json_safe(self.to_json()), indent=2, allow_nan=False)
        self.folder.write_text(self.path.name, text + "\n")

    def add_target(
        self,
        target: Target,
        image: np.ndarray,
        transparency: np.ndarray,
        values_range: tuple[float, float],
        measured: dict,
    ) -> dict[str, str]:
        """Save a finished target's three PNGs in the folder and record it (in memory).

        Parameters
        ----------
        target
            The target; its record holds its identity (``slug``, ``name``, ``kind``,
            ``layer``, ``index``, ``key``) and ``files``, which :meth:`is_done` reads.
        image, transparency, values_range
            As :func:`save_target_files` takes them.
        measured
            What the command measured, added to the record.

        Returns
        -------
        files
            The files by kind, relative to the folder.

        Raises
        ------
        UnsafePathError
            If the slug is not a safe file name.
        """
        files = save_target_files(self.folder, target.slug, image, transparency, values_range)
        self.targets[target.slug] = {
            "slug": target.slug,
            "name": target.name,
            "kind": target.kind,
            "layer": target.layer,
            "index": target.index,
            "key": target.key,
            "files": files,
            **measured,
        }
        return files

    def add_snapshots(
        self,
        target: Target,
        snapshots: np.ndarray,
        steps: np.ndarray,
        values_range: tuple[float, float],
    ) -> list[str]:
        """Save a target's snapshots as ``<slug>/snapshots/step_0016.png`` and record them.

        Call after :meth:`add_target`; the record gains ``"snapshots"``, the files relative
        to the folder, one per step of ``steps``.

        Parameters
        ----------
        target
            The target, already added.
        snapshots
            ``(S, H, W, C)`` its images after each of ``steps``.
        steps
            ``(S,)`` the steps of the snapshots.
        values_range
            The images' value range.

        Returns
        -------
        files
            The files written, relative to the folder.

        Raises
        ------
        UnsafePathError
            If the slug is not a safe file name.
        """
        if not is_safe_name(target.slug):
            raise UnsafePathError(f"refusing to write files for {target.slug!r}: not a safe name")
        files = []
        for step, image in zip(steps, snapshots, strict=True):
            name = f"{target.slug}/snapshots/step_{int(step):04d}.png"
            save_png(self.folder.path(name), to_uint8(image, values_range))
            files.append(name)
        self.targets[target.slug]["snapshots"] = files
        return files

    def is_done(self, target: Target) -> bool:
        """Recorded with the same identity, and its three PNGs are on disk."""
        record = self.targets.get(target.slug)
        if record is None or record.get("key") != target.key:
            return False
        return record_done(self.path.parent, record)


def total_time(runs: list[dict]) -> float:
    """The summed ``time_s`` of run records, finite: each is clamped to [0, 1e11] s."""
    times = (run.get("time_s", 0.0) for run in runs if isinstance(run, dict))
    clamped = [
        min(max(float(t), 0.0), MAX_RUN_TIME_S)
        for t in times
        if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
    ]
    return round(math.fsum(clamped), 3)


@dataclass(frozen=True)
class ResultsFile:
    """One results file, as read and checked (:mod:`maco_tf.runs.records`).

    ``records`` holds the valid records only and ``runs`` the run history, empty if it was
    malformed; ``warnings`` has one line per skipped record and for a reset history.
    """

    path: Path
    settings: dict
    records: dict[str, dict]
    runs: list[dict]
    warnings: tuple[str, ...] = ()


def read_results(path: Path) -> ResultsFile:
    """Read a results file as untrusted data: bounded parse, then the schema's checks.

    Raises
    ------
    MacoError
        If it is unreadable, too large or deep, not JSON, or has no settings and targets of
        the schema (:class:`~maco_tf.runs.records.ResultsFormatError`); a malformed record or
        run history is not an error but a warning (:attr:`ResultsFile.warnings`).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RESULTS_BYTES + 1)
    except OSError as exc:
        raise MacoError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    try:
        content = check_content(parse_bounded(data, path.name), path.name)
    except ResultsFormatError as exc:
        raise ResultsFormatError(f"cannot read {path}: {exc}") from None
    return ResultsFile(path, content.settings, content.records, content.runs, content.warnings)


def warn(found: ResultsFile) -> None:
    """Print the warnings of a results file as read, one ``maco-tf: warning:`` line each."""
    for line in found.warnings:
        print(f"maco-tf: warning: {line}", file=sys.stderr)


def discard(found: ResultsFile, differences: list[str], overwrite: bool) -> None:
    """Refuse results made with other settings, or (``overwrite``) delete them and their images.

    Only files inside the folder are deleted (:meth:`maco_tf.files.OutputFolder.remove`); a
    recorded path elsewhere is left alone, with a note on stderr.

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
    folder = OutputFolder(found.path.parent)
    for record in found.records.values():
        files = record.get("files")
        files = list(files.values()) if isinstance(files, dict) else []
        snapshots = record.get("snapshots")
        files += snapshots if isinstance(snapshots, list) else []
        for file in files:
            if not folder.remove(file):
                print(
                    f"maco-tf: note: not deleting {file!r} named in {found.path.name}: it is not "
                    f"a file inside {folder.root}",
                    file=sys.stderr,
                )
    folder.remove(found.path.name)


def open_results(path: Path, settings: dict, overwrite: bool) -> Results:
    """The results file at ``path`` if its settings match, else a refusal or a fresh start.

    Temporary files left by a killed write in the folder are removed
    (:meth:`~maco_tf.files.OutputFolder.remove_stale_temporaries`): callers hold the lock of
    the results file.

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
    results.folder.remove_stale_temporaries()
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
    warn(found)
    results.targets, results.runs = dict(found.records), list(found.runs)
    return results

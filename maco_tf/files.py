"""Files: one atomic write, and the guard of the output folder that every front end goes through.

:func:`write_atomically` is the one way maco_tf writes a file. :class:`OutputFolder` is the one
way the command line reads, writes and deletes under ``--out``: a path that comes from a results
file or a slug is refused when it is absolute, contains ``..`` or resolves (symlinks followed)
outside the folder, and :meth:`OutputFolder.lock` keeps two processes from writing the same
results file. Bottom layer: imports nothing of maco_tf but :mod:`maco_tf.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from maco_tf.errors import MacoError

__all__ = [
    "FolderBusyError",
    "OutputFolder",
    "UnsafePathError",
    "UnwritableFolderError",
    "is_safe_name",
    "write_atomically",
    "write_text_atomically",
]

#: Permissions of written files (``mkstemp`` makes private 0600 files; outputs are for everyone).
FILE_MODE = 0o644
#: Temporary files of :func:`write_atomically`: ``.<name>.<8 random characters>.tmp``.
TEMPORARY_RE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
#: Age, in seconds, after which a temporary file is stale: no write of the tool takes as long,
#: so a younger one may be another process's write in progress (shards share a folder).
STALE_AFTER_S = 60.0


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file so that readers see either its old content or its whole new content.

    ``write`` fills a temporary file in the same folder, which is flushed to disk and renamed
    over ``path`` (``os.replace``); an interruption at any point leaves no truncated file at
    ``path`` and no temporary file behind (but ``kill -9``, whose temporary file
    :meth:`OutputFolder.remove_stale_temporaries` removes). Missing parent folders are created.
    The temporary file has a fresh name (created exclusively, links not followed) and the
    rename replaces the entry at ``path``: a symbolic or hard link there is replaced, never
    written through.

    Parameters
    ----------
    path
        The file to write.
    write
        Called once with the temporary file, opened for binary writing.

    Returns
    -------
    path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    OSError
        If the folder cannot be created or written; whatever ``write`` raises is re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_atomically` for a UTF-8 text; returns ``path`` as a :class:`~pathlib.Path`."""
    data = text.encode("utf-8")
    return write_atomically(path, lambda handle: handle.write(data))


class UnsafePathError(MacoError):
    """A path that would leave the output folder (absolute, ``..``, or a symlink out of it)."""


class FolderBusyError(MacoError):
    """Another process holds the lock of the results file this run would write."""


class UnwritableFolderError(MacoError):
    """The output folder cannot be created or written."""


_SAFE_NAME_RE = re.compile(r"(?!\.)[\w.\-]+")


def is_safe_name(name: object) -> bool:
    """Whether ``name`` is one path component of letters, digits and ``._-``, not led by ``.``.

    Slugs (file stems of targets) must be such names; any other text could name a path
    elsewhere (``../x``, ``/etc/x``) or a hidden file.
    """
    return isinstance(name, str) and _SAFE_NAME_RE.fullmatch(name) is not None


class OutputFolder:
    """The output folder (``--out``): every path under it, checked to stay under it.

    Parameters
    ----------
    root
        The folder; it need not exist yet. Symlinks in ``root`` itself are followed: the
        folder is where it resolves to.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.root)!r})"

    def path(self, relative: object) -> Path:
        """``root / relative``, if it stays inside the folder.

        Parameters
        ----------
        relative
            A ``/``-separated relative path, such as a file name recorded in a results file.

        Raises
        ------
        UnsafePathError
            If ``relative`` is not a non-empty string, is absolute, has a ``..`` or empty
            component, or resolves (symlinks followed) outside the folder.
        """
        if not isinstance(relative, str) or not relative or "\x00" in relative:
            raise UnsafePathError(f"refusing path {relative!r} in {self.root}: not a file name")
        parts = PurePosixPath(relative).parts
        if relative.startswith("/") or not parts or any(p in ("..", "") for p in parts):
            raise UnsafePathError(
                f"refusing path {relative!r}: paths under {self.root} must be relative, "
                f"without '..'"
            )
        candidate = self.root.joinpath(*parts)
        root = self.root.resolve()
        resolved = candidate.resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise UnsafePathError(
                f"refusing path {relative!r}: it resolves to {resolved}, outside {self.root}"
            )
        return candidate

    def entry(self, relative: object) -> Path:
        """``root / relative`` whose folder stays inside the folder; its last name may be a link.

        For a file that is replaced when it is a link, never written through (the lock file of
        :meth:`lock`), wherever the link points.

        Raises
        ------
        UnsafePathError
            As :meth:`path` does for ``relative`` itself, or for its folder.
        """
        if not isinstance(relative, str) or relative.startswith("/"):
            raise UnsafePathError(f"refusing path {relative!r} in {self.root}: not a relative path")
        parent, _, name = relative.rpartition("/")
        if name in ("", ".", "..") or "\x00" in name:
            raise UnsafePathError(f"refusing path {relative!r} in {self.root}: not a file name")
        return (self.path(parent) if parent else self.root) / name

    def is_safe(self, relative: object) -> bool:
        """Whether :meth:`path` accepts ``relative``."""
        try:
            self.path(relative)
        except UnsafePathError:
            return False
        return True

    def is_file(self, relative: object) -> bool:
        """Whether ``relative`` is a safe path (:meth:`path`) to an existing file."""
        return self.is_safe(relative) and self.path(relative).is_file()

    def remove(self, relative: object) -> bool:
        """Delete the file at a safe path (missing is fine); False, deleting nothing, if unsafe."""
        if not self.is_safe(relative):
            return False
        self.path(relative).unlink(missing_ok=True)
        return True

    def write(self, relative: str, write: Callable[[IO[bytes]], None]) -> Path:
        """:func:`write_atomically` at a safe path (:meth:`path` raises for another)."""
        return write_atomically(self.path(relative), write)

    def write_text(self, relative: str, text: str) -> Path:
        """:func:`write_text_atomically` at a safe path (:meth:`path` raises for another)."""
        return write_text_atomically(self.path(relative), text)

    def check_writable(self) -> None:
        """Refuse a folder that cannot be created or written, before any work is done.

        Nothing is created: the nearest existing folder on the way to ``root`` is probed with
        a temporary file, deleted at once.

        Raises
        ------
        UnwritableFolderError
            If ``root`` or one of its parents is a file, or the nearest existing folder is not
            writable.
        """
        if self.root.exists() and not self.root.is_dir():
            raise UnwritableFolderError(f"--out {self.root} exists and is not a folder")
        existing = self.root.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise UnwritableFolderError(
                f"--out {self.root} cannot be created: {existing} is not a folder; choose "
                f"another --out"
            )
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UnwritableFolderError(
                f"--out {self.root} cannot be written ({existing}: {reason}); choose a folder "
                f"you can write, or fix its permissions"
            ) from None

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold ``.<name>.lock`` in the folder (``fcntl.flock``) while the block runs.

        A second process asking for the same lock is refused at once, not made to wait; the
        lock ends with the process that holds it, so a killed run leaves none behind. A lock
        file that is a symbolic link, a hard link (more than one name) or not a regular file is
        replaced by a new file, so what it linked to is never written.

        Raises
        ------
        FolderBusyError
            If another process holds it; the message names that process.
        UnwritableFolderError
            If the lock file cannot be created.
        """
        lock_name = f".{name}.lock"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = _open_own_file(self.entry(lock_name))
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UnwritableFolderError(
                f"--out {self.root} cannot be written ({reason}); choose a folder you can write"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "?"
                raise FolderBusyError(
                    f"another maco-tf process ({holder}) is writing {name} in {self.root}; wait "
                    f"for it to finish, or use another --out folder (atlas shards may share "
                    f"one: give each process its own --shard I/N)"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}"[:200].encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def remove_stale_temporaries(self, older_than_s: float = STALE_AFTER_S) -> list[Path]:
        """Delete the temporary files :func:`write_atomically` left behind (``kill -9``).

        Only regular files named as its temporary files (:data:`TEMPORARY_RE`) and not
        modified for ``older_than_s`` seconds are deleted, in the folder and its sub-folders
        (symbolic links to folders are not followed).

        Returns
        -------
        removed
            The deleted files.
        """
        removed = []
        if not self.root.is_dir():
            return removed
        oldest = time.time() - older_than_s
        for where, _, names in os.walk(self.root):
            for name in names:
                path = Path(where) / name
                if not TEMPORARY_RE.fullmatch(name):
                    continue
                try:
                    info = path.lstat()
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < oldest:
                        path.unlink()
                        removed.append(path)
                except OSError:
                    continue
        return removed


def _open_own_file(path: Path, attempts: int = 3) -> int:
    """Open (creating it) a regular file of one name at ``path`` for reading and writing.

    A symbolic link, a hard link (more than one name) or another kind of file at ``path`` is
    unlinked and a new file created in its place, so what it linked to is never written.

    Raises
    ------
    OSError
        If the file cannot be opened or replaced.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    for _ in range(attempts):
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:  # ELOOP: a symbolic link, with O_NOFOLLOW
                raise
            path.unlink()
            continue
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            return fd
        os.close(fd)
        path.unlink()
    raise OSError(errno.EEXIST, f"{path} keeps being replaced by a link")

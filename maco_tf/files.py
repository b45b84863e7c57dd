"""Writing files safely: one atomic write that every writer of maco_tf goes through.

Bottom layer: imports nothing of maco_tf but :mod:`maco_tf.errors`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_atomically", "write_text_atomically"]

#: Permissions of written files (``mkstemp`` makes private 0600 files; outputs are for everyone).
FILE_MODE = 0o644


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file so that readers see either its old content or its whole new content.

    ``write`` fills a temporary file in the same folder, which is flushed to disk and renamed
    over ``path`` (``os.replace``); an interruption at any point leaves no truncated file at
    ``path`` and no temporary file behind. Missing parent folders are created.

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

"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A failed or interrupted write (disk full, I/O error, the process killed) leaves the previous file exactly as it was
and no temporary file behind. Every file the library writes goes through :func:`atomic_write_bytes`: result files,
HTML pages, plots, the CLI's cache.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..validate import output_path

__all__ = ["atomic_write_bytes", "atomic_write_text"]


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_NEW_FILE_MODE = _new_file_mode()  # read once, at import (os.umask is process-wide)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` (its folder is created) through a temporary file in the same folder and
    ``os.replace``: a failed or interrupted write leaves the previous file as it was. A new file gets the mode
    ``open()`` would give it, a replaced file keeps its mode."""
    path = output_path(path, "path")  # a folder in the way, a file as folder: OutputPathError naming the path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes 0600 files: give the result the old file's mode, or what open() would have given
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))

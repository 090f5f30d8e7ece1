"""Atomic file writes: a crash never leaves a half-written file under the final name, and an
existing file is only replaced when asked."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class FileReadError(Exception):
    """A file could not be read or decoded; the message names the file and the reason.

    Attributes:
        path: The file.
        reason: What went wrong, in words.
    """

    kind = "file"  # subclasses: "image", "video"

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read {self.kind} {self.path}: {reason}")

    def __reduce__(self):
        # DataLoader workers pickle exceptions back to the main process; the default reduce would
        # call __init__ with the formatted message only.
        return (type(self), (self.path, self.reason))


def atomic_write(
    path: str | os.PathLike, write: Callable[[BinaryIO], object], *, overwrite: bool = False
) -> Path:
    """Write a file through a temporary file in the same folder, then move it into place.

    Args:
        path: Destination; missing parent folders are created.
        write: Called with the open binary temporary file.
        overwrite: Replace an existing `path` instead of refusing.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name in the destination folder, so the final move is a same-filesystem rename.
    # os.open with 0o666 (rather than tempfile's 0o600) lets the umask decide the final mode,
    # as for any other file the user writes.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not land before the data after a crash
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _move_no_clobber(tmp: Path, path: Path) -> None:
    # link() fails if the destination exists, closing the race between the exists() check and
    # the move; fall back to replace() on filesystems without hard links.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(
            f"{path} already exists (pass overwrite=True to replace it)"
        ) from None
    except OSError:
        os.replace(tmp, path)
        return
    tmp.unlink()

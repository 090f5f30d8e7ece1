"""Files: atomic writes (a crash never leaves a half-written file under the final name, and an
existing file is only replaced when asked) and safe reading of torch files."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from stylenet.errors import FileReadError

__all__ = ["FileReadError", "atomic_path", "atomic_write", "torch_load"]

# How a file torch.save wrote begins: a zip archive, or (before torch 1.6) a pickle of protocol 2+.
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path next to `path`, moved onto `path` only if the block succeeds.

    For writers that want a file name (``torch.jit.save``, ``onnx.save_model``); the block may
    also check what it wrote before it is kept. Missing parent folders are created.

    Raises:
        FileExistsError: `path` exists (checked before and after the block) and `overwrite` is
            False, or `path` is a directory.
    """
    path = Path(path)
    _check_target(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name in the destination folder, so the final move is a same-filesystem rename.
    # os.open with 0o666 (rather than tempfile's 0o600) lets the umask decide the final mode,
    # as for any other file the user writes.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object], *, overwrite: bool = False
) -> Path:
    """Write a file through a temporary file in the same folder, then move it into place.

    Args:
        path: Destination; missing parent folders are created.
        write: Called with the open binary temporary file.
        overwrite: Replace an existing `path` instead of refusing.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
    """
    with atomic_path(path, overwrite=overwrite) as tmp, tmp.open("wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())  # the rename must not land before the data after a crash
    return Path(path)


def _check_target(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise FileExistsError(f"{path} is a directory")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists (pass overwrite=True to replace it)")


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


def torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors, numbers, strings and
    containers only, so opening a file never runs code pickled into it.

    Raises:
        FileReadError: Missing, not written by ``torch.save``, damaged or truncated, or holding
            pickled objects (a whole ``nn.Module``, say).
    """
    path = Path(path)
    if not path.is_file():
        raise FileReadError(path, "is a directory" if path.is_dir() else "no such file")
    with path.open("rb") as f:
        head = f.read(4)
    if head != ZIP_MAGIC and not head.startswith(PICKLE_MAGIC):
        raise FileReadError(path, "not a file written by torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or foreign files
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # torch colours its message
        if isinstance(err, pickle.UnpicklingError) and (
            refused := re.search(r"Unsupported global: GLOBAL (\S+)", text)
        ):
            reason = (
                f"it holds a pickled {refused.group(1)}; stylenet loads tensors, numbers and "
                "strings only (torch.load(weights_only=True)) and never unpickles code"
            )
        else:
            first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
            reason = f"damaged or truncated ({first.split('. ')[0]})"
        raise FileReadError(path, reason) from err

"""Files: atomic writes (a crash never leaves a half-written file under the final name, and an
existing file is only replaced when asked) and safe reading of torch files."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import pickletools
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch

from stylenet.errors import FileReadError, FileWriteError

__all__ = [
    "FileReadError",
    "FileWriteError",
    "atomic_path",
    "atomic_write",
    "atomic_write_many",
    "remove_temporaries",
    "torch_load",
    "unsafe_globals",
]

# How a file torch.save wrote begins: a zip archive, or (before torch 1.6) a pickle of protocol 2+.
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"


_TMP_HEX = 12  # random hex digits in a temporary file's name


def remove_temporaries(folder: str | os.PathLike[str], pattern: str = "*") -> list[Path]:
    """Delete the temporary files `atomic_path` left in `folder` for files named like `pattern`
    (a glob: ``"*.ckpt"``) when its process was killed mid-write. Call it only where no other
    process is writing those files. Returns what was removed."""
    stale = re.compile(rf"\.(.+)\.[0-9a-f]{{{_TMP_HEX}}}\.tmp")
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        match = stale.fullmatch(path.name)
        if match and fnmatch.fnmatch(match.group(1), pattern) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:_TMP_HEX]}.tmp")
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
        FileWriteError: The system refused the write (no space left on device, read-only
            filesystem, ...); nothing is left under `path` or beside it.
    """
    return atomic_write_many([path], lambda handles: write(handles[0]), overwrite=overwrite)[0]


def atomic_write_many(
    paths: Sequence[str | os.PathLike[str]],
    write: Callable[[Sequence[BinaryIO]], object],
    *,
    overwrite: bool = False,
) -> list[Path]:
    """`atomic_write` for several files written together (one input, many outputs): `write`
    gets their open temporary files, in order; all are moved into place only if it returns.

    Raises:
        FileExistsError: One of `paths` exists and `overwrite` is False (checked before
            `write`), or two of them are the same file.
        FileWriteError: As `atomic_write`; it names the first path. Nothing is left beside any.
    """
    targets = [Path(p) for p in paths]
    if len({t.resolve() for t in targets}) < len(targets):
        raise FileExistsError(f"the same file is named twice among {[str(t) for t in targets]}")
    try:
        with contextlib.ExitStack() as stack:
            handles = [
                stack.enter_context(
                    stack.enter_context(atomic_path(t, overwrite=overwrite)).open("wb")
                )
                for t in targets
            ]
            write(handles)
            for fh in handles:
                fh.flush()
                os.fsync(fh.fileno())  # the rename must not land before the data after a crash
    except FileExistsError:
        raise
    except Exception as err:
        # torch.save wraps the OSError of a full disk in a RuntimeError of its own: look for the
        # system's reason anywhere in the chain.
        if (cause := _os_error(err)) is None:
            raise
        raise FileWriteError(
            targets[0], os.strerror(cause.errno).lower() if cause.errno else str(cause)
        ) from err
    return targets


def _os_error(err: BaseException | None) -> OSError | None:
    """The first OSError in `err`'s chain of causes and contexts."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


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


def torch_load(path: str | os.PathLike[str], *, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors, numbers, strings and
    containers only, so opening a file never runs code pickled into it.

    Args:
        path: The file.
        mmap: Map the tensors' storage instead of reading it (zip files only): for callers that
            read a few numbers of a large checkpoint.

    Raises:
        FileReadError: Missing, not written by ``torch.save``, damaged or truncated, or holding
            pickled objects (a whole ``nn.Module``, a function to call, say): the reason names
            them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileReadError(path, "is a directory" if path.is_dir() else "no such file")
    with path.open("rb") as f:
        head = f.read(4)
    if head != ZIP_MAGIC and not head.startswith(PICKLE_MAGIC):
        raise FileReadError(path, "not a file written by torch.save")
    try:
        return torch.load(
            path, map_location="cpu", weights_only=True, mmap=mmap and head == ZIP_MAGIC
        )
    except Exception as err:  # torch raises many types for damaged or foreign files
        # What the file holds decides the message, not the wording of torch's error (which
        # differs by payload and by torch version).
        if refused := unsafe_globals(path):
            shown = ", ".join(refused[:3]) + (
                f" and {len(refused) - 3} more" if len(refused) > 3 else ""
            )
            reason = (
                f"it holds a pickled {shown}; stylenet loads tensors, numbers and strings only "
                "(torch.load(weights_only=True)) and never unpickles code"
            )
        else:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # torch colours its message
            first = text.splitlines()[0] if text else type(err).__name__
            reason = f"damaged or truncated ({first.split('. ')[0]})"
        raise FileReadError(path, reason) from err


# What a legacy (non-zip) torch file of tensors names: torch's storages, dtypes and tensor
# rebuilders, and a few containers.
_LEGACY_SAFE_MODULES = frozenset({"torch", "torch._utils"})
_LEGACY_SAFE_NAMES = frozenset(
    {"collections.OrderedDict", "_codecs.encode", "builtins.set", "__builtin__.set"}
)


def unsafe_globals(path: str | os.PathLike[str]) -> list[str]:
    """The functions and classes a torch file's pickle names that ``torch.load(weights_only=True)``
    refuses to call (``["posix.system"]``, ``["torch.nn.modules.linear.Linear"]``), found by
    reading the pickle's opcodes, never by running them. Empty for a clean file, and for one
    too damaged to read."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        names = _pickled_globals(path.read_bytes())
    except Exception:  # damaged beyond reading its opcodes
        return []
    return sorted(
        n
        for n in names
        if n not in _LEGACY_SAFE_NAMES and n.rsplit(".", 1)[0] not in _LEGACY_SAFE_MODULES
    )


def _pickled_globals(data: bytes) -> set[str]:
    """Every ``module.name`` the pickles in `data` (a legacy torch file is several in a row)
    import, from GLOBAL, INST and STACK_GLOBAL opcodes (the last takes the two strings pushed
    before it, directly or from the memo)."""
    found: set[str] = set()
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        strings: list[str] = []  # the strings pushed so far, latest last
        memo: dict[int, str | None] = {}
        last: str | None = None  # the latest push, if a string
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                name = opcode.name
                if name in ("GLOBAL", "INST"):
                    found.add(str(arg).replace(" ", "."))
                elif name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.add(f"{strings[-2]}.{strings[-1]}")
                elif name == "MEMOIZE":
                    memo[len(memo)] = last
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(str(arg))] = last
                elif name in ("GET", "BINGET", "LONG_BINGET") and memo.get(int(str(arg))):
                    strings.append(last := str(memo[int(str(arg))]))
                elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
                    strings.append(last := arg)
                elif opcode.stack_after:
                    last = None
        except Exception:  # the end of the pickles: raw tensor data follows
            break
    return found

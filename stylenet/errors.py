"""Errors a user can fix: every command prints one as a single line and exits with its code.

Anything else that escapes a command is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class StylenetError(Exception):
    """Base of the errors that name what the user should fix (a file, an argument, a setting).

    Attributes:
        exit_code: What a command exits with when this error stops it: 2, the command could not
            start (a bad argument, setting or input file); 1, the work itself failed.
    """

    exit_code = 2


class ConfigError(StylenetError, ValueError):
    """A bad argument or configuration value; the message names the setting (``style.image=``,
    ``--tile``)."""


class FileReadError(StylenetError):
    """A file could not be read or decoded; the message names the file and the reason.

    Attributes:
        path: The file.
        reason: What went wrong, in words.
    """

    kind = "file"  # subclasses: "image", "video", "model file", ...

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read {self.kind} {self.path}: {reason}")

    def __reduce__(self) -> tuple[type[FileReadError], tuple[Path, str]]:
        # DataLoader workers pickle exceptions back to the main process; the default reduce would
        # call __init__ with the formatted message only.
        return (type(self), (self.path, self.reason))


class OutputExistsError(StylenetError, FileExistsError):
    """An output that already exists and was not to be replaced (``--overwrite`` replaces it)."""


class FileWriteError(StylenetError, OSError):
    """A file could not be written (a full disk, a read-only folder); the message names the
    file and the system's reason. Nothing half-written is left under its name.

    Attributes:
        path: The file.
        reason: The system's reason, in words (``no space left on device``).
    """

    exit_code = 1  # the work failed: the command had started

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{reason} writing {self.path}")

    def __reduce__(self) -> tuple[type[FileWriteError], tuple[Path, str]]:
        return (type(self), (self.path, self.reason))

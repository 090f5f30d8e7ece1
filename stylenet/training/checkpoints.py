"""Checkpoints that survive crashes: atomic writes on every filesystem, and finding the one a
restarted run continues from (``resume=auto``)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from stylenet.io.files import atomic_write

log = logging.getLogger(__name__)

DIVERGED_SUFFIX = ".diverged"
_STEP = re.compile(r"step(\d+)\.ckpt$")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO`, but each checkpoint is written to a temporary file in
    its own folder, flushed to disk (fsync) and renamed onto its name. A crash mid-write leaves
    the previous checkpoint intact on any filesystem; Lightning's own writer is atomic only when
    its temporary folder shares a filesystem with the checkpoint."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_write(path, lambda fh: torch.save(checkpoint, fh), overwrite=True)


def checkpoint_step(path: Path) -> int:
    """The global step a Lightning checkpoint was saved at (read from the file)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return int(checkpoint["global_step"])


def find_resume_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a restarted run continues from: the newest of ``last.ckpt`` and
    ``step*.ckpt`` in `folder` by the step they hold (None if there is none)."""
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.glob("*.ckpt") if p.name == "last.ckpt" or _STEP.search(p.name)]
    newest: tuple[int, Path] | None = None
    for path in candidates:
        try:
            step = checkpoint_step(path)
        except Exception as err:  # a damaged file: say so, fall back to an older one
            log.warning("resume: ignoring unreadable checkpoint %s (%s)", path, err)
            continue
        if newest is None or step > newest[0] or (step == newest[0] and path.name == "last.ckpt"):
            newest = (step, path)
    return newest[1] if newest else None


def set_aside_after(folder: Path, step: int) -> list[Path]:
    """Rename the checkpoints in `folder` saved after `step` to ``*.diverged`` (kept for a look,
    never resumed from). Returns the new names."""
    moved = []
    for path in sorted(folder.glob("*.ckpt")) if folder.is_dir() else []:
        try:
            saved_at = checkpoint_step(path)
        except Exception:
            continue
        if saved_at > step:
            target = path.with_name(path.name + DIVERGED_SUFFIX)
            os.replace(path, target)
            moved.append(target)
    return moved

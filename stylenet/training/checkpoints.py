"""Checkpoints that survive crashes and never run code: atomic writes on every filesystem, reads
of tensors, numbers and strings only (``weights_only=True``: a checkpoint planted in a run folder
is refused, not executed), and finding the one a restarted run continues from (``resume=auto``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from stylenet.errors import FileReadError
from stylenet.io.files import atomic_write, remove_temporaries, torch_load

log = logging.getLogger(__name__)

DIVERGED_SUFFIX = ".diverged"
_STEP = re.compile(r"step(\d+)\.ckpt$")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO`, made safe both ways.

    Writing: each checkpoint goes to a temporary file in its own folder, flushed to disk (fsync)
    and renamed onto its name. A crash mid-write leaves the previous checkpoint intact on any
    filesystem (Lightning's own writer is atomic only when its temporary folder shares a
    filesystem with the checkpoint); a full disk is one `FileWriteError` naming the file.

    Reading (``ckpt_path=``, ``resume=auto``): ``torch.load(weights_only=True)`` whatever Lightning
    asks for, so a checkpoint that holds pickled code is refused (`FileReadError`) and never run.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_write(path, lambda fh: torch.save(checkpoint, fh), overwrite=True)

    def load_checkpoint(
        self,
        path: str | os.PathLike[str],
        map_location: Any = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        # On the CPU, as Lightning's default map_location keeps it; Lightning moves the state
        # where it belongs.
        checkpoint = torch_load(path)
        if not isinstance(checkpoint, dict):
            raise FileReadError(path, "not a Lightning checkpoint")
        return checkpoint


def checkpoint_step(path: Path) -> int:
    """The global step a Lightning checkpoint was saved at (read from the file with
    ``weights_only=True``; its tensors are mapped, not read).

    Raises:
        FileReadError: The file is damaged, holds pickled code, or is not a Lightning checkpoint.
    """
    checkpoint = torch_load(path, mmap=True)
    step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    if not isinstance(step, int):
        raise FileReadError(path, "not a Lightning checkpoint (no global_step)")
    return step


def find_resume_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a restarted run continues from: the newest of ``last.ckpt`` and
    ``step*.ckpt`` in `folder` by the step they hold (None if there is none). Temporary files
    of checkpoint writes that a killed run left behind are removed first."""
    if not folder.is_dir():
        return None
    for stale in remove_temporaries(folder, "*.ckpt"):
        log.info("resume: removed %s, left by a run killed while writing a checkpoint", stale)
    candidates = [p for p in folder.glob("*.ckpt") if p.name == "last.ckpt" or _STEP.search(p.name)]
    newest: tuple[int, Path] | None = None
    for path in candidates:
        try:
            step = checkpoint_step(path)
        except FileReadError as err:  # damaged, or planted: say so, fall back to an older one
            log.warning("resume: ignoring %s", err)
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
        except FileReadError:
            continue  # not one of this run's checkpoints: left where it is
        if saved_at > step:
            target = path.with_name(path.name + DIVERGED_SUFFIX)
            os.replace(path, target)
            moved.append(target)
    return moved

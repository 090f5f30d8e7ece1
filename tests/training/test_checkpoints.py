"""Checkpoints: written atomically, and the newest readable one is found for resume=auto."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenet.training.checkpoints import (
    AtomicCheckpointIO,
    find_resume_checkpoint,
    set_aside_after,
)


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full, say")


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 3, "w": torch.ones(4)}, path)
    assert torch.load(path)["global_step"] == 3
    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"global_step": 4, "bad": Unpicklable()}, path)
    assert torch.load(path)["global_step"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    io.save_checkpoint({"global_step": 5}, path)  # replaces it when the write succeeds
    assert torch.load(path)["global_step"] == 5


def _ckpt(path: Path, step: int) -> Path:
    torch.save({"global_step": step}, path)
    return path


def test_resume_picks_the_newest_readable_checkpoint_by_its_step(tmp_path: Path) -> None:
    assert find_resume_checkpoint(tmp_path / "none") is None
    assert find_resume_checkpoint(tmp_path) is None
    _ckpt(tmp_path / "step0000004.ckpt", 4)
    _ckpt(tmp_path / "step0000008.ckpt", 8)
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step0000008.ckpt"
    _ckpt(tmp_path / "last.ckpt", 8)  # same step: last.ckpt
    assert find_resume_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    _ckpt(tmp_path / "last.ckpt", 6)  # an older last.ckpt loses to a newer step file
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step0000008.ckpt"
    (tmp_path / "step0000012.ckpt").write_bytes(b"PK\x03\x04 cut short")
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step0000008.ckpt"
    _ckpt(tmp_path / "other.ckpt", 99)  # not one of the run's names
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step0000008.ckpt"


def test_checkpoints_after_the_last_good_step_are_set_aside(tmp_path: Path) -> None:
    for step in (2, 4, 6):
        _ckpt(tmp_path / f"step{step:07d}.ckpt", step)
    _ckpt(tmp_path / "last.ckpt", 6)
    moved = set_aside_after(tmp_path, 4)
    assert sorted(p.name for p in moved) == ["last.ckpt.diverged", "step0000006.ckpt.diverged"]
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step0000004.ckpt"

"""Atomic writes never leave a half-written file and never replace one unasked; torch files are
read without unpickling code."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch

from stylenet.errors import FileReadError, FileWriteError
from stylenet.io.files import atomic_path, atomic_write, remove_temporaries, torch_load


def test_atomic_write_creates_folders_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.bin"
    atomic_write(path, lambda fh: fh.write(b"first"))
    assert path.read_bytes() == b"first"
    with pytest.raises(FileExistsError, match=r"out\.bin"):
        atomic_write(path, lambda fh: fh.write(b"second"))
    assert path.read_bytes() == b"first"
    atomic_write(path, lambda fh: fh.write(b"second"), overwrite=True)
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["out.bin"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def fail(fh) -> None:
        fh.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, fail, overwrite=True)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_path_keeps_the_file_only_if_the_block_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    with pytest.raises(ValueError, match="verification"), atomic_path(path) as tmp:
        tmp.write_bytes(b"bad export")
        raise ValueError("verification failed")
    assert os.listdir(tmp_path) == []
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"good export")
    assert path.read_bytes() == b"good export"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    with pytest.raises(FileExistsError, match="is a directory"), atomic_path(tmp_path):
        pass


def test_torch_load_reads_tensors_and_refuses_code(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(torch_load(good)["w"], torch.ones(2))

    code = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), code)  # a whole module: pickled code
    with pytest.raises(FileReadError, match=r"module\.pt: it holds a pickled torch.nn.*Linear"):
        torch_load(code)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(FileReadError, match=r"junk\.pt: not a file written by torch.save"):
        torch_load(junk)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(FileReadError, match=r"truncated\.pt: damaged or truncated"):
        torch_load(truncated)
    with pytest.raises(FileReadError, match="no such file"):
        torch_load(tmp_path / "missing.pt")
    with pytest.raises(FileReadError, match="is a directory"):
        torch_load(tmp_path)


def test_file_read_errors_survive_pickling() -> None:
    # DataLoader workers send exceptions back to the main process pickled.
    err = pickle.loads(pickle.dumps(FileReadError("x/y.jpg", "truncated")))
    assert (err.path, err.reason) == (Path("x/y.jpg"), "truncated")
    assert str(err) == "cannot read file x/y.jpg: truncated"


def test_a_refused_write_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"old")

    def full_disk(fh) -> None:
        # what torch.save does on a full disk: its own error, the system's in its context
        fh.write(b"half")
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    with pytest.raises(FileWriteError) as info:
        atomic_write(path, full_disk, overwrite=True)
    assert str(info.value) == f"no space left on device writing {path}"
    assert info.value.exit_code == 1
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["last.ckpt"]


def test_remove_temporaries_takes_only_what_a_killed_write_left(tmp_path: Path) -> None:
    keep = [tmp_path / n for n in ("last.ckpt", ".notes.tmp", ".model.pt.0123456789ab.tmp")]
    stale = [
        tmp_path / n for n in (".last.ckpt.0123456789ab.tmp", ".step0000002.ckpt.abcdef012345.tmp")
    ]
    for path in keep + stale:
        path.write_bytes(b"x")
    assert sorted(remove_temporaries(tmp_path, "*.ckpt")) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(keep)

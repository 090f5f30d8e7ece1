"""`stylenet-stylize --devices 2`: photos spread over two processes (Lightning's DDP on the CPU,
gloo), killed halfway and started again (from a list file naming the same photos): every photo
written exactly once, the corrupt one failed and named, nothing half-written left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stylenet.inference.batch import Job, Options
from stylenet.inference.distributed import _Photos
from stylenet.inference.model_file import save_model
from stylenet.models import TransformerNet
from tests.helpers import photo

PHOTOS = 50


def _command(model: Path, inputs: list[str], out: Path) -> list[str]:
    return [
        sys.executable, "-m", "stylenet.cli.stylize", str(model), *inputs, "-o", str(out),
        "--devices", "2", "--device", "cpu", "-q",
    ]  # fmt: skip


def _written(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.png")}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_killed_halfway_and_started_again_writes_each_photo_once(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = save_model(TransformerNet(), tmp_path / "model.pt")  # the paper's: slow enough to stop
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(PHOTOS - 1):
        photo(src / f"p{i:02d}.png", size=(160 + i, 120))
    (src / "p25_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    first = subprocess.Popen(
        _command(model, [str(src)], out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # the launcher and its second process: one group to kill
    )
    deadline = time.monotonic() + 300
    while len(_written(out) if out.is_dir() else {}) < 8:
        assert first.poll() is None, "the run ended before it could be stopped halfway"
        assert time.monotonic() < deadline, "no photo written in 300 s"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _written(out)
    assert 8 <= len(before) < PHOTOS - 1

    # Started again from a list file naming the same photos: the same outputs.
    listing = tmp_path / "photos.txt"
    listing.write_text("".join(f"in/{p.name}\n" for p in sorted(src.iterdir())))
    again = subprocess.run(
        _command(model, ["--list", str(listing)], out), capture_output=True, text=True, env=env
    )
    assert again.returncode == 1, again.stderr[-2000:]  # one photo failed
    after = _written(out)
    assert sorted(after) == [f"p{i:02d}.png" for i in range(PHOTOS - 1)]
    # What the first run wrote was not written again.
    assert {name: after[name] for name in before} == before
    done = PHOTOS - 1 - len(before)
    assert f"done {done}, skipped {len(before)} (already written), failed 1; 2 process(es)" in (
        again.stdout
    )
    assert f"FAILED {src / 'p25_corrupt.png'}" in again.stderr
    leftovers = [p.name for p in out.rglob("*") if p.suffix == ".tmp" or p.name.startswith(".")]
    assert leftovers == []  # no temporary file of the killed run, no record folder


def test_a_photo_too_large_to_hold_is_an_error_of_its_own_not_a_crash(tmp_path: Path) -> None:
    jobs = [Job(photo(tmp_path / "a.png", size=(40, 30)), tmp_path / "out" / "a.png")]
    item = _Photos(jobs, Options(scale=1e5))[0]
    assert item["image"] is None and "GB of memory to hold" in item["error"]
    assert _Photos(jobs, Options())[0]["image"].shape == (3, 30, 40)

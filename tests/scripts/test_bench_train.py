"""scripts/bench_train.py runs end to end at a tiny size (its numbers are for the README, not
asserted here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_bench_train_prints_its_tables(tmp_path, photo_dir, style_path) -> None:
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "bench_train.py"),
        "--size=32",
        "--steps=1",
        "--rounds=1",
        "--vgg=random",
        f"--style={style_path}",
        f"--photos={photo_dir}",
        "--lightning-steps",
        "1",
        "2",
        "--only",
        "eager",
        "--skip",
        "whole-run",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for row in (
        "| reference (pytorch/examples recipe) |",
        "| stylenet eager fp32 |",
        "| stylenet eager bf16-mixed |",
        "| stylenet eager fp32 + motion term (compound) |",
        "decode + resize + crop",
        "GFLOP/step",
        "| Trainer.fit,",
    ):
        assert row in out, out
    assert "compiled" not in out

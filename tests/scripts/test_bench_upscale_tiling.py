"""scripts/bench_upscale_tiling.py runs end to end at a tiny size (its numbers are for the README,
not asserted here, but for the tiled result matching the untiled one)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_bench_upscale_tiling_prints_its_table(tmp_path) -> None:
    cmd = [sys.executable, str(REPO / "scripts" / "bench_upscale_tiling.py"), "--size", "90", "60"]
    cmd += ["--tiles", "24", "--channels", "8", "--blocks", "1", "--crop", "24", "--margin", "16"]
    cmd += ["--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [row] = [line for line in proc.stdout.splitlines() if line.startswith("| 24 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "12"  # 4 × 3 tiles
    assert cells[5].startswith(("0/255", "1/255")), row

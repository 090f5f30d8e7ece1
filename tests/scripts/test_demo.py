"""`make demo` end to end, shortened: weights from the environment, package photos, the drawn
stained-glass style, a real training run and the stylize command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import REPO


@pytest.mark.slow
def test_demo_script_trains_and_stylizes_a_heldout_photo(tmp_path, vgg16_weights) -> None:
    out = tmp_path / "demo"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "demo.py"),
        "--steps=2",
        "--size=32",
        f"--out={out}",
        "data.num_workers=0",
        "trainer.val_check_interval=1",
        "callbacks.model_checkpoint.every_n_train_steps=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = out.glob("run-*")
    heldout = next((out / "heldout").glob("*.jpg"))
    assert not (out / "photos" / heldout.name).exists()  # never trained on
    stylized = run_dir / f"stylized_{heldout.stem}.jpg"
    assert Image.open(stylized).size == Image.open(heldout).size
    assert (run_dir / f"compare_{heldout.stem}.jpg").is_file()
    assert (out / "stained_glass.png").is_file()

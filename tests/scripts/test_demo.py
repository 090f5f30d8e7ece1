"""`make demo` end to end, shortened: weights from the environment, package photos, the drawn
stained-glass style, a real training run and the stylize command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stylenet.io.samples import package_photos, stained_glass
from tests.conftest import REPO


def test_stained_glass_is_deterministic_and_colourful() -> None:
    a, b = stained_glass(64, seed=3), stained_glass(64, seed=3)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != stained_glass(64, seed=4).tobytes()
    assert len(np.unique(np.asarray(a).reshape(-1, 3), axis=0)) > 20


def test_package_photos_are_real_colour_photos(tmp_path) -> None:
    photos = package_photos(tmp_path, max_side=64)
    assert len(photos) >= 5
    for p in photos:
        img = Image.open(p)
        assert img.mode == "RGB" and max(img.size) <= 64


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

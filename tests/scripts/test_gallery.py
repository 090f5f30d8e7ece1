"""scripts/gallery.py draws its four pictures from trained runs (tiny stand-ins here: it trains
only where a run has no model.pt, which the real runs of `make gallery` do)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from stylenet.io.samples import stained_glass
from tests.helpers import REPO, save_tiny_model


def fake_run(run: Path, steps: int) -> None:
    """A run folder as stylenet-train leaves it: model.pt, config.yaml, csv/metrics.csv."""
    save_tiny_model(run)
    OmegaConf.save(
        {"trainer": {"max_steps": steps}, "data": {"image_size": 64}}, run / "config.yaml"
    )
    (run / "seconds.txt").write_text("120.0")
    (run / "csv").mkdir()
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "train/loss", "val/content", "val/style"])
        writer.writeheader()
        for step in range(0, steps + 1, 10):
            writer.writerow({"step": step, "train/loss": 1.0})  # a row without val/: skipped
            writer.writerow(
                {"step": step, "val/content": 10 - step / 10, "val/style": 50 / (1 + step)}
            )


@pytest.mark.slow
def test_gallery_draws_its_pictures_from_runs(tmp_path: Path, vgg16_weights: str) -> None:
    paintings = tmp_path / "paintings"
    paintings.mkdir()
    for style in ("mosaic", "candy"):
        stained_glass(96, cells=12, seed=len(style)).save(paintings / f"{style}.jpg")
        fake_run(tmp_path / "runs" / style, steps=40)
    out = tmp_path / "images"
    cmd = [
        sys.executable, str(REPO / "scripts" / "gallery.py"), "--runs", str(tmp_path / "runs"),
        "--out", str(out), "--styles", "mosaic", "candy", "--gatys-size", "48",
        "--gatys-iterations", "2", "--tiled-side", "320", "--tile", "128",
    ]  # fmt: skip
    env = {**os.environ, "STYLENET_STYLE_DIR": str(paintings)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = {p.name: Image.open(p).size for p in out.iterdir()}
    assert set(sizes) == {
        "gallery_grid.jpg", "gallery_gatys.jpg", "gallery_tiled.jpg", "gallery_curves.png"
    }  # fmt: skip
    # The grid: a row of paintings and one per package photo (4), a column per style plus one.
    width, height = sizes["gallery_grid.jpg"]
    assert width == 4 + 3 * (224 + 4) and height == 4 + 5 * (224 + 4)
    assert "- mosaic: 40 steps at 64², 2 min" in proc.stdout
    assert "320×" in proc.stdout and "tiles" in proc.stdout

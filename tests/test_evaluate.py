"""stylenet-evaluate: one report row per photo with finite numbers, grid, refusals, skips."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from stylenet.evaluate import evaluate, main, training_loss
from stylenet.images import load_image
from stylenet.model_file import save_model
from stylenet.models import TransformerNet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, style_path) -> str:
    """A (random) small network saved the way stylenet-train saves one, loss config included."""
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    loss_cfg = OmegaConf.to_container(OmegaConf.load("configs/loss/johnson.yaml"))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(
        net, path, metadata={"style_image": str(style_path), "style_size": 48, "loss": loss_cfg}
    )
    return str(path)


def test_training_loss_comes_from_the_model_file(model_file, style_path, vgg16_weights) -> None:
    target = training_loss(model_file)
    assert target.style_image == str(style_path) and target.style_size == 48
    assert "metadata" in target.source
    assert (target.loss.content_weight, target.loss.style_weight) == (1.0, 0.5)
    assert target.loss.target_gram("relu3_3").shape == (1, 256, 256)


def test_report_has_one_finite_row_per_photo(
    model_file, photo_dir, tmp_path, vgg16_weights
) -> None:
    photos = sorted(p.name for p in photo_dir.iterdir())
    report = evaluate(model_file, photo_dir, tmp_path, size=32, optimize=[2, 5], progress=False)
    assert [r["photo"] for r in report["rows"]] == photos
    for row in report["rows"]:
        for method in (row["input"], row["model"], *row["optimization"].values()):
            assert all(math.isfinite(method[k]) for k in ("content", "style", "tv", "total"))
        assert row["input"]["content"] == 0  # the photo against itself
        assert row["model"]["seconds"] > 0
        opt = row["optimization"]
        assert set(opt) == {"2", "5"} and opt["2"]["seconds"] <= opt["5"]["seconds"]
        # Optimization starts from the photo and lowers the total loss.
        assert opt["5"]["total"] < row["input"]["total"]
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["summary"]["photos"] == len(photos)
    assert on_disk["summary"]["optimization_5"]["time_ratio"] > 0
    table = (tmp_path / "report.md").read_text()
    assert table.count("| L-BFGS 5 |") == len(photos)
    grid = load_image(tmp_path / "grid.jpg")
    # photo | model | optimization per row, 32-px tiles with 4-px padding
    assert grid.size == (3 * 32 + 4 * 4, len(photos) * 32 + (len(photos) + 1) * 4)
    assert (tmp_path / "images" / f"{photos[0].rsplit('.', 1)[0]}_opt5.png").is_file()


def test_cli_refuses_to_overwrite_and_skips_unreadable_photos(
    model_file, photo_dir, tmp_path, vgg16_weights, capsys
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "good.jpg").write_bytes((photo_dir / "coffee.jpg").read_bytes())
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "eval"
    args = [model_file, "--content", str(photos), "-o", str(out), "--size", "32"]
    assert main(args) == 1  # a report, but one photo was unreadable
    report = json.loads((out / "report.json").read_text())
    assert [r["photo"] for r in report["rows"]] == ["good.jpg"]
    assert report["skipped"][0]["photo"] == "broken.jpg"
    assert "optimization" not in report["rows"][0]
    assert main(args) == 2  # report exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 1


def test_a_model_without_recorded_style_needs_one(tmp_path, photo_dir, vgg16_weights) -> None:
    path = tmp_path / "model.pt"
    save_model(TransformerNet(base_channels=8, num_residual_blocks=1), path)
    with pytest.raises(ValueError, match="--style"):
        training_loss(path)
    assert main([str(path), "--content", str(photo_dir), "-o", str(tmp_path / "e")]) == 2

"""evaluate: one report row per photo with finite numbers, the grid, the summary metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch

import stylenet.evaluation.evaluate as evaluate_module
from stylenet.errors import ConfigError
from stylenet.evaluation.evaluate import evaluate, training_loss
from stylenet.inference.model_card import ModelCard, StyleRecord
from stylenet.inference.model_file import save_model
from stylenet.io.images import load_image
from stylenet.models import TransformerNet
from stylenet.reference.optimize import loss_preset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, style_path) -> str:
    """A (random) small network saved the way stylenet-train saves one, loss config included."""
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    loss_cfg = loss_preset("johnson")  # what stylenet-train records
    path = tmp_path_factory.mktemp("model") / "model.pt"
    styles = (StyleRecord(style_path.stem, str(style_path), 48),)
    save_model(net, path, card=ModelCard(network="", styles=styles, loss=loss_cfg))
    return str(path)


def test_training_loss_comes_from_the_model_file(model_file, style_path, vgg16_weights) -> None:
    target = training_loss(model_file)
    assert target.style_image == str(style_path) and target.style_size == 48
    assert "model card" in target.source
    assert (target.loss.content_weight, target.loss.style_weight) == (1.0, 0.5)
    assert target.loss.target_gram("relu3_3").shape == (1, 256, 256)


def test_report_has_one_finite_row_per_photo(
    model_file, photo_dir, tmp_path, vgg16_weights
) -> None:
    photos = sorted(p.name for p in photo_dir.iterdir())
    report = evaluate(model_file, photo_dir, tmp_path, size=32, optimize=[2, 5], progress=False)
    assert [r.photo for r in report.rows] == photos
    for row in report.rows:
        for _, score in row.methods():
            assert list(score.terms) == ["content", "style", "tv"]  # the loss's named terms
            assert all(math.isfinite(v) for v in [*score.terms.values(), score.total])
        assert row.input.terms["content"] == 0  # the photo against itself
        assert row.input.lpips == pytest.approx(0, abs=1e-6) and row.input.ssim == pytest.approx(1)
        assert row.model.seconds is not None and row.model.seconds > 0
        opt = row.optimization
        assert set(opt) == {2, 5} and opt[2].seconds <= opt[5].seconds
        # Optimization starts from the photo and lowers the total loss.
        assert opt[5].total < row.input.total
        # After a few steps from the photo, it is still much closer to it than a random
        # network's output.
        assert 0 < opt[5].lpips < row.model.lpips and row.model.ssim < opt[5].ssim < 1
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["summary"]["photos"] == len(photos)
    assert [b["iterations"] for b in on_disk["summary"]["optimization"]] == [2, 5]
    assert on_disk["summary"]["optimization"][1]["time_ratio"] > 0
    assert on_disk["rows"][0]["optimization"]["5"]["iterations"] == 5
    metrics = report.summary.metrics()
    assert metrics["eval/model_total"] == report.summary.model_total
    assert metrics["eval/model_lpips"] == on_disk["summary"]["model_lpips"]
    assert metrics["eval/model_ssim"] == pytest.approx(
        sum(r.model.ssim for r in report.rows) / len(report.rows)
    )
    assert metrics["eval/lbfgs_5/lpips"] == on_disk["summary"]["optimization"][1]["lpips"]
    assert on_disk["rows"][0]["optimization"]["5"]["ssim"] == report.rows[0].optimization[5].ssim
    assert metrics["eval/lbfgs_5/total"] == on_disk["summary"]["optimization"][1]["total"]
    table = (tmp_path / "report.md").read_text()
    assert table.count("| L-BFGS 5 |") == len(photos)
    assert "| mean LPIPS | mean SSIM |" in table
    grid = load_image(tmp_path / "grid.jpg")
    # photo | model | optimization per row, 32-px tiles with 4-px padding
    assert grid.size == (3 * 32 + 4 * 4, len(photos) * 32 + (len(photos) + 1) * 4)
    assert (tmp_path / "images" / f"{photos[0].rsplit('.', 1)[0]}_opt5.png").is_file()


def test_a_model_without_recorded_style_needs_one(tmp_path, photo_dir, vgg16_weights) -> None:
    path = tmp_path / "model.pt"
    save_model(TransformerNet(base_channels=8, num_residual_blocks=1), path)
    with pytest.raises(ConfigError, match="--style"):
        training_loss(path)


def test_a_missing_content_or_an_output_file_is_refused_before_any_work(
    model_file, photo_dir, tmp_path, monkeypatch
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("refused too late: the model was loaded")

    monkeypatch.setattr(evaluate_module, "load", no_work)
    # Issue 16: a missing folder was an OSError (exit 1) where an empty one is a ConfigError.
    with pytest.raises(ConfigError, match=r"content .*missing: no such file or folder"):
        evaluate(model_file, tmp_path / "missing", tmp_path / "eval")
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(ConfigError, match=r"output folder .*notes\.txt is a file"):
        evaluate(model_file, photo_dir, tmp_path / "notes.txt")


def test_a_model_trained_with_a_pixel_loss_reports_the_pixel_term(
    tmp_path, photo_dir, style_path
) -> None:
    # Issue 17: the report's columns are the training loss's named terms, so the pixel term
    # (in `total` all along) gets its column too. A random VGG is enough to say so.
    torch.manual_seed(0)
    loss_cfg = {**loss_preset("johnson"), "pixel_weight": 2.0}
    loss_cfg["vgg"] = {**loss_cfg["vgg"], "weights": "random"}
    card = ModelCard(
        network="TransformerNet",
        styles=(StyleRecord("glass", image=str(style_path), size=32),),
        loss=loss_cfg,
    )
    path = save_model(
        TransformerNet(base_channels=8, num_residual_blocks=1), tmp_path / "model.pt", card=card
    )
    with pytest.warns(UserWarning, match="RANDOMLY INITIALIZED"):
        report = evaluate(path, photo_dir, tmp_path / "eval", size=32, progress=False)
    assert report.term_names() == ["content", "style", "tv", "pixel"]
    assert report.loss_weights["pixel"] == 2.0
    for row in report.rows:
        assert row.input.terms["pixel"] == 0 and row.model.terms["pixel"] > 0
        assert sum(row.model.terms.values()) == pytest.approx(row.model.total, rel=1e-5)
    on_disk = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert on_disk["rows"][0]["model"]["terms"]["pixel"] == report.rows[0].model.terms["pixel"]
    table = (tmp_path / "eval" / "report.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| photo | method |"))
    assert header == (
        "| photo | method | content | style | tv | pixel | total | LPIPS | SSIM | seconds |"
    )

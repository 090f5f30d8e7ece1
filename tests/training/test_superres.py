"""task=superres end to end: real Lightning trainer, real Hydra composition, real VGG-16; tiny
crops and few steps. The style task's files are untouched by this task (see the README)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from stylenet.inference.model_file import load_network
from stylenet.models import SuperResolutionNet
from stylenet.training.run import train
from tests.helpers import ComposeTrain, read_metrics, val_series

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo_copies(tmp_path_factory, photo_dir: Path) -> Path:
    """The package photos again: held out, they show a few dozen steps moving off bicubic."""
    copies = tmp_path_factory.mktemp("copies")
    for path in photo_dir.iterdir():
        shutil.copy(path, copies / path.name)
    return copies


def sr_overrides(photos: Path, copies: Path, *, steps: int, loss: str = "superres") -> list[str]:
    """A few seconds of ×4 training on the package photos."""
    return [
        "task=superres",
        "scale=4",
        f"loss={loss}",
        f"data.root={photos}",
        f"data.val_root={copies}",
        "trainer=cpu",
        "train.compile=false",
        "trainer.precision=32-true",
        "data.image_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.max_val_images=2",
        "model.channels=16",
        "model.num_residual_blocks=1",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        f"callbacks.model_checkpoint.every_n_train_steps={steps}",
        "logger=csv",
    ]


def test_super_resolution_trains_and_writes_an_sr_model(
    compose_train: ComposeTrain, tmp_path, photo_dir, photo_copies, vgg16_weights
) -> None:
    run_dir = tmp_path / "perceptual"
    overrides = sr_overrides(photo_dir, photo_copies, steps=60)
    overrides += [f"evaluate.content={photo_copies}", "evaluate.size=64"]
    metrics = train(compose_train(overrides, run_dir))
    assert metrics["global_step"] == 60
    # The held-out feature loss, at the baseline (the untrained net is bicubic) and after.
    content = val_series(read_metrics(run_dir), "val/content")
    assert content[0][0] == 0 and content[-1][1] < content[0][1], content
    assert "val/style" not in read_metrics(run_dir)[0]  # no style term in this task

    net, card = load_network(metrics["model_path"])
    assert isinstance(net, SuperResolutionNet) and net.scale == 4
    assert (card.task, card.scale, card.network, card.styles) == (
        "superres",
        4,
        "SuperResolutionNet",
        (),
    )
    assert card.loss["content_layers"] == ["relu2_2"] and card.training.image_size == 32
    with torch.no_grad():
        assert net(torch.rand(1, 3, 7, 9)).shape == (1, 3, 28, 36)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["module"]["_target_"] == "stylenet.training.superres.SuperResolutionModule"
    assert saved["data"]["resize"] is False
    # The end-of-training report: the model against bicubic, handed to the loggers too.
    report = (run_dir / "evaluate" / "report.md").read_text()
    assert "| bicubic |" in report and "| model |" in report
    assert {"eval/model/psnr", "eval/bicubic/lpips", "eval/model/psnr_gain"} <= set(
        read_metrics(run_dir)[-1]
    )
    # The grid: low-res input, output, high-res, one row per held-out photo.
    assert sorted(p.name for p in (run_dir / "images").iterdir())[-1] == "val_step0000060.png"


def test_the_pixel_baseline_needs_no_vgg(
    compose_train: ComposeTrain, tmp_path, photo_dir, photo_copies, monkeypatch
) -> None:
    # A VGG built anyway would look for weights here and fail.
    monkeypatch.setenv("STYLENET_VGG16_WEIGHTS", str(tmp_path / "no-such-weights.safetensors"))
    run_dir = tmp_path / "pixel"
    overrides = sr_overrides(photo_dir, photo_copies, steps=30, loss="pixel")
    metrics = train(compose_train(overrides, run_dir))
    row = read_metrics(run_dir)[0]
    assert "val/pixel" in row and "val/content" not in row
    pixel = val_series(read_metrics(run_dir), "val/pixel")
    assert pixel[-1][1] < pixel[0][1], pixel
    assert load_network(metrics["model_path"])[1].loss["pixel_weight"] == 1.0

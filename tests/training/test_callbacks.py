"""The callbacks every run has, in real (tiny) runs: the final weights are validated and
checkpointed whatever the intervals, and a crash still leaves model.pt."""

from __future__ import annotations

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from stylenet.inference.model_file import load_model, read_card
from stylenet.training.run import train
from tests.helpers import ComposeTrain, read_metrics, tiny_run_overrides, val_series

pytestmark = pytest.mark.slow


def test_the_final_state_is_validated_and_checkpointed(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    """5 steps with validation and checkpoints every 2: the step-5 weights still get both."""
    overrides = [*tiny_run_overrides(style_path, photo_dir, steps=5), "logger=csv"]
    overrides += ["loss.vgg.weights=random", "model=small"]
    metrics = train(compose_train(overrides, tmp_path))
    assert metrics["global_step"] == 5
    steps = [step for step, _ in val_series(read_metrics(tmp_path), "val/style")]
    # The baseline, after steps 2 and 4, and the final weights. Lightning logs a validation inside
    # fit at the number of batches stepped before the current one: steps 2, 4, 5 appear as 1, 3, 4.
    assert steps == [0, 1, 3, 4]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        f"val_step{step:07d}.png" for step in (0, 2, 4, 5)
    ]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 5
    assert read_card(tmp_path / "model.pt").training.global_step == 5


class FailAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_a_crash_mid_run_still_leaves_the_model_file(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    overrides = [*tiny_run_overrides(style_path, photo_dir, steps=8), "logger=none"]
    overrides += ["loss.vgg.weights=random", "model=small"]
    overrides += [
        f"+callbacks.crash._target_={__name__}.FailAtStep",
        "+callbacks.crash.step=3",
    ]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(compose_train(overrides, tmp_path))
    net = load_model(tmp_path / "model.pt")
    assert net.config.base_channels == 16
    assert read_card(tmp_path / "model.pt").training.global_step == 3

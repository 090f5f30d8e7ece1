"""The divergence guard and the signal handler on their own (the whole runs, with real signals,
are in tests/cli/test_train.py)."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from stylenet.models import TransformerNet
from stylenet.training.faults import DivergenceGuard, StopOnSignal, TrainingDiverged


def _trainer(step: int, ckpt_dir: Path | None = None) -> MagicMock:
    callback = ModelCheckpoint(dirpath=ckpt_dir) if ckpt_dir else None
    return MagicMock(global_step=step, is_global_zero=True, checkpoint_callback=callback)


def _module() -> MagicMock:
    torch.manual_seed(0)
    return MagicMock(net=TransformerNet(base_channels=4, num_residual_blocks=1), last_terms={})


def test_a_nan_loss_stops_before_the_step_with_the_last_good_weights(tmp_path: Path) -> None:
    guard = DivergenceGuard()
    module = _module()
    for step in range(3):
        guard.on_before_backward(_trainer(step), module, torch.tensor(2.0))
        with torch.no_grad():
            next(module.net.parameters()).add_(1.0)  # the optimizer step
    good = {k: v.clone() for k, v in module.net.state_dict().items()}
    for step in (2, 3):
        torch.save({"global_step": step}, tmp_path / f"step{step:07d}.ckpt")
    guard.on_before_backward(_trainer(3), module, torch.tensor(1.5))
    with torch.no_grad():
        next(module.net.parameters()).fill_(math.nan)
    module.last_terms = {"content": torch.tensor(1.0), "style": torch.tensor(math.nan)}
    with pytest.raises(
        TrainingDiverged, match=r"loss is nan at step 5 \(content=1, style=nan\)"
    ) as err:
        guard.on_before_backward(_trainer(4, tmp_path), module, torch.tensor(math.nan))
    assert err.value.good_step == 3 and err.value.step == 5
    assert "model.pt holds the weights of step 3" in str(err.value)
    for name, value in err.value.good_state.items():
        torch.testing.assert_close(value, good[name])
    # Nothing was saved after step 3: the checkpoints stay.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step0000002.ckpt", "step0000003.ckpt"]


def test_a_loss_that_stays_far_above_its_median_stops_after_patience(tmp_path: Path) -> None:
    guard = DivergenceGuard(factor=5, patience=3, window=10)
    module = _module()
    for step in range(10):
        guard.on_before_backward(_trainer(step), module, torch.tensor(10.0 - step * 0.1))
    torch.save({"global_step": 11}, tmp_path / "last.ckpt")
    # An outlier then a normal step: no stop, and the streak starts again.
    guard.on_before_backward(_trainer(10), module, torch.tensor(100.0))
    guard.on_before_backward(_trainer(11), module, torch.tensor(9.0))
    guard.on_before_backward(_trainer(12), module, torch.tensor(100.0))
    guard.on_before_backward(_trainer(13), module, torch.tensor(100.0))
    with pytest.raises(TrainingDiverged, match=r"exploded: above 5× .* for 3 steps") as err:
        guard.on_before_backward(_trainer(14, tmp_path), module, torch.tensor(100.0))
    assert err.value.good_step == 11  # the weights of the last normal step
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # step 11 is good

    # factor=None: only non-finite losses stop.
    lenient = DivergenceGuard(factor=None)
    for step in range(30):
        lenient.on_before_backward(_trainer(step), module, torch.tensor(1.0 if step < 25 else 1e6))


def test_bad_guard_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="factor must be > 1"):
        DivergenceGuard(factor=0.5)
    with pytest.raises(ValueError, match="patience and window must be >= 1"):
        DivergenceGuard(patience=0)


def test_a_signal_is_noted_and_a_second_ctrl_c_stops_at_once() -> None:
    # What was there before (Python's default, or SIG_IGN in a background job) comes back after.
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    handler = StopOnSignal()
    handler.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert handler.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)
        assert handler.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        handler.uninstall()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before

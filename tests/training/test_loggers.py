"""W&B runs offline unless the user is logged in; WANDB_MODE always wins; the run is named after
the style and the sweep's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylenet.training import loggers
from stylenet.training.loggers import wandb_logger


@pytest.mark.parametrize(
    ("mode", "logged_in", "offline"),
    [("offline", True, True), ("online", False, False), (None, False, True), (None, True, False)],
)
def test_the_mode_follows_wandb_mode_then_credentials(
    mode: str | None,
    logged_in: bool,
    offline: bool,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if mode is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", mode)
    monkeypatch.setattr(loggers, "wandb_logged_in", lambda: logged_in)
    logger = wandb_logger(save_dir=str(tmp_path / "w"), group="mosaic", project="stylenet")
    assert logger._offline is offline
    assert (tmp_path / "w").is_dir()  # created for wandb's files
    assert logger._name == "mosaic"  # outside a Hydra job: the group alone

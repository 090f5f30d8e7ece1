"""Loggers: the W&B factory used by ``configs/logger/wandb.yaml``, and the one place that tells
Lightning's loggers apart when something other than numbers (images, tables) is logged."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger
from torch import Tensor

from stylenet.io.images import tensor_to_pil
from stylenet.reference.evaluate import TERMS, EvaluationReport

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """True if W&B credentials are available (WANDB_API_KEY or a `wandb login` netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import wandb

        return bool(wandb.api.api_key)
    except Exception:  # no wandb settings dir, unreadable netrc, ...
        return False


def _run_name(group: str | None) -> str | None:
    """`<group>-<overrides>` inside a Hydra job (e.g. ``mosaic-loss.style_weight=20``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().job.override_dirname if HydraConfig.initialized() else ""
    except Exception:  # outside Hydra, or a config without the job node
        overrides = ""
    parts = [p for p in (group, overrides) if p]
    return "-".join(parts) or None


def wandb_logger(
    *, offline: bool | None = None, name: str | None = None, **kwargs: Any
) -> WandbLogger:
    """A `WandbLogger` that runs offline unless the user is logged in.

    Args:
        name: Run name; None gives ``<group>-<sweep overrides>``.
        offline: True/False forces the mode; None (default) picks online only when W&B credentials
            exist. The environment variable ``WANDB_MODE`` (e.g. ``offline``, ``disabled``) always
            wins, as in wandb itself.
        **kwargs: Passed to `WandbLogger` (project, name, save_dir, group, tags, ...).
    """
    if offline is None:
        mode = os.environ.get("WANDB_MODE")
        offline = mode in ("offline", "dryrun") if mode else not wandb_logged_in()
        if offline and not mode:
            log.info("W&B: no credentials found, logging offline (sync later with `wandb sync`)")
    if kwargs.get("save_dir"):
        os.makedirs(kwargs["save_dir"], exist_ok=True)
    return WandbLogger(offline=offline, name=name or _run_name(kwargs.get("group")), **kwargs)


def log_image(
    loggers: Sequence[object], key: str, image: Tensor, *, caption: str, step: int
) -> None:
    """Log a (3, H, W) image in [0, 1] to the loggers that take images (W&B, TensorBoard)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[tensor_to_pil(image)], caption=[caption], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, step)


def log_report(
    loggers: Sequence[Logger], report: EvaluationReport, grid: Path, *, step: int
) -> None:
    """Hand an evaluation report to the loggers: W&B gets a table (one row per photo and method),
    the grid image and the summary in the run summary; other loggers get the summary numbers."""
    metrics = report.summary.metrics()
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            data = [
                [row.photo, name, *(getattr(score, k) for k in TERMS), score.seconds]
                for row in report.rows
                for name, score in row.methods()
            ]
            payload: dict[str, Any] = {
                "eval/report": wandb.Table(
                    columns=["photo", "method", *TERMS, "seconds"], data=data
                )
            }
            if grid.is_file():
                payload["eval/grid"] = wandb.Image(str(grid), caption="photo | model | L-BFGS")
            logger.experiment.log(payload)
            logger.experiment.summary.update(metrics)
        else:
            logger.log_metrics(metrics, step=step)

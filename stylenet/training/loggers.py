"""Loggers: the W&B factory used by ``configs/logger/wandb.yaml``, and the one place that tells
Lightning's loggers apart when something other than numbers (images, tables) is logged."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from torch import Tensor

from stylenet.evaluation.report import LoggableReport
from stylenet.io.images import tensor_to_pil

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
    *,
    offline: bool | None = None,
    name: str | None = None,
    log_model: bool = True,
    **kwargs: Any,
) -> WandbLogger:
    """A `WandbLogger` that runs offline unless the user is logged in.

    Args:
        name: Run name; None gives ``<group>-<sweep overrides>``.
        log_model: Log ``model.pt`` as a W&B artifact (type ``model``) at the end of training
            (`log_model_file`). Lightning's own checkpoint upload stays off: checkpoints hold
            optimizer state and stay in the run folder.
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
    logger = WandbLogger(
        offline=offline, name=name or _run_name(kwargs.get("group")), log_model=False, **kwargs
    )
    logger.stylenet_log_model = log_model  # type: ignore[attr-defined]
    return logger


def log_model_file(loggers: Sequence[object], path: Path, metadata: dict[str, Any]) -> None:
    """Log a model file to the W&B loggers made by `wandb_logger` with ``log_model`` on, as an
    artifact named ``model-<run id>`` (offline runs keep it for ``wandb sync``)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "stylenet_log_model", False):
            import wandb

            run = logger.experiment
            artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=metadata)
            artifact.add_file(str(path), name=path.name)
            run.log_artifact(artifact, aliases=["latest"])


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
    loggers: Sequence[Logger],
    report: LoggableReport,
    grid: Path,
    *,
    step: int,
    prefix: str = "eval",
) -> None:
    """Hand an evaluation report to the loggers: W&B gets a table (one row per photo and method,
    a column per loss term of the report), the grid image and the summary in the run summary;
    other loggers get the summary numbers. Keys start with `prefix` (``eval/<style>`` for each
    style of a multi-style model)."""
    metrics = report.summary.metrics(prefix)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            terms = report.term_names()
            columns: list[str | int] = ["photo", "method", *report.score_columns(), "seconds"]
            data = [
                [row.photo, name, *score.numbers(terms), score.seconds]
                for row in report.rows
                for name, score in row.methods()
            ]
            payload: dict[str, Any] = {f"{prefix}/report": wandb.Table(columns=columns, data=data)}
            if grid.is_file():
                payload[f"{prefix}/grid"] = wandb.Image(str(grid), caption=report.grid_caption())
            logger.experiment.log(payload)
            logger.experiment.summary.update(metrics)
        else:
            logger.log_metrics(metrics, step=step)


def keep_earlier_metrics(loggers: Sequence[object], up_to_step: int) -> None:
    """Keep the rows of an earlier session in a resumed run's CSV log.

    Lightning's CSV logger deletes an existing ``metrics.csv`` when it starts; for a resumed run
    the rows logged before the checkpoint's step are read first and written back, so the file
    holds the whole run (Lightning logs step s at row step s - 1; rows a killed session logged
    after its last checkpoint are dropped: those steps are trained again). Call before the
    loggers are used.
    """
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") and int(r["step"]) < up_to_step]
        writer = logger.experiment  # starting it deletes the file
        writer.metrics_keys = list(dict.fromkeys([*writer.metrics_keys, *keys]))
        writer.metrics = [*rows, *writer.metrics]
        writer.save()
        log.info("kept %d rows of %s from before step %d", len(rows), path, up_to_step)

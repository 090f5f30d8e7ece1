"""`train(cfg)`: one training run from a composed ``configs/train.yaml``.

A plain function of the config (``stylenet-train`` is its Hydra entry point, tests call it
directly): check the inputs, let the task complete its settings, build everything from the
config, validate once before the first step (the held-out baseline every run's curves start
from), fit. Nothing here knows the task: ``configs/task/<task>.yaml`` names its module and hooks.
"""

from __future__ import annotations

import logging
import signal
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from stylenet import resolvers
from stylenet.errors import ConfigError
from stylenet.training.callbacks import (
    EvaluateAtEnd,
    ExportModel,
    FinalCheckpoint,
    LogSkippedFiles,
    LogTemporalMetrics,
    ValidateAtEnd,
)
from stylenet.training.checkpoints import (
    AtomicCheckpointIO,
    checkpoint_step,
    find_resume_checkpoint,
)
from stylenet.training.data import PhotoDataModule
from stylenet.training.faults import DivergenceGuard, StopOnSignal, TrainingInterrupted
from stylenet.training.inputs import (
    check_checkpoint,
    check_inputs,
    checkpoint_dir,
    prepare_task,
)
from stylenet.training.loggers import keep_earlier_metrics
from stylenet.training.module import ImageToImageModule

log = logging.getLogger(__name__)


def _instantiate_all(node: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config dict whose value has a `_target_` (loggers,
    callbacks)."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if v is not None and "_target_" in v]


def _run_callbacks(cfg: DictConfig, run_dir: Path, datamodule: PhotoDataModule) -> list[Callback]:
    """The callbacks every run has (see `stylenet.training.callbacks`)."""
    model_path = run_dir / "model.pt"
    divergence = OmegaConf.select(cfg, "train.divergence") or {}
    callbacks: list[Callback] = [
        DivergenceGuard(**divergence),
        ValidateAtEnd(),
        LogSkippedFiles(datamodule, every_n_steps=cfg.trainer.get("log_every_n_steps") or 50),
        FinalCheckpoint(),
        ExportModel(model_path),
        LogTemporalMetrics(),
    ]
    if content := OmegaConf.select(cfg, "evaluate.content"):
        callbacks.append(
            EvaluateAtEnd(
                model_path,
                content,
                run_dir / "evaluate",
                size=OmegaConf.select(cfg, "evaluate.size"),
                optimize=list(OmegaConf.select(cfg, "evaluate.optimize") or []),
                progress=bool(cfg.trainer.get("enable_progress_bar", True)),
            )
        )
    return callbacks


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train per `cfg`, write checkpoints and ``model.pt`` into ``cfg.paths.output_dir``.

    Returns:
        Final metrics (floats) plus ``run_dir``, ``model_path``, ``global_step`` and
        ``skipped_files``.

    Raises:
        ConfigError: A bad input or setting, before anything is built.
    """
    resolvers.register()
    check_inputs(cfg)
    datamodule: PhotoDataModule = instantiate(cfg.data)
    try:
        datamodule.setup("fit")  # lists the photos: an empty folder fails here
    except ConfigError as err:
        raise ConfigError(f"data: {err}") from None
    datamodule.check_readable()  # a folder of files that are not photos fails here
    # The frozen VGG is in eval mode on purpose (losses/vgg.py); Lightning warns about it.
    warnings.filterwarnings(
        "ignore", message=r".*module\(s\) in eval mode", module="pytorch_lightning"
    )
    # A resumed run reshuffles its photos and draws new random crops: that is fine here.
    warnings.filterwarnings(
        "ignore", message=r".*your dataloader is not resumable", module="pytorch_lightning"
    )
    initialize = prepare_task(cfg)  # e.g. styles=[...] into model and module
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The resolved job config (Hydra's own settings stay in .hydra/ next to it).
    job_cfg = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(job_cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)

    ckpt_path = _resume_from(cfg)
    module: ImageToImageModule = instantiate(cfg.module)
    # For the model card (not through instantiate, which would build the loss it describes).
    loss_config = OmegaConf.to_container(cfg.loss, resolve=True)
    assert isinstance(loss_config, dict)
    module.loss_config = {str(k): v for k, v in loss_config.items()}
    if initialize is not None:  # init_from: weights from another model
        initialize(module)
    loggers: list[Logger] = _instantiate_all(cfg.get("logger"))
    stop_on_signal = StopOnSignal()
    callbacks = [
        *_instantiate_all(cfg.get("callbacks")),
        *_run_callbacks(cfg, run_dir, datamodule),
        stop_on_signal,
    ]
    trainer: pl.Trainer = instantiate(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, plugins=[AtomicCheckpointIO()]
    )
    if ckpt_path is not None and cfg.get("resume") == "auto":
        keep_earlier_metrics(loggers, checkpoint_step(Path(ckpt_path)))
    resolved = OmegaConf.to_container(job_cfg, resolve=True)
    assert isinstance(resolved, dict)
    params = {str(k): v for k, v in resolved.items()}
    for logger in loggers:
        logger.log_hyperparams(params)

    stop_on_signal.install()
    try:
        if ckpt_path is None and datamodule.val_set:
            # Held-out losses and grid of the untrained network, logged at step 0, so every
            # run's curves start from the same baseline.
            trainer.validate(module, datamodule=datamodule, verbose=False)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        # Lightning's handler stopped the loop (StopOnSignal saved the checkpoint); a
        # SystemExit with no code would end the command with status 0.
        raise TrainingInterrupted(signal.SIGTERM, trainer.global_step) from None
    finally:
        stop_on_signal.uninstall()
        _finish_wandb()

    skipped = datamodule.skipped_count()
    if skipped:
        log.warning("%d unreadable photo(s) were skipped (named in the warnings above)", skipped)
    metrics: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1
    }
    metrics.update(
        run_dir=str(run_dir),
        model_path=str(run_dir / "model.pt"),
        global_step=trainer.global_step,
        skipped_files=skipped,
    )
    return metrics


def _resume_from(cfg: DictConfig) -> str | None:
    """The checkpoint this run continues from: ``ckpt_path``, or with ``resume=auto`` the newest
    one in the run's checkpoint folder (None: start fresh)."""
    if cfg.get("resume") != "auto":
        if path := cfg.get("ckpt_path"):
            check_checkpoint(cfg, path)  # its network against the completed ``model``
        return path or None
    folder = checkpoint_dir(cfg)
    found = find_resume_checkpoint(folder)
    if found is None:
        log.info("resume=auto: no checkpoint in %s yet, starting from step 0", folder)
        return None
    check_checkpoint(cfg, found, key="resume=auto: checkpoint")
    log.info("resume=auto: continuing from %s", found)
    return str(found)


def _finish_wandb() -> None:
    # Close the run so the next job of a multirun (same process) starts its own W&B run.
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()

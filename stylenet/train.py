"""`stylenet-train`: train one feed-forward stylizer for one style image.

    stylenet-train style.image=painting.jpg data.root=/data/coco/train2014
    stylenet-train experiment=johnson2016 style=mosaic data.root=...
    stylenet-train -m hparams_search=style_tv style.image=... data.root=...

`main` is the Hydra entry point; `train(cfg)` is a plain function of a composed config (tests
call it directly).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from stylenet.model_file import save_model
from stylenet.module import StyleTransferModule

log = logging.getLogger(__name__)

CONFIG_PATH = "pkg://stylenet.configs"


def _check_inputs(cfg: DictConfig) -> None:
    """Fail before any model is built when an input path is wrong."""
    style = cfg.style.get("image")
    if style is None or not Path(style).is_file():
        raise FileNotFoundError(
            f"style.image={style!r}: no such file. Give the style painting with "
            "style.image=PATH or pick a named style config (style=mosaic, ...)."
        )
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path!r}: no such checkpoint file")


def _instantiate_dict(node: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config dict whose value has a `_target_` (loggers,
    callbacks)."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if v is not None and "_target_" in v]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train per `cfg`, write checkpoints and `model.pt` into `cfg.paths.output_dir`.

    Returns:
        Final metrics (floats) plus ``run_dir`` and ``model_path``.
    """
    _check_inputs(cfg)
    # The frozen VGG is in eval mode on purpose (losses/vgg.py); Lightning warns about it.
    warnings.filterwarnings(
        "ignore", message=r".*module\(s\) in eval mode", module="pytorch_lightning"
    )
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The resolved job config (Hydra's own settings stay in .hydra/ next to it).
    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(job_cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")  # fails here, with the folder's name, if it holds no images
    module = StyleTransferModule(
        net=instantiate(cfg.model),
        loss=instantiate(cfg.loss),
        style_image=cfg.style.image,
        style_size=cfg.style.get("size"),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        num_log_images=cfg.get("num_log_images", 4),
        image_dir=str(run_dir / "images"),
    )
    loggers = _instantiate_dict(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(
        cfg.trainer, logger=loggers or False, callbacks=_instantiate_dict(cfg.get("callbacks"))
    )
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(job_cfg, resolve=True))

    fit_done = False
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        if module.last_val_step != trainer.global_step and not trainer.interrupted:
            # Final held-out losses and grid, whatever val_check_interval was.
            trainer.validate(module, datamodule=datamodule, verbose=False)
        # ModelCheckpoint refreshes last.ckpt only every N steps; make it the final state so a
        # resume (or an interrupted run, which Lightning ends gracefully) loses no step.
        callback = trainer.checkpoint_callback
        if callback is not None and callback.dirpath and trainer.global_step > 0:
            trainer.save_checkpoint(Path(callback.dirpath) / "last.ckpt")
        fit_done = not trainer.interrupted
    finally:
        # Whatever happened, keep what was learned: an interrupted run still leaves a usable
        # model file next to its checkpoints.
        model_path = run_dir / "model.pt"
        if trainer.is_global_zero and trainer.global_step > 0:
            save_model(
                module.net,
                model_path,
                metadata={
                    # absolute: stylenet-evaluate reads it from anywhere
                    "style_image": str(Path(cfg.style.image).resolve()),
                    "style_size": cfg.style.get("size"),
                    "global_step": trainer.global_step,
                    "image_size": cfg.data.get("image_size"),
                    "loss": OmegaConf.to_container(cfg.loss, resolve=True),
                },
            )
            log.info("model written to %s", model_path)
            if fit_done and cfg.get("evaluate") and cfg.evaluate.get("content"):
                _evaluate_at_end(cfg, model_path, run_dir / "evaluate", loggers, trainer)
        _finish_wandb()

    if module.skipped_files:
        log.warning(
            "%d unreadable photo(s) were skipped (named in the warnings above)",
            module.skipped_files,
        )
    metrics: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1
    }
    metrics.update(
        run_dir=str(run_dir),
        model_path=str(model_path),
        global_step=trainer.global_step,
        skipped_files=module.skipped_files,
    )
    return metrics


def _evaluate_at_end(
    cfg: DictConfig, model_path: Path, out_dir: Path, loggers: list, trainer: pl.Trainer
) -> None:
    """Run `stylenet-evaluate` on the new model and hand the report to the loggers. A failure
    here is logged, never raised: the trained model is already safe on disk."""
    from stylenet.evaluate import evaluate, log_report

    try:
        report = evaluate(
            model_path,
            cfg.evaluate.content,
            out_dir,
            size=cfg.evaluate.get("size"),
            optimize=list(cfg.evaluate.get("optimize") or []),
            device=str(trainer.strategy.root_device),
            overwrite=True,
            progress=bool(cfg.trainer.get("enable_progress_bar", True)),
        )
        log_report(report, out_dir, loggers, step=trainer.global_step)
        log.info("evaluation report written to %s", out_dir)
    except Exception:
        log.exception("end-of-training evaluation failed (the model is saved: %s)", model_path)


def _finish_wandb() -> None:
    # Close the run so the next job of a multirun (same process) starts its own W&B run.
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimized metric for sweepers."""
    metrics = train(cfg)
    if rank_zero_only.rank == 0:
        print(f"run dir: {metrics['run_dir']}", flush=True)
        print(f"model:   {metrics['model_path']}", flush=True)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return value if value is None or math.isfinite(value) else float("inf")


if __name__ == "__main__":
    main()

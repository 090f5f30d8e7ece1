"""The work around a training run that is not a training step, as Lightning callbacks.

`stylenet.training.run.train` adds these to every run (the ``callbacks`` config group holds the
optional ones, such as checkpointing):

- `ValidateAtEnd`: the held-out losses and image grid of the final weights, whatever
  ``val_check_interval`` is;
- `FinalCheckpoint`: ``last.ckpt`` holds the final state, so a resume loses no step;
- `ExportModel`: ``model.pt`` at the end, and also when the run stops on an exception or a
  signal, so what was learned is never lost (after a divergence: the last good weights);
- `LogSkippedFiles`: how many unreadable photos were skipped so far (``data/skipped_files``);
- `EvaluateAtEnd`: ``stylenet-evaluate`` on held-out photos, its report handed to the loggers;
- `LogTemporalMetrics`: at each validation, the warping error of a fixed synthetic pan and the
  noise gain of a fixed noisy still, made from the first held-out photo
  (``val/temporal/pan``, ``val/temporal/noise_gain``).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from torch import Tensor, nn

from stylenet.errors import StylenetError
from stylenet.evaluation.temporal import Clip, camera_moves, score_clip
from stylenet.inference.model_file import save_model
from stylenet.training.data import PhotoDataModule
from stylenet.training.faults import TrainingDiverged
from stylenet.training.loggers import log_model_file, log_report
from stylenet.training.module import ImageToImageModule

log = logging.getLogger(__name__)


class ValidateAtEnd(Callback):
    """Validate after the last step even when ``max_steps`` is not a multiple of
    ``val_check_interval``: at the last step it asks the loop to stop, and Lightning validates
    before stopping (as it does for early stopping)."""

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


class FinalCheckpoint(Callback):
    """Write ``last.ckpt`` at the end of training: the checkpoint callback refreshes it only
    every N steps."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.dirpath and trainer.global_step > 0:
            # A write, not a load: the full checkpoint (optimizer and loop state) that resume needs;
            # every read goes through stylenet.training.checkpoints (weights_only=True).
            trainer.save_checkpoint(Path(callback.dirpath) / "last.ckpt", weights_only=False)


class ExportModel(Callback):
    """Write the trained network and its model card as a self-describing model file
    (`save_model`) on rank 0, at the end of training and when it stops on an exception (Ctrl-C
    included), then hand it to the loggers that keep model files (W&B: an artifact;
    ``logger.wandb.log_model=false`` turns it off).

    When the run diverged (`TrainingDiverged`) the file gets the weights of the last good step
    instead of the current ones, so a broken network is never written as ``model.pt``.

    Args:
        path: The model file (``<run dir>/model.pt``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _export(self, pl_module: ImageToImageModule, net: nn.Module, step: int) -> bool:
        if step == 0:
            return False  # nothing learned yet: an existing file is kept
        save_model(net, self.path, card=pl_module.model_card(step))
        log.info("model written to %s (step %d)", self.path, step)
        return True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, ImageToImageModule)
        if trainer.is_global_zero and self._export(pl_module, pl_module.net, trainer.global_step):
            card = pl_module.model_card(trainer.global_step).to_dict()
            log_model_file(trainer.loggers, self.path, card)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not trainer.is_global_zero:
            return
        assert isinstance(pl_module, ImageToImageModule)
        try:
            if not isinstance(exception, TrainingDiverged):
                self._export(pl_module, pl_module.net, trainer.global_step)
            elif exception.good_state is not None and exception.good_step is not None:
                net = copy.deepcopy(pl_module.net).cpu()
                net.load_state_dict(exception.good_state)
                self._export(pl_module, net, exception.good_step)
        except (StylenetError, OSError) as err:
            # The run's own error (a full disk, say) is the one to report; the checkpoints hold
            # what was learned.
            log.error("could not write %s: %s", self.path, err)


class LogSkippedFiles(Callback):
    """Log ``data/skipped_files``, the unreadable photos `datamodule` skipped so far (all
    workers), every `every_n_steps`."""

    def __init__(self, datamodule: PhotoDataModule, every_n_steps: int) -> None:
        self.datamodule = datamodule
        self.every_n_steps = max(1, every_n_steps)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            skipped = float(self.datamodule.skipped_count())
            pl_module.log("data/skipped_files", skipped, on_step=True)


class EvaluateAtEnd(Callback):
    """Evaluate the exported model on held-out photos after training, on rank 0, the way its
    task evaluates a model (`ImageToImageModule.evaluate_model`: for style transfer,
    ``stylenet-evaluate``), and hand each report to the loggers. A failure is logged, never
    raised: the model is safe on disk.

    Args:
        model_path: The model file `ExportModel` writes (it must come before this callback).
        content: Folder of held-out photos (or one photo).
        out_dir: Where the reports go (``<run dir>/evaluate``).
        size: Long side the photos are resized to.
        optimize: L-BFGS iteration counts to compare with (empty: none).
        progress: Show progress bars.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        content: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        *,
        size: int | None,
        optimize: Sequence[int] = (),
        progress: bool = True,
    ) -> None:
        self.model_path = Path(model_path)
        self.content = Path(content)
        self.out_dir = Path(out_dir)
        self.size = size
        self.optimize = list(optimize)
        self.progress = progress

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.global_step == 0:
            return
        assert isinstance(pl_module, ImageToImageModule)
        try:
            for prefix, out, report in pl_module.evaluate_model(
                self.model_path,
                self.content,
                self.out_dir,
                size=self.size,
                optimize=self.optimize,
                device=str(trainer.strategy.root_device),
                progress=self.progress,
            ):
                step = trainer.global_step
                log_report(trainer.loggers, report, out / "grid.jpg", step=step, prefix=prefix)
                log.info("evaluation report written to %s", out)
        except Exception:
            log.exception(
                "end-of-training evaluation failed (the model is saved: %s)", self.model_path
            )


class LogTemporalMetrics(Callback):
    """Logs how much the network flickers on a fixed held-out clip pair at every validation:
    ``val/temporal/pan`` (warping error of a `PAN` pan, exact warp; the input's is 0) and
    ``val/temporal/noise_gain`` (output change / input change on a still shot with fresh noise
    of σ 2/255 per frame). Both are made once from the first held-out photo at `size`, with
    `frames` frames; tasks whose output size differs from the input's (super-resolution) are
    skipped.

    Args:
        size: (height, width) of the frames.
        frames: Frames per clip.
    """

    def __init__(self, size: tuple[int, int] = (96, 128), frames: int = 8) -> None:
        self.size, self.frames = size, frames
        self.clips: list[Clip] | None = None

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking:
            return
        assert isinstance(pl_module, ImageToImageModule)
        inputs, _ = pl_module.validation_example(batch)
        device = inputs.device

        def run(frames: Tensor) -> Tensor:
            return pl_module.frame_output(frames.to(device, inputs.dtype))

        if self.clips is None:  # made, and the output size checked, once per run
            photo = inputs[0].detach().float().cpu()
            clips = camera_moves(photo, size=self.size, frames=self.frames, moves=("pan", "noise"))
            with torch.no_grad():
                probe = run(clips[0].frames[:1])
            same_size = probe.shape[-2:] == clips[0].frames.shape[-2:]
            self.clips = clips if same_size else []
        if not self.clips:  # a task whose output is another size (super-resolution)
            return
        pan, noise = (score_clip(run, clip) for clip in self.clips)
        pl_module.log_dict(
            {"val/temporal/pan": pan.output_error, "val/temporal/noise_gain": noise.ratio},
            on_step=False,
            on_epoch=True,
            batch_size=1,
        )

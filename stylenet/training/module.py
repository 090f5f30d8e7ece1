"""The LightningModule every task shares: a network trained from input images to output images
against a loss of named terms.

`ImageToImageModule` does the work that does not depend on the task: the training step (with
``torch.compile`` and channels-last if asked), logging each named loss term (``train/content``,
``val/style``, ...), the held-out image grid, the optimizer, and the model card that every
checkpoint and ``model.pt`` carries. A task is a thin subclass (`stylenet.training.style`,
`stylenet.training.superres`) that says how a batch becomes (input, target), which extra inputs
the network takes, and what its card adds. The task's config (``configs/task/*.yaml``) names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from stylenet.evaluation.report import LoggableReport
from stylenet.inference.model_card import ModelCard, TrainingSummary, card_for
from stylenet.io.images import make_grid, save_image
from stylenet.losses import PerceptualLoss
from stylenet.training.loggers import log_image

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class ImageToImageModule(pl.LightningModule):
    """Trains `net` so that its outputs minimize `loss` against each batch's targets.

    Subclasses say what their task is (`task`), how a batch becomes the network's input and the
    loss's target (`training_example`), and may change what validation shows
    (`validation_results`, `grid_columns`) and what the model card records (`card_fields`).

    Args:
        net: The network (the only trained part).
        loss: The loss: named, weighted terms and their ``total``; its VGG is frozen and
            excluded from checkpoints.
        optimizer: Factory (a Hydra ``_partial_``) called with the network's trainable
            parameters.
        scheduler: Optional factory called with the optimizer; stepped every training step.
        num_log_images: Held-out examples shown in the image grid at each validation.
        image_dir: Where the grids are also saved as PNG (None: not saved).
        compile: ``torch.compile`` the training step's forward and loss (network + VGG + loss
            terms) and so its backward; compiled on the first step (about a minute on CPU).
            Validation stays eager. See ``scripts/bench_train.py`` for what it gains.
        channels_last: Keep the network's weights and the images in channels-last (NHWC)
            memory layout, which the convolution kernels of recent GPUs prefer.
        loss_config: The loss's config as trained, for the model card.
        image_size: The side of the training crops, for the model card.
    """

    task: ClassVar[str] = ""
    grid_key: ClassVar[str] = "val/images"  # where loggers show the held-out grid

    def __init__(
        self,
        net: nn.Module,
        loss: PerceptualLoss,
        *,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_log_images: int = 4,
        image_dir: str | None = None,
        compile: bool = False,
        channels_last: bool = False,
        loss_config: Mapping[str, Any] | None = None,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_log_images = num_log_images
        self.image_dir = Path(image_dir) if image_dir else None
        self.compile_step = compile
        self.channels_last = channels_last
        self.loss_config = dict(loss_config or {})
        self.image_size = image_size
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        self._compiled_terms: Callable[..., dict[str, Tensor]] | None = None
        self.last_terms: dict[str, Tensor] = {}  # for DivergenceGuard

    # --- what a task says ---------------------------------------------------------------

    def training_example(self, batch: Any) -> tuple[Tensor, Tensor, tuple[Any, ...]]:
        """(input, target, extra): what the network gets, what the loss compares its output
        with, and extra arguments for `terms` (a style index, say)."""
        raise NotImplementedError

    def validation_example(self, batch: Any) -> tuple[Tensor, Tensor]:
        """(input, target) of a held-out batch (default: the training example's)."""
        inputs, target, _ = self.training_example(batch)
        return inputs, target

    def terms(self, inputs: Tensor, target: Tensor, *extra: Any) -> dict[str, Tensor]:
        """The loss terms of one batch (the weighted terms and their ``total``)."""
        return self.loss(self.net(inputs), target, source=inputs, transform=self.net)

    def validation_results(
        self, inputs: Tensor, target: Tensor
    ) -> dict[str, tuple[Tensor, dict[str, Tensor]]]:
        """{label: (outputs, loss terms)} of a held-out batch: one entry labelled "" for most
        tasks; a multi-style network gives one per style."""
        outputs = self.net(inputs)
        return {"": (outputs, self.loss(outputs, target, source=inputs, transform=self.net))}

    def frame_output(self, frames: Tensor) -> Tensor:
        """The network on a batch of video frames (B, 3, H, W), as stylenet-stylize runs it
        (the temporal metrics; a multi-style network: its first style)."""
        return self.net(frames)

    def grid_columns(self, inputs: Tensor, target: Tensor, outputs: list[Tensor]) -> list[Tensor]:
        """The columns of the held-out image grid, each (n, 3, H, W) at one size: by default
        the input, then each output."""
        return [inputs, *outputs]

    def grid_caption(self, labels: Sequence[str]) -> str:
        return "held-out input | output"

    def card_fields(self) -> dict[str, Any]:
        """What the task adds to the model card (`ModelCard` fields: task, styles, ...)."""
        return {"task": self.task}

    def evaluate_model(
        self,
        model_path: Path,
        content: Path,
        out_dir: Path,
        **options: Any,
    ) -> Iterator[tuple[str, Path, LoggableReport]]:
        """Evaluate the exported model on held-out photos the way the task does (the
        end-of-training report, ``evaluate.content``); yields (logger key prefix, report
        folder, report). `options`: size, optimize, device, progress."""
        raise NotImplementedError(f"no end-of-training evaluation for task {self.task!r}")

    # --- the same for every task ----------------------------------------------------------

    def model_card(self, global_step: int | None = None) -> ModelCard:
        """The card of the network as it is now (at `global_step`; default the trainer's)."""
        step = self.global_step if global_step is None else global_step
        card = ModelCard(
            network="",
            loss=self.loss_config,
            training=TrainingSummary(global_step=step, image_size=self.image_size),
            **self.card_fields(),
        )
        return card_for(self.net, card)

    def train_terms(self, inputs: Tensor, target: Tensor, *extra: Any) -> dict[str, Tensor]:
        """`terms` as the training step computes it: channels-last and compiled if asked."""
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
            target = target.contiguous(memory_format=torch.channels_last)
        if not self.compile_step:
            return self.terms(inputs, target, *extra)
        if self._compiled_terms is None:
            # A compiled bound method, not a compiled submodule: parameter names and
            # checkpoints stay those of the eager network.
            self._compiled_terms = torch.compile(self.terms)
        return self._compiled_terms(inputs, target, *extra)

    def _log_terms(
        self, stage: str, terms: dict[str, Tensor], batch_size: int, prog_bar: bool = True
    ) -> None:
        on_step = stage == "train"
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}",
                value.detach(),
                on_step=on_step,
                on_epoch=not on_step,
                prog_bar=prog_bar and (name == "total" or (stage == "val" and name == "style")),
                batch_size=batch_size,
                sync_dist=not on_step,
            )

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        inputs, target, extra = self.training_example(batch)
        terms = self.train_terms(inputs, target, *extra)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        self._log_terms("train", terms, inputs.shape[0])
        return terms["total"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Held-out losses; with several results (styles) ``val/<label>/<term>`` each and
        ``val/<term>`` as their mean (what sweeps and the progress bar see)."""
        inputs, target = self.validation_example(batch)
        results = self.validation_results(inputs, target)
        batch_size = inputs.shape[0]
        if len(results) > 1:
            for label, (_, terms) in results.items():
                self._log_terms(f"val/{label}", terms, batch_size, prog_bar=False)
        all_terms = [terms for _, terms in results.values()]
        mean = {k: torch.stack([t[k] for t in all_terms]).mean() for k in all_terms[0]}
        self._log_terms("val", mean, batch_size)
        # The same terms at weight 1 (``val/raw/<term>``): comparable between runs of different
        # weights, what a sweep's report and a search minimize.
        weights = {n: float(getattr(t, "weight", 0.0)) for n, t in self.loss.terms.items()}
        raw = {n: v / weights[n] for n, v in mean.items() if weights.get(n)}
        self._log_terms("val/raw", raw, batch_size, prog_bar=False)
        if batch_idx == 0 and self.num_log_images > 0 and not self.trainer.sanity_checking:
            n = min(self.num_log_images, batch_size)
            outputs = [out[:n] for out, _ in results.values()]
            columns = self.grid_columns(inputs[:n], target[:n], outputs)
            self._log_grid(columns, self.grid_caption(list(results)))

    def _log_grid(self, columns: list[Tensor], caption: str) -> None:
        """One row per held-out example, a column per entry of `columns`."""
        rows = [tuple(c[i].float().cpu() for c in columns) for i in range(columns[0].shape[0])]
        grid = make_grid(rows)
        step = self.global_step
        if self.trainer.is_global_zero and self.image_dir is not None:
            save_image(grid, self.image_dir / f"val_step{step:07d}.png", overwrite=True)
        log_image(self.loggers, self.grid_key, grid, caption=f"step {step}: {caption}", step=step)

    def configure_optimizers(self) -> Any:
        # Only the network is optimized; the VGG is frozen (requires_grad False) and
        # deliberately not passed.
        optimizer = self.optimizer_factory(p for p in self.net.parameters() if p.requires_grad)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The card: enough to rebuild the network from the checkpoint alone (stylize, export).
        checkpoint["stylenet"] = {"card": self.model_card().to_dict()}

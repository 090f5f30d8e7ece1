"""LightningModule for training a `TransformerNet` against a `PerceptualLoss`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from stylenet.io.images import load_image_tensor, make_grid, save_image
from stylenet.losses import PerceptualLoss
from stylenet.models import TransformerNet
from stylenet.training.loggers import log_image

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class StyleTransferModule(pl.LightningModule):
    """Trains `net` so that its outputs minimize `loss` on photos.

    Built from ``configs/train.yaml``'s ``module`` node (net, loss, optimizer and scheduler are
    instantiated by Hydra from their own groups).

    Args:
        net: The image transformation network (the only trained part).
        loss: The perceptual loss; its VGG is frozen and excluded from checkpoints.
        style_image: Path of the style image.
        style_size: Long side the style image is resized to before its Grams are computed
            (None: as is).
        optimizer: Factory (a Hydra ``_partial_``) called with the network's parameters.
        scheduler: Optional factory called with the optimizer; stepped every training step.
        num_log_images: Held-out photos shown in the (photo | stylized) grid at each
            validation.
        image_dir: Where the grids are also saved as PNG (None: not saved).
        compile: ``torch.compile`` the training step's forward and loss (transform network +
            VGG + loss terms) and so its backward; compiled on the first step (about a minute
            on CPU). Validation stays eager. See ``scripts/bench_train.py`` for what it gains.
        channels_last: Keep the network's weights and the photos in channels-last (NHWC)
            memory layout, which the convolution kernels of recent GPUs prefer.
    """

    def __init__(
        self,
        net: TransformerNet,
        loss: PerceptualLoss,
        *,
        style_image: str,
        style_size: int | None = None,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_log_images: int = 4,
        image_dir: str | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.style_image = str(style_image)
        self.style_size = style_size
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_log_images = num_log_images
        self.image_dir = Path(image_dir) if image_dir else None
        self.compile_step = compile
        self.channels_last = channels_last
        self.loss.set_style(load_image_tensor(self.style_image, size=style_size))
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        self._compiled_terms: Callable[[Tensor], dict[str, Tensor]] | None = None
        self.last_terms: dict[str, Tensor] = {}

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def terms(self, images: Tensor) -> dict[str, Tensor]:
        """The loss terms of one training batch (the weighted terms and their ``total``)."""
        return self.loss(self.net(images), images)

    def train_terms(self, images: Tensor) -> dict[str, Tensor]:
        """`terms` as the training step computes it: channels-last and compiled if asked."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if not self.compile_step:
            return self.terms(images)
        if self._compiled_terms is None:
            # A compiled bound method, not a compiled submodule: parameter names and
            # checkpoints stay those of the eager network.
            self._compiled_terms = torch.compile(self.terms)
        return self._compiled_terms(images)

    def _log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        on_step = stage == "train"
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}",
                value.detach(),
                on_step=on_step,
                on_epoch=not on_step,
                prog_bar=name == "total" or (stage == "val" and name == "style"),
                batch_size=batch_size,
                sync_dist=not on_step,
            )

    def training_step(self, images: Tensor, batch_idx: int) -> Tensor:
        terms = self.train_terms(images)
        self.last_terms = {k: v.detach() for k, v in terms.items()}  # for DivergenceGuard
        self._log_terms("train", terms, images.shape[0])
        return terms["total"]

    def validation_step(self, images: Tensor, batch_idx: int) -> None:
        stylized = self.net(images)
        terms = self.loss(stylized, images)
        self._log_terms("val", terms, images.shape[0])
        if batch_idx == 0 and self.num_log_images > 0 and not self.trainer.sanity_checking:
            n = min(self.num_log_images, images.shape[0])
            self._log_grid(images[:n], stylized[:n])

    def _log_grid(self, content: Tensor, stylized: Tensor) -> None:
        grid = make_grid(list(zip(content.float().cpu(), stylized.float().cpu(), strict=True)))
        step = self.global_step
        if self.trainer.is_global_zero and self.image_dir is not None:
            save_image(grid, self.image_dir / f"val_step{step:07d}.png", overwrite=True)
        log_image(
            self.loggers,
            "val/stylized",
            grid,
            caption=f"step {step}: held-out photo | stylized",
            step=step,
        )

    def configure_optimizers(self) -> Any:
        # Only the transform network is optimized; the VGG is frozen (requires_grad False) and
        # deliberately not passed.
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Enough to rebuild the network from the checkpoint alone (stylize/export).
        checkpoint["stylenet"] = {
            "config": self.net.config.to_dict(),
            "style_image": self.style_image,
        }

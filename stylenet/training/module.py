"""LightningModule for training a `TransformerNet` against a `PerceptualLoss`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from stylenet.errors import ConfigError
from stylenet.io.images import load_image_tensor, make_grid, save_image
from stylenet.losses import PerceptualLoss
from stylenet.models import ConditionalInstanceNorm2d, TransformerNet
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
        style_image: Path of the style image, or a list of them for a multi-style network
            (``net.num_styles`` of them, in the order of its style weights).
        style_size: Long side the style image is resized to before its Grams are computed
            (None: as is); a list gives one per style.
        style_names: Names of the styles (default: the images' file stems); they label the
            per-style held-out losses and go into the model file.
        train_styles: Train only these styles' (γ, β) (indices), everything else frozen: adding
            styles to a trained network (``init_from``). None: train everything.
        style_scales: A factor on the loss's style weight per style (None: 1 each).
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
        style_image: str | Sequence[str],
        style_size: int | Sequence[int | None] | None = None,
        style_names: Sequence[str] | None = None,
        train_styles: Sequence[int] | None = None,
        style_scales: Sequence[float] | None = None,
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
        images = [str(style_image)] if isinstance(style_image, str) else list(style_image)
        sizes = style_size if isinstance(style_size, Sequence) else [style_size] * len(images)
        if len(images) != net.num_styles or len(sizes) != len(images):
            raise ConfigError(
                f"the network carries {net.num_styles} style(s) but {len(images)} style images "
                f"and {len(sizes)} sizes were given"
            )
        self.style_images = images
        self.style_image = images[0]  # the one style of a one-style network
        self.style_size = sizes[0]
        self.style_sizes = list(sizes)
        self.style_names = list(style_names or [Path(i).stem for i in images])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_log_images = num_log_images
        self.image_dir = Path(image_dir) if image_dir else None
        self.compile_step = compile
        self.channels_last = channels_last
        self.loss.set_styles(
            [load_image_tensor(i, size=size) for i, size in zip(images, sizes, strict=True)],
            style_scales,
        )
        self.style_scales = list(style_scales or [1.0] * len(images))
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        self._compiled_terms: Callable[..., dict[str, Tensor]] | None = None
        self.train_styles = list(range(self.num_styles) if train_styles is None else train_styles)
        if train_styles is not None:
            self._freeze_all_but(self.train_styles)
        self.last_terms: dict[str, Tensor] = {}

    @property
    def num_styles(self) -> int:
        return len(self.style_images)

    def forward(self, images: Tensor, style_index: Tensor | None = None) -> Tensor:
        return self.net(images, self._one_hot(style_index))

    def _one_hot(self, style_index: Tensor | None) -> Tensor | None:
        if style_index is None:
            return None
        return torch.nn.functional.one_hot(style_index, self.num_styles).float()

    def style_of_step(self, step: int) -> int:
        """The style a training step uses: every trained style once per round, in an order
        shuffled anew each round (seeded by the round, so a resumed run draws the same)."""
        n = len(self.train_styles)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(step // n))
        return self.train_styles[int(order[step % n])]

    def _freeze_all_but(self, styles: list[int]) -> None:
        """Only the conditional norms' rows of `styles` learn: every other parameter is frozen,
        and the gradient of the other rows is zeroed (Adam then leaves them exactly as they
        are)."""
        if self.num_styles == 1 or not styles:
            raise ConfigError("train_styles needs a multi-style network and at least one style")
        mask = torch.zeros(self.num_styles, 1)
        mask[styles] = 1.0
        for module in self.net.modules():
            for param in module.parameters(recurse=False):
                if isinstance(module, ConditionalInstanceNorm2d):
                    param.register_hook(lambda grad: grad * mask.to(grad))
                else:
                    param.requires_grad_(False)

    def terms(self, images: Tensor, style_index: Tensor | None = None) -> dict[str, Tensor]:
        """The loss terms of one training batch (the weighted terms and their ``total``);
        `style_index` (B,) gives each photo's style in a multi-style network."""
        return self.loss(self.net(images, self._one_hot(style_index)), images, style_index)

    def train_terms(self, images: Tensor, style_index: Tensor | None = None) -> dict[str, Tensor]:
        """`terms` as the training step computes it: channels-last and compiled if asked."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if not self.compile_step:
            return self.terms(images, style_index)
        if self._compiled_terms is None:
            # A compiled bound method, not a compiled submodule: parameter names and
            # checkpoints stay those of the eager network.
            self._compiled_terms = torch.compile(self.terms)
        return self._compiled_terms(images, style_index)

    def _batch_style(self, images: Tensor, style: int) -> Tensor | None:
        if self.num_styles == 1:
            return None
        return torch.full((images.shape[0],), style, dtype=torch.long, device=images.device)

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

    def training_step(self, images: Tensor, batch_idx: int) -> Tensor:
        # A multi-style network trains one style per batch (see `style_of_step`): each step's
        # gradient is about one painting, and every style gets the same number of steps.
        style = self._batch_style(images, self.style_of_step(self.global_step))
        terms = self.train_terms(images, style)
        self.last_terms = {k: v.detach() for k, v in terms.items()}  # for DivergenceGuard
        self._log_terms("train", terms, images.shape[0])
        return terms["total"]

    def validation_step(self, images: Tensor, batch_idx: int) -> None:
        """Held-out losses of every style; a multi-style network logs ``val/<style>/<term>``
        per style and ``val/<term>`` as their mean (what sweeps and the progress bar see)."""
        stylized: list[Tensor] = []
        per_style: list[dict[str, Tensor]] = []
        for k in range(self.num_styles):
            style = self._batch_style(images, k)
            out = self(images, style)
            stylized.append(out)
            per_style.append(self.loss(out, images, style))
        if self.num_styles > 1:
            for name, terms in zip(self.style_names, per_style, strict=True):
                self._log_terms(f"val/{name}", terms, images.shape[0], prog_bar=False)
        mean = {k: torch.stack([t[k] for t in per_style]).mean() for k in per_style[0]}
        self._log_terms("val", mean, images.shape[0])
        if batch_idx == 0 and self.num_log_images > 0 and not self.trainer.sanity_checking:
            n = min(self.num_log_images, images.shape[0])
            self._log_grid(images[:n], [s[:n] for s in stylized])

    def _log_grid(self, content: Tensor, stylized: list[Tensor]) -> None:
        """One row per held-out photo: the photo, then each style's output."""
        columns = [content, *stylized]
        rows = [tuple(c[i].float().cpu() for c in columns) for i in range(content.shape[0])]
        grid = make_grid(rows)
        step = self.global_step
        if self.trainer.is_global_zero and self.image_dir is not None:
            save_image(grid, self.image_dir / f"val_step{step:07d}.png", overwrite=True)
        styles = " | ".join(self.style_names) if self.num_styles > 1 else "stylized"
        log_image(
            self.loggers,
            "val/stylized",
            grid,
            caption=f"step {step}: held-out photo | {styles}",
            step=step,
        )

    def configure_optimizers(self) -> Any:
        # Only the transform network is optimized; the VGG is frozen (requires_grad False) and
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
        # Enough to rebuild the network from the checkpoint alone (stylize/export).
        checkpoint["stylenet"] = {
            "config": self.net.config.to_dict(),
            "style_image": self.style_image,
        }
        if self.num_styles > 1:
            checkpoint["stylenet"]["styles"] = self.style_records()

    def style_records(self) -> list[dict[str, Any]]:
        """What a model file records of each style, in style-weight order."""
        return [
            {"name": name, "image": str(Path(image).resolve()), "size": size, "style_scale": scale}
            for name, image, size, scale in zip(
                self.style_names,
                self.style_images,
                self.style_sizes,
                self.style_scales,
                strict=True,
            )
        ]

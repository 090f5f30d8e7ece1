"""The style-transfer task (``task=style``): a `TransformerNet` trained on photos to take one
painting's style, or several (conditional instance norm, Dumoulin et al. 2017).

The photo is both the network's input and the content target; the style targets are the
paintings' Gram matrices, computed once. A multi-style network trains one style per step (each
step's gradient is about one painting; every style gets the same number of steps) and is
validated in every style.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylenet.errors import ConfigError
from stylenet.evaluation.evaluate import evaluate_styles
from stylenet.evaluation.report import LoggableReport
from stylenet.inference.model_card import StyleRecord
from stylenet.io.images import load_image_tensor
from stylenet.losses import PerceptualLoss
from stylenet.models import ConditionalInstanceNorm2d, TransformerNet
from stylenet.training.module import ImageToImageModule


class StyleTransferModule(ImageToImageModule):
    """Trains `net` so that its outputs minimize `loss` on photos.

    Built from ``configs/task/style.yaml``'s ``module`` node (net, loss, optimizer and scheduler
    are instantiated by Hydra from their own groups).

    Args:
        net: The image transformation network.
        loss: The perceptual loss; its style targets are set here.
        style_image: Path of the style image, or a list of them for a multi-style network
            (``net.num_styles`` of them, in the order of its style weights).
        style_size: Long side the style image is resized to before its Grams are computed
            (None: as is); a list gives one per style.
        style_names: Names of the styles (default: the images' file stems); they label the
            per-style held-out losses and go into the model card.
        train_styles: Train only these styles' (γ, β) (indices), everything else frozen: adding
            styles to a trained network (``init_from``). None: train everything.
        style_scales: A factor on the loss's style weight per style (None: 1 each).
        **kwargs: `ImageToImageModule`'s (optimizer, scheduler, logging, compile, ...).
    """

    task = "style"
    grid_key = "val/stylized"

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
        **kwargs: Any,
    ) -> None:
        images = [str(style_image)] if isinstance(style_image, str) else list(style_image)
        sizes = style_size if isinstance(style_size, Sequence) else [style_size] * len(images)
        if len(images) != net.num_styles or len(sizes) != len(images):
            raise ConfigError(
                f"the network carries {net.num_styles} style(s) but {len(images)} style images "
                f"and {len(sizes)} sizes were given"
            )
        # Before the base class: channels_last converts the loss with its style targets.
        loss.set_styles(
            [load_image_tensor(i, size=size) for i, size in zip(images, sizes, strict=True)],
            style_scales,
        )
        super().__init__(net, loss, **kwargs)
        self.net: TransformerNet = net
        self.style_images = images
        self.style_image = images[0]  # the one style of a one-style network
        self.style_size = sizes[0]
        self.style_sizes = list(sizes)
        self.style_names = list(style_names or [Path(i).stem for i in images])
        self.style_scales = list(style_scales or [1.0] * len(images))
        self.train_styles = list(range(self.num_styles) if train_styles is None else train_styles)
        if train_styles is not None:
            self._freeze_all_but(self.train_styles)

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

    def _batch_style(self, images: Tensor, style: int) -> Tensor | None:
        if self.num_styles == 1:
            return None
        return torch.full((images.shape[0],), style, dtype=torch.long, device=images.device)

    # --- the task's hooks -------------------------------------------------------------------

    def training_example(self, batch: Tensor) -> tuple[Tensor, Tensor, tuple[Any, ...]]:
        # The photo is the input and the content target; a multi-style network trains one
        # style per batch (`style_of_step`).
        style = self._batch_style(batch, self.style_of_step(self.global_step))
        return batch, batch, (style,)

    def terms(
        self, inputs: Tensor, target: Tensor, style_index: Tensor | None = None, *extra: Any
    ) -> dict[str, Tensor]:
        """The loss terms of one batch; `style_index` (B,) gives each photo's style in a
        multi-style network."""
        one_hot = self._one_hot(style_index)

        def transform(images: Tensor) -> Tensor:  # the same styles, for the stability terms
            return self.net(images, one_hot)

        return self.loss(transform(inputs), target, style_index, source=inputs, transform=transform)

    def validation_results(
        self, inputs: Tensor, target: Tensor
    ) -> dict[str, tuple[Tensor, dict[str, Tensor]]]:
        """Every style's outputs and losses, labelled by style name (one style: "")."""
        results = {}
        for k, name in enumerate(self.style_names):
            style = self._batch_style(inputs, k)
            out = self(inputs, style)
            terms = self.loss(
                out, target, style, source=inputs, transform=lambda x, s=style: self(x, s)
            )
            results[name if self.num_styles > 1 else ""] = (out, terms)
        return results

    def frame_output(self, frames: Tensor) -> Tensor:
        return self(frames, self._batch_style(frames, 0))

    def grid_caption(self, labels: Sequence[str]) -> str:
        styles = " | ".join(self.style_names) if self.num_styles > 1 else "stylized"
        return f"held-out photo | {styles}"

    def card_fields(self) -> dict[str, Any]:
        return {"task": self.task, "styles": tuple(self.style_records())}

    def evaluate_model(
        self, model_path: Path, content: Path, out_dir: Path, **options: Any
    ) -> Iterator[tuple[str, Path, LoggableReport]]:
        """``stylenet-evaluate`` (the model against its own loss's optimum), once per style of a
        multi-style model (``eval/<style>/...``)."""
        styles = self.style_names if self.num_styles > 1 else []
        for style, out, report in evaluate_styles(
            model_path, content, out_dir, styles, overwrite=True, **options
        ):
            yield (f"eval/{style}" if style else "eval"), out, report

    def style_records(self) -> list[StyleRecord]:
        """What the model card records of each style, in style-weight order."""
        return [
            StyleRecord(name, str(Path(image).resolve()), size, scale)
            for name, image, size, scale in zip(
                self.style_names,
                self.style_images,
                self.style_sizes,
                self.style_scales,
                strict=True,
            )
        ]

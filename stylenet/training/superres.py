"""The super-resolution task (``task=superres``, Johnson et al. 2016, Sec. 4.2): a
`SuperResolutionNet` trained on (low-res, high-res) pairs of photo crops, the low-res made by
`stylenet.training.degradation` in the data loaders, against the feature reconstruction loss
at relu2_2 (``loss=superres``) or, as the baseline, the pixel loss (``loss=pixel``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from stylenet.evaluation.report import LoggableReport
from stylenet.evaluation.superres import evaluate_superres
from stylenet.losses import PerceptualLoss
from stylenet.models import SuperResolutionNet
from stylenet.training.module import ImageToImageModule


class SuperResolutionModule(ImageToImageModule):
    """Trains `net` to map the low-res input of each pair to its high-res crop.

    Built from ``configs/task/superres.yaml``'s ``module`` node.

    Args:
        net: The super-resolution network.
        loss: Its loss, compared with the high-res crop (no style targets).
        **kwargs: `ImageToImageModule`'s (optimizer, scheduler, logging, compile, ...).
    """

    task = "superres"
    grid_key = "val/upscaled"

    def __init__(self, net: SuperResolutionNet, loss: PerceptualLoss, **kwargs: Any) -> None:
        super().__init__(net, loss, **kwargs)
        self.net: SuperResolutionNet = net

    def training_example(self, batch: Any) -> tuple[Tensor, Tensor, tuple[Any, ...]]:
        lr, hr = batch  # (B, 3, S/scale, S/scale), (B, 3, S, S): `SuperResolutionPairs`
        return lr, hr, ()

    def grid_columns(self, inputs: Tensor, target: Tensor, outputs: list[Tensor]) -> list[Tensor]:
        # The low-res input at the output's size, pixels as they are (nearest), then the
        # output and the high-res photo it should match.
        shown = F.interpolate(inputs, size=target.shape[-2:], mode="nearest")
        return [shown, *outputs, target]

    def grid_caption(self, labels: Sequence[str]) -> str:
        return f"held-out low-res input (×{self.net.scale}, nearest) | output | high-res"

    def evaluate_model(
        self, model_path: Path, content: Path, out_dir: Path, **options: Any
    ) -> Iterator[tuple[str, Path, LoggableReport]]:
        """``stylenet-evaluate`` of an SR model: PSNR/SSIM (Y, border cropped) and LPIPS of the
        model and of bicubic upsampling on the held-out photos (``eval/<method>/...``)."""
        options.pop("optimize", None)  # Gatys' optimization is the style task's reference
        yield (
            "eval",
            out_dir,
            evaluate_superres(model_path, content, out_dir, overwrite=True, **options),
        )

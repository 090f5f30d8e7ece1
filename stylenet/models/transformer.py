"""The image transformation network of Johnson, Alahi & Fei-Fei 2016 ("Perceptual Losses for
Real-Time Style Transfer and Super-Resolution", supplementary material, Table 1).

Layer notation of the paper: c9s1-32, d64, d128, R128 ×5, u64, u32, c9s1-3.

Where we follow the later reference code instead of the paper:
- reflection padding everywhere instead of the paper's 40-px border and cropped residual blocks
  (Johnson's fast-neural-style repo and pytorch/examples do the same);
- instance normalization instead of batch norm (Ulyanov et al. 2016; Johnson's repo default);
- nearest-neighbour upsampling followed by a stride-1 conv instead of fractionally strided
  conv, which avoids checkerboard artifacts (Odena et al. 2016, "Deconvolution and
  Checkerboard Artifacts").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a `TransformerNet`; stored in every exported model file.

    Attributes:
        base_channels: Width of the first conv (32 in the paper); the downsampling convs use
            2× and 4× this width.
        num_residual_blocks: Residual blocks at the bottleneck (5 in the paper).
    """

    base_channels: int = 32
    num_residual_blocks: int = 5

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class ConvLayer(nn.Module):
    """Reflection pad → conv, padded so a stride-1 conv keeps the spatial size."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class ConvNormReLU(nn.Sequential):
    """Conv → affine instance norm → ReLU: the paper's c/d blocks."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            ConvLayer(in_ch, out_ch, kernel_size, stride),
            nn.InstanceNorm2d(out_ch, affine=True),
            nn.ReLU(inplace=True),
        )


class UpsampleConvNormReLU(nn.Module):
    """Nearest ×2 upsample → conv → instance norm → ReLU: the paper's u blocks, without the
    transposed conv (see module docstring)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.block = ConvNormReLU(in_ch, out_ch, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResidualBlock(nn.Module):
    """Two 3×3 convs with instance norm; ReLU only after the first (Gross & Wilber 2016, as in
    Johnson's supplementary Fig. 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            ConvNormReLU(channels, channels, 3),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class TransformerNet(nn.Module):
    """Feed-forward stylizer: (B, 3, H, W) in [0, 1] → (B, 3, H, W) in [0, 1].

    H and W must be multiples of 4 (two stride-2 downsamplings, two ×2 upsamplings) and at
    least 8; callers with other sizes reflect-pad first and crop back.

    Args:
        base_channels: Width of the first conv (32 in the paper).
        num_residual_blocks: Number of residual blocks (5 in the paper).
    """

    def __init__(self, *, base_channels: int = 32, num_residual_blocks: int = 5) -> None:
        super().__init__()
        if base_channels < 1 or num_residual_blocks < 0:
            raise ValueError(
                f"TransformerNet needs base_channels >= 1 and num_residual_blocks >= 0, got "
                f"base_channels={base_channels}, num_residual_blocks={num_residual_blocks}"
            )
        self.config = TransformerConfig(base_channels, num_residual_blocks)
        c = base_channels
        self.encoder = nn.Sequential(
            ConvNormReLU(3, c, 9),  # c9s1-32
            ConvNormReLU(c, 2 * c, 3, stride=2),  # d64
            ConvNormReLU(2 * c, 4 * c, 3, stride=2),  # d128
        )
        self.residuals = nn.Sequential(*[ResidualBlock(4 * c) for _ in range(num_residual_blocks)])
        self.decoder = nn.Sequential(
            UpsampleConvNormReLU(4 * c, 2 * c),  # u64
            UpsampleConvNormReLU(2 * c, c),  # u32
            ConvLayer(c, 3, 9),  # c9s1-3, no norm
        )

    @classmethod
    def from_config(cls, config: TransformerConfig | dict) -> TransformerNet:
        if isinstance(config, dict):
            config = TransformerConfig(**config)
        return cls(**config.to_dict())

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"TransformerNet expects (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or h < 8 or w < 8:
            # ≥ 8: the 9×9 conv's 4-px reflection pad must be smaller than the image.
            raise ValueError(
                f"TransformerNet needs H and W divisible by 4 and at least 8, got {(h, w)}; "
                "wrap it in stylenet.models.PadCrop for any size"
            )
        y = self.decoder(self.residuals(self.encoder(x)))
        # Output activation: a sigmoid, so the image is in [0, 1] by construction with a gradient
        # everywhere. Johnson's code uses 150·tanh(x) on a mean-subtracted 0-255 scale; a scaled
        # tanh (tanh(x)+1)/2 is exactly sigmoid(2x), so this is the same family. A hard clamp would
        # kill the gradient of every saturated pixel early in training.
        return torch.sigmoid(y)

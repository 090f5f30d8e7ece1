"""The super-resolution network of Johnson, Alahi & Fei-Fei 2016 ("Perceptual Losses for
Real-Time Style Transfer and Super-Resolution", Sec. 3.1 and 4.2; supplementary material,
Table 2).

The paper's network for an upsampling factor f works at the low resolution and upsamples inside
the network (Sec. 3.1, unlike SRCNN, which bicubic-upsamples its input first): c9s1-64, four
residual blocks of 64 filters, log2 f convolutions of stride 1/2 with 64 filters, c9s1-3, every
conv but the last followed by batch norm and ReLU, a scaled tanh at the output.

Where we depart from the paper, and why:
- reflection padding everywhere, as in our `TransformerNet` (the paper's SR network zero-pads);
- each ×2 upsampling is a nearest-neighbour ×2 upsample followed by a 3×3 stride-1 conv instead
  of a stride-1/2 (transposed) conv, which avoids checkerboard artifacts (Odena, Dumoulin & Olah
  2016, "Deconvolution and Checkerboard Artifacts"); our style network's decoder does the same;
- no normalization layers. Batch norm is a fixed affine map at inference and instance norm would
  make a tiled image depend on each tile's content; EDSR (Lim et al. 2017, "Enhanced Deep
  Residual Networks for Single Image Super-Resolution", Sec. 3.1) removed batch norm from SR
  residual blocks and found it better (and cheaper);
- the network predicts a residual over a bicubic ×f upsample of its input instead of the image
  itself (global residual learning, Kim, Lee & Lee 2016, "VDSR"; Real-ESRGAN's SRVGGNetCompact
  adds an upsampled input the same way). The trunk still runs at the low resolution as in the
  paper; only the skip is upsampled. The untrained network is bicubic upsampling but for a
  faint residual (the last conv starts at a tenth of PyTorch's init), so training starts from the
  classical baseline instead of from grey, which converges in far fewer steps (matters on a CPU).
  See `SuperResolutionNet.forward` for the output range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.models.transformer import ConvLayer, UpsampleConvLayer


@dataclass(frozen=True)
class SuperResolutionConfig:
    """Architecture of a `SuperResolutionNet`; stored in every exported model file.

    Attributes:
        scale: Upsampling factor f, a power of 2 ≥ 2 (the paper trains ×4 and ×8, Sec. 4.2).
        channels: Width of every hidden conv (64 in the paper, supplementary Table 2).
        num_residual_blocks: Residual blocks at the low resolution (4 in the paper,
            supplementary Table 2).

    Raises:
        ConfigError: A value out of range (the message names it).
    """

    scale: int = 4
    channels: int = 64
    num_residual_blocks: int = 4

    def __post_init__(self) -> None:
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ConfigError(
                f"scale must be a power of 2 >= 2 (4 or 8 in the paper), got {self.scale}"
            )
        if self.channels < 1 or self.num_residual_blocks < 0:
            raise ConfigError(
                f"SuperResolutionNet needs channels >= 1 and num_residual_blocks >= 0, got "
                f"channels={self.channels}, num_residual_blocks={self.num_residual_blocks}"
            )

    @property
    def num_upsamplings(self) -> int:
        """log2(scale): the ×2 upsampling stages."""
        return self.scale.bit_length() - 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class PlainResidualBlock(nn.Module):
    """Two 3×3 convs, ReLU after the first only, no normalization: the paper's residual block
    (Gross & Wilber 2016, supplementary Fig. 1) without its batch norms, as in EDSR."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            ConvLayer(channels, channels, 3),
            nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class UpsampleConvReLU(nn.Module):
    """Nearest ×2 upsample → 3×3 conv → ReLU: one of the paper's stride-1/2 convs (see module
    docstring)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = UpsampleConvLayer(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x))


# The last conv's initial weights, as a fraction of PyTorch's default init (see the network).
RESIDUAL_INIT = 0.1


class SuperResolutionNet(nn.Module):
    """Feed-forward super-resolution: (B, 3, h, w) in [0, 1] → (B, 3, h·scale, w·scale) in [0, 1].

    Any h, w ≥ `min_side` (5: the first 9×9 conv reflection-pads by 4, which needs a side > 4);
    callers with smaller images pad first. Parameters: 400,451 at ×4 and 437,379 at ×8 with the
    paper's widths (64 channels, 4 residual blocks; each ×2 stage adds one 3×3 conv, 36,928).

    Args:
        scale: Upsampling factor, a power of 2 ≥ 2 (4 or 8 in the paper).
        channels: Width of every hidden conv (64 in the paper).
        num_residual_blocks: Number of residual blocks (4 in the paper).

    Raises:
        ConfigError: A value out of range.
    """

    min_side = 5  # the 9×9 conv's 4-px reflection pad must be smaller than the image
    __constants__ = ("min_side", "scale")  # TorchScript reads class attributes only as constants

    def __init__(self, *, scale: int = 4, channels: int = 64, num_residual_blocks: int = 4) -> None:
        super().__init__()
        self.config = SuperResolutionConfig(scale, channels, num_residual_blocks)
        self.scale = scale
        c = channels
        self.head = nn.Sequential(ConvLayer(3, c, 9), nn.ReLU(inplace=True))  # c9s1-64
        self.residuals = nn.Sequential(*[PlainResidualBlock(c) for _ in range(num_residual_blocks)])
        self.upsample = nn.Sequential(
            *[UpsampleConvReLU(c) for _ in range(self.config.num_upsamplings)]
        )
        self.tail = ConvLayer(c, 3, 9)  # c9s1-3, no activation: a residual over bicubic
        # A small residual at the start (PyTorch's init × RESIDUAL_INIT, bias 0): the untrained
        # network is bicubic upsampling but for a faint residual, and every layer gets a
        # gradient from the first step. A zero last conv (an exactly bicubic start) left the
        # layers before it without gradient until it grew: on a 32-channel ×4 net overfitting two
        # 64² photo crops (Adam 1e-3), MSE after 100 steps fell 6% from zero, 36% from 0.1.
        with torch.no_grad():
            self.tail.conv.weight.mul_(RESIDUAL_INIT)
            bias = self.tail.conv.bias
            assert bias is not None
            bias.zero_()

    @classmethod
    def from_config(cls, config: SuperResolutionConfig | dict) -> SuperResolutionNet:
        if isinstance(config, dict):
            config = SuperResolutionConfig(**config)
        return cls(**config.to_dict())

    def forward(self, x: Tensor) -> Tensor:
        """Upsample (B, 3, h, w) in [0, 1] by `scale`."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"SuperResolutionNet expects (B, 3, h, w), got {x.shape}")
        h, w = x.shape[2], x.shape[3]
        if h < self.min_side or w < self.min_side:
            raise ValueError(
                f"SuperResolutionNet needs h and w of at least {self.min_side}, got ({h}, {w})"
            )
        # (B, 3, h·s, w·s): PyTorch's bicubic (a = -0.75, half-pixel centres), as in ONNX Resize
        base = F.interpolate(x, scale_factor=float(self.scale), mode="bicubic", align_corners=False)
        y = self.tail(self.upsample(self.residuals(self.head(x))))
        out = base + y
        # Output range: clamp to [0, 1] (bicubic overshoots at edges and the residual is
        # unbounded) with a straight-through gradient (Bengio et al. 2013): the forward value is
        # exactly the clamped image (v - v is exactly 0), the backward passes the gradient of
        # every pixel, saturated ones included, which a plain clamp would zero. A sigmoid (as in
        # TransformerNet) would not leave the bicubic baseline unchanged at a zero residual.
        clamped = out.clamp(0.0, 1.0)
        if not out.requires_grad:  # inference and exports: the same values, two passes fewer
            return clamped
        return clamped.detach() + (out - out.detach())


__all__ = [
    "PlainResidualBlock",
    "SuperResolutionConfig",
    "SuperResolutionNet",
    "UpsampleConvReLU",
]

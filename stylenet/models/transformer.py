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

Many styles in one network (Dumoulin, Shlens & Kudlur 2017, "A Learned Representation for
Artistic Style"): with ``num_styles`` N > 1 every instance norm, residual blocks included, is a
`ConditionalInstanceNorm2d` whose scale and shift (γ, β) are chosen per style; everything else is
shared. The forward takes style weights (B, N): one-hot for one style, a convex mix to blend,
which mixes γ and β. `TransformerNet.bind` folds a choice of weights into a plain one-style
network, so every inference path (tiling, video, exports) works on it unchanged.
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
        num_styles: Styles the network carries (conditional instance norm when > 1).
    """

    base_channels: int = 32
    num_residual_blocks: int = 5
    num_styles: int = 1

    def to_dict(self) -> dict[str, int]:
        # One-style configs keep the two keys they always had: files written before multi-style
        # networks existed and after are the same.
        config = asdict(self)
        if self.num_styles == 1:
            del config["num_styles"]
        return config


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one (γ, β) pair per style (Dumoulin et al. 2017, Eq. 5).

    ``forward(x, style_weights)`` mixes the pairs with the (B, N) weights, γ = w·Γ and
    β = w·Β, so a one-hot row selects a style exactly and a convex row blends them.

    Args:
        channels: C.
        num_styles: N.
    """

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_styles = num_styles
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: Tensor, style_weights: Tensor) -> Tensor:
        w = style_weights.to(self.weight.dtype)
        gamma = (w @ self.weight)[:, :, None, None]  # (B, C, 1, 1)
        beta = (w @ self.bias)[:, :, None, None]
        return F.instance_norm(x, eps=self.eps) * gamma.to(x.dtype) + beta.to(x.dtype)


def _norm(num_styles: int, channels: int) -> nn.Module:
    if num_styles == 1:
        return nn.InstanceNorm2d(channels, affine=True)
    return ConditionalInstanceNorm2d(channels, num_styles)


def _apply_norm(norm: nn.Module, x: Tensor, style_weights: Tensor | None) -> Tensor:
    if isinstance(norm, ConditionalInstanceNorm2d):
        assert style_weights is not None
        return norm(x, style_weights)
    return norm(x)


class ConvLayer(nn.Module):
    """Reflection pad → conv, padded so a stride-1 conv keeps the spatial size."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest ×2 upsample → reflection pad → conv: the upsampling half of the paper's
    fractionally strided convs (see module docstring). A `ConvLayer` with the same parameter names,
    so model files do not see the difference; `stylenet.models.rewrite` computes it faster for
    export."""

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(F.interpolate(x, scale_factor=2.0, mode="nearest")))


class ConvNormReLU(nn.Sequential):
    """Conv → affine instance norm → ReLU: the paper's c/d blocks."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        num_styles: int = 1,
        conv: type[ConvLayer] | None = None,
    ) -> None:
        super().__init__(
            (conv or ConvLayer)(in_ch, out_ch, kernel_size, stride),
            _norm(num_styles, out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor, style_weights: Tensor | None = None) -> Tensor:
        conv, norm, relu = self[0], self[1], self[2]
        return relu(_apply_norm(norm, conv(x), style_weights))


class UpsampleConvNormReLU(nn.Module):
    """Nearest ×2 upsample → conv → instance norm → ReLU: the paper's u blocks, without the
    transposed conv (see module docstring)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, num_styles: int = 1) -> None:
        super().__init__()
        self.block = ConvNormReLU(
            in_ch, out_ch, kernel_size, num_styles=num_styles, conv=UpsampleConvLayer
        )

    def forward(self, x: Tensor, style_weights: Tensor | None = None) -> Tensor:
        return self.block(x, style_weights)


class ResidualBlock(nn.Module):
    """Two 3×3 convs with instance norm; ReLU only after the first (Gross & Wilber 2016, as in
    Johnson's supplementary Fig. 1)."""

    def __init__(self, channels: int, num_styles: int = 1) -> None:
        super().__init__()
        self.block = nn.Sequential(
            ConvNormReLU(channels, channels, 3, num_styles=num_styles),
            ConvLayer(channels, channels, 3),
            _norm(num_styles, channels),
        )

    def forward(self, x: Tensor, style_weights: Tensor | None = None) -> Tensor:
        first, conv, norm = self.block[0], self.block[1], self.block[2]
        return x + _apply_norm(norm, conv(first(x, style_weights)), style_weights)


class TransformerNet(nn.Module):
    """Feed-forward stylizer: (B, 3, H, W) in [0, 1] → (B, 3, H, W) in [0, 1].

    H and W must be multiples of 4 (two stride-2 downsamplings, two ×2 upsamplings) and at
    least 8; callers with other sizes reflect-pad first and crop back.

    Args:
        base_channels: Width of the first conv (32 in the paper).
        num_residual_blocks: Number of residual blocks (5 in the paper).
        num_styles: Styles carried by conditional instance norms (1: plain instance norm, the
            paper's network; its parameter names and shapes are unchanged).
    """

    scale = 1  # output side = input side × scale (SuperResolutionNet: its factor)

    def __init__(
        self, *, base_channels: int = 32, num_residual_blocks: int = 5, num_styles: int = 1
    ) -> None:
        super().__init__()
        if base_channels < 1 or num_residual_blocks < 0 or num_styles < 1:
            raise ValueError(
                f"TransformerNet needs base_channels >= 1, num_residual_blocks >= 0 and "
                f"num_styles >= 1, got base_channels={base_channels}, "
                f"num_residual_blocks={num_residual_blocks}, num_styles={num_styles}"
            )
        self.config = TransformerConfig(base_channels, num_residual_blocks, num_styles)
        c, n = base_channels, num_styles
        self.encoder = nn.Sequential(
            ConvNormReLU(3, c, 9, num_styles=n),  # c9s1-32
            ConvNormReLU(c, 2 * c, 3, stride=2, num_styles=n),  # d64
            ConvNormReLU(2 * c, 4 * c, 3, stride=2, num_styles=n),  # d128
        )
        self.residuals = nn.Sequential(
            *[ResidualBlock(4 * c, num_styles=n) for _ in range(num_residual_blocks)]
        )
        self.decoder = nn.Sequential(
            UpsampleConvNormReLU(4 * c, 2 * c, num_styles=n),  # u64
            UpsampleConvNormReLU(2 * c, c, num_styles=n),  # u32
            ConvLayer(c, 3, 9),  # c9s1-3, no norm
        )

    @property
    def num_styles(self) -> int:
        return self.config.num_styles

    @classmethod
    def from_config(cls, config: TransformerConfig | dict) -> TransformerNet:
        if isinstance(config, dict):
            config = TransformerConfig(**config)
        return cls(**config.to_dict())

    def style_weights(self, style_weights: Tensor | None, batch: int) -> Tensor | None:
        """(B, N) weights from None (a one-style network), (N,) (the same for every image) or
        (B, N)."""
        n = self.num_styles
        if style_weights is None:
            if n > 1:
                raise ValueError(
                    f"this network carries {n} styles: pass style_weights (B, {n}), one-hot to "
                    "pick a style or a mix"
                )
            return None
        if style_weights.ndim == 1 and style_weights.shape == (n,):
            style_weights = style_weights.unsqueeze(0).expand(batch, -1)
        if style_weights.shape != (batch, n):
            raise ValueError(
                f"style_weights must be ({batch}, {n}) or ({n},), got {tuple(style_weights.shape)}"
            )
        return style_weights if n > 1 else None

    @torch.no_grad()
    def bind(self, style_weights: Tensor) -> TransformerNet:
        """A one-style network that computes ``self(x, style_weights)`` for every x: each
        conditional norm's (γ, β) mixed with the (N,) weights, everything else copied."""
        net = TransformerNet(
            base_channels=self.config.base_channels,
            num_residual_blocks=self.config.num_residual_blocks,
        )
        w = style_weights.to(torch.float32).flatten()
        if w.shape != (self.num_styles,):
            raise ValueError(f"style weights must be ({self.num_styles},), got {tuple(w.shape)}")
        state = {}
        for key, value in self.state_dict().items():
            if self.num_styles > 1 and value.ndim == 2 and value.shape[0] == self.num_styles:
                value = (w.to(value.device) @ value.float()).to(value.dtype)
            state[key] = value
        net.load_state_dict(state)
        return net.to(next(self.parameters()).device).train(self.training)

    @torch.no_grad()
    def with_styles(self, num_styles: int) -> TransformerNet:
        """A copy carrying `num_styles` ≥ this network's styles: the shared weights and every
        existing style's (γ, β) copied, each new style's (γ, β) started at the mean of the
        existing ones (for adding a style by training only its own γ and β)."""
        if num_styles < self.num_styles:
            raise ValueError(f"cannot drop styles: {self.num_styles} → {num_styles}")
        net = TransformerNet(
            base_channels=self.config.base_channels,
            num_residual_blocks=self.config.num_residual_blocks,
            num_styles=num_styles,
        )
        state = {}
        for key, value in net.state_dict().items():
            old = self.state_dict()[key]
            if value.shape != old.shape:  # a norm's (γ or β): (C,) or (N, C) → (N', C)
                rows = old.reshape(-1, old.shape[-1])
                value = torch.cat(
                    [rows, rows.mean(0, keepdim=True).expand(num_styles - len(rows), -1)]
                )
            else:
                value = old
            state[key] = value
        net.load_state_dict(state)
        return net.to(next(self.parameters()).device)

    def forward(self, x: Tensor, style_weights: Tensor | None = None) -> Tensor:
        """Stylize (B, 3, H, W) in [0, 1]; `style_weights` (B, N) or (N,) for a multi-style
        network (rows one-hot or convex mixes)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"TransformerNet expects (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or h < 8 or w < 8:
            # ≥ 8: the 9×9 conv's 4-px reflection pad must be smaller than the image.
            raise ValueError(
                f"TransformerNet needs H and W divisible by 4 and at least 8, got {(h, w)}; "
                "wrap it in stylenet.models.PadCrop for any size"
            )
        weights = self.style_weights(style_weights, x.shape[0])
        for block in self.encoder:
            x = block(x, weights)
        for block in self.residuals:
            x = block(x, weights)
        up1, up2, out = self.decoder[0], self.decoder[1], self.decoder[2]
        y = out(up2(up1(x, weights), weights))
        # Output activation: a sigmoid, so the image is in [0, 1] by construction with a gradient
        # everywhere. Johnson's code uses 150·tanh(x) on a mean-subtracted 0-255 scale; a scaled
        # tanh (tanh(x)+1)/2 is exactly sigmoid(2x), so this is the same family. A hard clamp would
        # kill the gradient of every saturated pixel early in training.
        return torch.sigmoid(y)

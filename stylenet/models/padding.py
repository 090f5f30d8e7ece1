"""Any image size in, the same size out (times the network's scale).

`TransformerNet` needs H and W divisible by 4 (two stride-2 downsamplings, two ×2 upsamplings) and
at least 8 (its 9×9 conv reflection-pads by 4); `SuperResolutionNet` takes any H, W of at least its
`min_side` (5) and returns them ×`scale`. `pad_to_multiple` reflect-pads the bottom and right edges
up to what the network needs (`SizeRule`), and `PadCrop` crops the output back to (H·scale,
W·scale), so every path (eager, tiles, TorchScript and ONNX exports) pads the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from stylenet.models.superres import SuperResolutionNet

__all__ = ["PadCrop", "SizeRule", "pad_to_multiple", "padded_size"]


@dataclass(frozen=True)
class SizeRule:
    """What a network takes and gives: input sides a multiple of `multiple` and at least
    `minimum`; output sides `scale` times the input's.

    The defaults are `TransformerNet`'s (4, 8, 1); `SizeRule.of` reads any network's.
    """

    multiple: int = 4
    minimum: int = 8
    scale: int = 1

    @classmethod
    def of(cls, net: nn.Module) -> SizeRule:
        """The rule of `net`: a `SuperResolutionNet` takes any side ≥ its `min_side` and
        upsamples by its `scale`; anything else is taken for a `TransformerNet`."""
        if isinstance(net, SuperResolutionNet):
            return cls(multiple=1, minimum=net.min_side, scale=net.scale)
        return cls()


def padded_size(n: int, multiple: int = 4, minimum: int = 8) -> int:
    """Smallest multiple of `multiple` that is ≥ max(n, `minimum`): what `pad_to_multiple` pads a
    side of n to.

    Literals (the defaults, and a `PadCrop`'s constants), not module globals: TorchScript cannot
    read Python globals.
    """
    if torch.jit.is_scripting():
        return max(minimum, n + (-n) % multiple)
    return _symbolic_padded_size(n, multiple, minimum)


@torch.jit.unused
def _symbolic_padded_size(n: int, multiple: int, minimum: int) -> int:
    # torch.export: sym_max keeps the size symbolic (a SymInt) where a Python max() would
    # specialize on the example input. Avoid cleverer integer tricks: the exporter's symbolic
    # simplification turned 4 * (k + 1 // k) into 4 * k + 4 // k, a wrong graph. `multiple` is
    # a Python int here, so a multiple of 1 adds no rounding to the graph at all.
    rounded = n if multiple == 1 else multiple * ((n + multiple - 1) // multiple)
    return cast(int, torch.sym_max(minimum, rounded))


def _pad_index(n: int, device: torch.device, multiple: int, minimum: int) -> tuple[Tensor, Tensor]:
    """Source row/column for each padded position: (reflect, replicate), each (padded_size,)."""
    idx = torch.arange(padded_size(n, multiple, minimum), device=device)
    reflect = torch.where(idx < n, idx, 2 * (n - 1) - idx)
    return reflect, idx.clamp(max=n - 1)


def pad_to_multiple(images: Tensor, multiple: int = 4, minimum: int = 8) -> Tensor:
    """Pad (B, C, H, W) on the bottom and right to `padded_size` (H) × `padded_size` (W), with
    `TransformerNet`'s rule by default (a multiple of 4, at least 8).

    Reflection padding, or edge replication when an image is too small to reflect (a pad as long
    as the side). The padding is an index gather chosen with `torch.where` rather than an `if`
    around `F.pad`, so one graph serves every size in TorchScript and ONNX; both choices are
    pure copies, bit-identical to ``F.pad(mode="reflect"/"replicate")``.
    """
    h, w = images.shape[2], images.shape[3]
    reflect_h, replicate_h = _pad_index(h, images.device, multiple, minimum)
    reflect_w, replicate_w = _pad_index(w, images.device, multiple, minimum)
    # Reflect only when both pads are shorter than their sides, i.e. when no reflected index
    # falls below 0; otherwise replicate both.
    can_reflect = (reflect_h.min() >= 0) & (reflect_w.min() >= 0)
    rows = torch.where(can_reflect, reflect_h, replicate_h)
    cols = torch.where(can_reflect, reflect_w, replicate_w)
    padded = images.index_select(2, rows).index_select(3, cols)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        # index_select returns NCHW: keep a channels-last batch channels-last for the convs.
        padded = padded.contiguous(memory_format=torch.channels_last)
    return padded


class PadCrop(nn.Module):
    """`net` on (B, 3, H, W) images of any H, W ≥ 1: `pad_to_multiple`, run, crop the output
    to (B, 3, H·scale, W·scale).

    Args:
        net: A `TransformerNet` or `SuperResolutionNet` (or a traced/scripted/compiled one: then
            give `rule`).
        rule: What the network takes and gives; None: `SizeRule.of(net)`. Stored as constants,
            so a scripted `PadCrop` is one graph for every size.
    """

    __constants__ = ("multiple", "minimum", "scale")

    def __init__(self, net: nn.Module, rule: SizeRule | None = None) -> None:
        super().__init__()
        self.net = net
        rule = rule or SizeRule.of(net)
        self.multiple, self.minimum, self.scale = rule.multiple, rule.minimum, rule.scale

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("expected (B, 3, H, W) images")
        h, w = images.shape[2], images.shape[3]
        out = self.net(pad_to_multiple(images, self.multiple, self.minimum))
        return out[:, :, : h * self.scale, : w * self.scale]


class StylePadCrop(nn.Module):
    """`PadCrop` for a multi-style network: ``forward(images, style_weights)`` with (B, N)
    weights, one row per image (one-hot to pick a style, a convex row to blend)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor, style_weights: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("expected (B, 3, H, W) images")
        h, w = images.shape[2], images.shape[3]
        return self.net(pad_to_multiple(images), style_weights)[:, :, :h, :w]

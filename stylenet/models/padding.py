"""Any image size in, the same size out.

`TransformerNet` needs H and W divisible by 4 (two stride-2 downsamplings, two ×2 upsamplings) and
at least 8 (its 9×9 conv reflection-pads by 4). `pad_to_multiple` reflect-pads the bottom and right
edges up to that, and `PadCrop` crops the output back, so every path (eager, tiles, TorchScript and
ONNX exports) pads the same way.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

__all__ = ["PadCrop", "pad_to_multiple", "padded_size"]


def padded_size(n: int) -> int:
    """Smallest multiple of 4 that is ≥ max(n, 8): what `pad_to_multiple` pads a side of n to.

    Literals, not module constants: TorchScript cannot read Python globals.
    """
    if torch.jit.is_scripting():
        return max(8, n + (-n) % 4)
    return _symbolic_padded_size(n)


@torch.jit.unused
def _symbolic_padded_size(n: int) -> int:
    # torch.export: sym_max keeps the size symbolic (a SymInt) where a Python max() would
    # specialize on the example input. Avoid cleverer integer tricks: the exporter's symbolic
    # simplification turned 4 * (k + 1 // k) into 4 * k + 4 // k, a wrong graph.
    return cast(int, torch.sym_max(8, 4 * ((n + 3) // 4)))


def _pad_index(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source row/column for each padded position: (reflect, replicate), each (padded_size,)."""
    idx = torch.arange(padded_size(n), device=device)
    reflect = torch.where(idx < n, idx, 2 * (n - 1) - idx)
    return reflect, idx.clamp(max=n - 1)


def pad_to_multiple(images: Tensor) -> Tensor:
    """Pad (B, C, H, W) on the bottom and right to `padded_size` (H) × `padded_size` (W).

    Reflection padding, or edge replication when an image is too small to reflect (a pad as long
    as the side). The padding is an index gather chosen with `torch.where` rather than an `if`
    around `F.pad`, so one graph serves every size in TorchScript and ONNX; both choices are
    pure copies, bit-identical to ``F.pad(mode="reflect"/"replicate")``.
    """
    h, w = images.shape[2], images.shape[3]
    reflect_h, replicate_h = _pad_index(h, images.device)
    reflect_w, replicate_w = _pad_index(w, images.device)
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
    """`net` on (B, 3, H, W) images of any H, W ≥ 1: `pad_to_multiple`, run, crop back.

    Args:
        net: A `TransformerNet` (or a traced/scripted one).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("expected (B, 3, H, W) images")
        h, w = images.shape[2], images.shape[3]
        return self.net(pad_to_multiple(images))[:, :, :h, :w]


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

"""Exact rewrites of a network's slowest layers, for inference engines.

`inference_form(net)` is a copy of a `TransformerNet` or `SuperResolutionNet` that computes the
same function with fewer operations where ONNX Runtime's CPU kernels are slow. The ONNX export
(`stylenet.inference.export`) writes this form; training and the eager backend keep the plain
network. Two rewrites, each the same sum of products in another order (outputs agree with the
plain network to float32 rounding, about 1e-6 on [0, 1] images):

- **Upsample → 3×3 conv as four 2×2 convs** (`SubPixelConvLayer`). After a nearest ×2 upsample
  every 2×2 block of pixels is one input pixel, so each output phase (row and column parity) of
  the 3×3 conv sees only 2×2 distinct input pixels: its taps add up in pairs. One 2×2 conv with
  4× the output channels at the low resolution, then a depth-to-space, replaces the upsample,
  the reflection pad at the high resolution and a 3×3 conv at the high resolution: 16 instead of
  36 multiply-adds per output pixel and channel pair. The reflection pad of the upsampled image
  is the upsample of an edge-replicated one (a pad of 1 reflects onto the pixel's own twin), so
  the low-resolution pad replicates. This is the sub-pixel convolution of Shi et al. 2016
  ("Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional
  Neural Network"), with weights derived from the trained conv instead of learned.
- **The output conv on a space-to-depth input** (`SpaceToDepthConvLayer`). The last 9×9 conv has
  3 output channels; ONNX Runtime's blocked (NCHWc) convolution rounds output channels up to its
  SIMD width (16 with AVX-512), so that conv costs about 5× its share of the arithmetic. On the
  2×2 space-to-depth of its padded input it is a 5×5 conv with 12 output channels (one per
  channel and output phase), which fills the blocks. The extra taps are zeros (25·4 positions for
  81 weights).

What each rewrite saves, measured: README, "Exports: TorchScript and ONNX" and "Inference speed".
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenet.models.superres import SuperResolutionNet
from stylenet.models.transformer import ConvLayer, TransformerNet, UpsampleConvLayer

__all__ = ["SpaceToDepthConvLayer", "SubPixelConvLayer", "inference_form"]

# Output convs with at most this many channels are computed on a space-to-depth input: below a
# SIMD block, the blocked convolution wastes most of its arithmetic on padding channels.
FEW_OUTPUT_CHANNELS = 4


def _pair_taps(weight: Tensor, dim: int) -> Tensor:
    """3 taps (w0, w1, w2) along `dim` → the 2×2 phase taps stacked as 4: phase 0 sees
    (w0, w1 + w2) on input rows (i − 1, i), phase 1 sees (w0 + w1, w2) on rows (i, i + 1)."""
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack([w0, w1 + w2, w0 + w1, w2], dim)


class SubPixelConvLayer(nn.Module):
    """`UpsampleConvLayer` with a 3×3 stride-1 conv, computed at the low resolution: replicate
    pad 1 → 2×2 conv with 4× the channels → depth-to-space → crop 1 on each side.

    Output phase (a, b) of pixel (i, j) is the conv output at (i + a, j + b): sub-pixel 0 of the
    depth-to-space holds phase 1 of the pixel before and sub-pixel 1 holds phase 0, so a crop of
    one row and column puts every phase in place.
    """

    weight: Tensor
    bias: Tensor

    def __init__(self, layer: UpsampleConvLayer) -> None:
        super().__init__()
        conv = layer.conv
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.bias is None:
            raise ValueError(
                f"SubPixelConvLayer rewrites a 3x3 stride-1 conv with bias, got {conv}"
            )
        weight = conv.weight.detach()
        out_ch, in_ch = weight.shape[:2]
        taps = _pair_taps(_pair_taps(weight, 2), 3).reshape(out_ch, in_ch, 2, 2, 2, 2)
        # taps[o, i, row phase, row tap, column phase, column tap]; depth-to-space channel
        # o·4 + 2·sub_row + sub_col holds phase 1 − sub on each axis.
        phases = taps.flip(2, 4).permute(0, 2, 4, 1, 3, 5)  # (o, sub_row, sub_col, i, 2, 2)
        self.register_buffer("weight", phases.reshape(out_ch * 4, in_ch, 2, 2).contiguous())
        self.register_buffer("bias", conv.bias.detach().repeat_interleave(4))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.weight, self.bias)
        return F.pixel_shuffle(y, 2)[:, :, 1 : 2 * h + 1, 1 : 2 * w + 1]


class SpaceToDepthConvLayer(nn.Module):
    """`ConvLayer` with an odd k×k stride-1 conv, on inputs of even height and width: reflection
    pad k // 2 → 2×2 space-to-depth → (k // 2 + 1)² conv with 4× the output channels →
    depth-to-space.

    Output pixel (2i + a, 2j + b) reads padded pixel (2i + a + kh, 2j + b + kw) =
    space-to-depth pixel (i + m, j + n) at parity (p, q) with kh = 2m + p − a, kw = 2n + q − b;
    positions where kh or kw fall outside the kernel hold zeros.
    """

    weight: Tensor
    bias: Tensor

    def __init__(self, layer: ConvLayer) -> None:
        super().__init__()
        conv = layer.conv
        k = conv.kernel_size[0]
        if conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.bias is None:
            raise ValueError(
                f"SpaceToDepthConvLayer rewrites an odd square stride-1 conv with bias, got {conv}"
            )
        weight = conv.weight.detach()
        out_ch, in_ch = weight.shape[:2]
        self.pad = k // 2
        taps = self.pad + 1
        # (out, a, b, p, q, in, m, n): output channel o·4 + 2a + b (depth-to-space), input
        # channel (2p + q)·in + c (the concatenated parities below).
        phases = weight.new_zeros(out_ch, 2, 2, 2, 2, in_ch, taps, taps)
        for a, b, p, q in itertools.product((0, 1), repeat=4):
            for m, n in itertools.product(range(taps), repeat=2):
                kh, kw = 2 * m + p - a, 2 * n + q - b
                if 0 <= kh < k and 0 <= kw < k:
                    phases[:, a, b, p, q, :, m, n] = weight[:, :, kh, kw]
        self.register_buffer(
            "weight", phases.reshape(out_ch * 4, in_ch * 4, taps, taps).contiguous()
        )
        self.register_buffer("bias", conv.bias.detach().repeat_interleave(4))

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        # Strided slices and a concat rather than pixel_unshuffle: ONNX Runtime fuses these into
        # one SpaceToDepth, where the exporter writes pixel_unshuffle as a slow 6-D transpose.
        x = torch.cat([x[:, :, p::2, q::2] for p in (0, 1) for q in (0, 1)], 1)
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias), 2)


def inference_form(net: TransformerNet | SuperResolutionNet) -> nn.Module:
    """A copy of `net` (eval mode, its parameters frozen) with every upsample → 3×3 conv as a
    `SubPixelConvLayer` and its output conv as a `SpaceToDepthConvLayer`; `net` is untouched.

    The output conv's input always has even sides: a `TransformerNet` takes multiples of 4, and a
    `SuperResolutionNet`'s output conv runs after at least one ×2 upsample.
    """
    form = copy.deepcopy(net).eval().requires_grad_(False)
    for parent in list(form.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, UpsampleConvLayer):
                setattr(parent, name, SubPixelConvLayer(child))
    parent, name = (form.decoder, "2") if isinstance(form, TransformerNet) else (form, "tail")
    output_conv = getattr(parent, name)
    assert isinstance(output_conv, ConvLayer)
    if output_conv.conv.out_channels <= FEW_OUTPUT_CHANNELS:
        setattr(parent, name, SpaceToDepthConvLayer(output_conv))
    return form

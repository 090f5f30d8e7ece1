"""Post-processing of a network's output against its input: colour preservation and strength
(style transfer), histogram matching (super-resolution)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from stylenet.errors import ConfigError

# Rows per band when `match_histograms_uint8` counts and rewrites a large image (bounded copies).
_BAND_ROWS = 512

# ITU-R BT.601 RGB → YCbCr (JPEG's full-range form without the 0.5 offset on Cb/Cr).
_RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)


def _mix(images: Tensor, matrix: Tensor) -> Tensor:
    # (3, 3) × (B, 3, H, W) over the channel dim.
    return torch.einsum("ij,bjhw->bihw", matrix.to(images), images)


def preserve_color(stylized: Tensor, photo: Tensor) -> Tensor:
    """Luminance-only style transfer: the stylized image's luma (Y) with the photo's chroma
    (Cb, Cr), as in Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer".

    Args:
        stylized: (B, 3, H, W) in [0, 1].
        photo: (B, 3, H, W) in [0, 1], the network's input.
    """
    y = _mix(stylized.float(), _RGB_TO_YCBCR)[:, :1]
    cbcr = _mix(photo.float(), _RGB_TO_YCBCR)[:, 1:]
    rgb = _mix(torch.cat([y, cbcr], dim=1), torch.linalg.inv(_RGB_TO_YCBCR))
    return rgb.clamp(0, 1).to(stylized.dtype)


def check_strength(strength: float) -> None:
    """Refuse a stylization strength outside [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be in [0, 1], got {strength}")


def blend(stylized: Tensor, photo: Tensor, strength: float) -> Tensor:
    """Pixel-space interpolation: 0 gives the photo, 1 the full stylization."""
    check_strength(strength)
    if strength == 1.0:
        return stylized
    return torch.lerp(photo.to(stylized.dtype), stylized, strength)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """``numpy.interp``: piecewise-linear through (xp, fp), xp increasing, held constant outside
    [xp[0], xp[-1]]; all 1-D."""
    if xp.numel() == 1:
        return fp.expand_as(x)
    # (N,) index of the segment [xp[i-1], xp[i]] holding each x
    i = torch.searchsorted(xp, x, right=True).clamp(1, xp.numel() - 1)
    x0, x1, y0, y1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    t = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)


def _match_channel(source: Tensor, template: Tensor) -> Tensor:
    """`source` (any shape) with the empirical CDF of `template`'s values: each distinct source
    value goes to the template quantile at its own quantile (linear between template values)."""
    _, inverse, counts = torch.unique(source.flatten(), return_inverse=True, return_counts=True)
    t_values, t_counts = torch.unique(template.flatten(), return_counts=True)
    quantiles = counts.cumsum(0).to(torch.float64) / source.numel()
    t_quantiles = t_counts.cumsum(0).to(torch.float64) / template.numel()
    matched = _interp(quantiles, t_quantiles, t_values.to(torch.float64))
    return matched[inverse].view_as(source)


def match_histograms(image: Tensor, reference: Tensor) -> Tensor:
    """Each channel of `image` given the histogram of the same channel of `reference`.

    Johnson et al. 2016, Sec. 4.2: "As a post-processing step, we perform histogram matching
    between our network output and the low-resolution input": `image` is the super-resolved
    output, `reference` its low-resolution input (sizes may differ: the match is of normalized
    CDFs). Per RGB channel and per image; the algorithm of
    ``skimage.exposure.match_histograms(image, reference, channel_axis=...)`` for float images
    (tests check it), in float64.

    Args:
        image: (3, H, W) or (B, 3, H, W) in [0, 1].
        reference: (3, h, w) or (B, 3, h, w), the same batch and channels.

    Returns:
        `image`'s shape and dtype; every value is in the range of `reference`'s values.
    """
    if image.dim() not in (3, 4) or image.dim() != reference.dim():
        raise ValueError(
            "match_histograms takes (3, H, W) or (B, 3, H, W) images and references of the same "
            f"rank; got {tuple(image.shape)}, {tuple(reference.shape)}"
        )
    if image.shape[:-2] != reference.shape[:-2]:
        raise ValueError(
            f"image {tuple(image.shape)} and reference {tuple(reference.shape)} differ in batch "
            "or channels"
        )
    source = image.reshape(-1, *image.shape[-2:])  # (B·C, H, W)
    template = reference.reshape(-1, *reference.shape[-2:])
    matched = torch.stack([_match_channel(s, t) for s, t in zip(source, template, strict=True)])
    return matched.view(image.shape).to(image.dtype)


def match_histograms_uint8(image: np.ndarray, reference: np.ndarray) -> None:
    """`match_histograms` of 8-bit RGB images, in place: `image` (H, W, 3) uint8 becomes what
    ``float_to_uint8(match_histograms(image / 255, reference / 255))`` would give, through one
    256-entry lookup table per channel, counted and applied in bands of rows, so a ×4 upscale of
    a 12 MP photo (576 MB) is matched without a float copy of it.

    Args:
        image: (H, W, 3) uint8, written in place (a writable array).
        reference: (h, w, 3) uint8, e.g. the low-resolution input.
    """
    if image.dtype != np.uint8 or reference.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {image.dtype} and {reference.dtype}")
    if image.ndim != 3 or reference.ndim != 3 or image.shape[2] != 3 or reference.shape[2] != 3:
        raise ValueError(
            f"expected (H, W, 3) images, got {tuple(image.shape)} and {tuple(reference.shape)}"
        )
    # The float32 values uint8_to_float gives, as match_histograms reads them (in float64).
    levels = (torch.arange(256, dtype=torch.float32) / 255.0).double()
    tables = []
    for c in range(3):
        counts = np.zeros(256, np.int64)
        for top in range(0, image.shape[0], _BAND_ROWS):
            counts += np.bincount(image[top : top + _BAND_ROWS, :, c].ravel(), minlength=256)
        t_counts = torch.from_numpy(np.bincount(reference[..., c].ravel(), minlength=256))
        source = torch.from_numpy(counts)
        # As `_match_channel`: each level present in the image goes to the reference's value at
        # the same quantile (the levels absent from either are not values of it).
        present, t_present = source > 0, t_counts > 0
        quantiles = source.cumsum(0)[present].to(torch.float64) / source.sum()
        t_quantiles = t_counts.cumsum(0)[t_present].to(torch.float64) / t_counts.sum()
        matched = _interp(quantiles, t_quantiles, levels[t_present]).float()
        table = torch.zeros(256, dtype=torch.uint8)
        # float_to_uint8's rounding, on match_histograms's float32 result.
        table[present] = matched.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        tables.append(table.numpy())
    for top in range(0, image.shape[0], _BAND_ROWS):
        band = image[top : top + _BAND_ROWS]  # a view: written in place
        for c in range(3):
            band[..., c] = tables[c][band[..., c]]

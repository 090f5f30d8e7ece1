"""Low-resolution training inputs for super-resolution, as Johnson et al. 2016 made them.

Sec. 4.2: "prepare low-resolution inputs by blurring with a Gaussian kernel of width σ = 1.0 and
downsampling with bicubic interpolation". We read "width" as the standard deviation and follow it
literally: a Gaussian blur with σ = 1.0 px (at the high resolution), then plain bicubic
interpolation at the low-resolution pixel centres (``F.interpolate(..., antialias=False)``),
without a second antialiasing filter: the blur is the low-pass filter, and the paper names no
other (its SR code was not released). This differs from MATLAB's ``imresize``, the usual SR
benchmarks' degradation, which antialiases with a cubic kernel stretched by the factor and has no
Gaussian; at ×8 a σ = 1 blur leaves some aliasing that ``imresize`` would remove.

Deterministic: the blur is fixed, so a crop always gives the same low-resolution input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BLUR_SIGMA", "BLUR_TRUNCATE", "degrade", "gaussian_blur"]

BLUR_SIGMA = 1.0  # Johnson et al. 2016, Sec. 4.2
# Taps out to 4σ either side (9 at σ = 1), scipy.ndimage.gaussian_filter's default truncate;
# the weight left beyond is 6e-5.
BLUR_TRUNCATE = 4.0


def gaussian_blur(images: Tensor, sigma: float = BLUR_SIGMA) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W), reflect-padded (edge pixel not repeated: OpenCV's
    default border, ``scipy.ndimage``'s ``mode="mirror"``); H and W must exceed the radius."""
    radius = int(BLUR_TRUNCATE * sigma + 0.5)  # scipy.ndimage's radius for this truncate
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    taps = taps / taps.sum()  # (2r+1,)
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return F.conv2d(out, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)


def degrade(hr: Tensor, scale: int) -> Tensor:
    """The paper's low-resolution input for a high-resolution image (module docstring).

    Args:
        hr: (B, 3, H, W) or (3, H, W) float in [0, 1]; H and W multiples of `scale` and larger
            than the blur radius (4 px).
        scale: Downsampling factor ≥ 1 (4 or 8 in the paper).

    Returns:
        (B, 3, H / scale, W / scale) or (3, H / scale, W / scale), clamped to [0, 1] (bicubic
        interpolation overshoots at edges), in `hr`'s dtype.

    Raises:
        ValueError: A shape, dtype or scale it cannot take.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if not hr.is_floating_point():
        raise ValueError(f"degrade takes float images in [0, 1], got {hr.dtype}")
    if hr.dim() not in (3, 4) or hr.shape[-3] != 3:
        raise ValueError(f"degrade takes (B, 3, H, W) or (3, H, W), got {tuple(hr.shape)}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"H and W must be multiples of scale={scale}, got {h}×{w}")
    batch = hr if hr.dim() == 4 else hr.unsqueeze(0)
    blurred = gaussian_blur(batch)
    # Bicubic at the centres of the low-resolution pixels (half-pixel convention, a = -0.75),
    # no antialiasing: the Gaussian above is the low-pass filter.
    lr = F.interpolate(
        blurred, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=False
    ).clamp(0.0, 1.0)
    return lr if hr.dim() == 4 else lr.squeeze(0)

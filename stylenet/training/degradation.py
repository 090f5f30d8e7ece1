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

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from stylenet.errors import ConfigError
from stylenet.models import SuperResolutionNet

__all__ = [
    "BLUR_SIGMA",
    "BLUR_TRUNCATE",
    "SuperResolutionPairs",
    "check_superres_inputs",
    "degrade",
    "gaussian_blur",
]

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


class SuperResolutionPairs(Dataset[tuple[Tensor, Tensor]]):
    """(low-res input, high-res target) pairs made from a dataset of high-resolution crops.

    Each item is ``(degrade(hr, scale), hr)``: (3, S / scale, S / scale) and (3, S, S) for the
    (3, S, S) crops of e.g. `PhotoFolder` (Johnson et al. 2016, Sec. 4.2: 288×288 crops).

    Args:
        crops: Dataset of (3, S, S) float crops in [0, 1]; its ``image_size`` attribute, where
            it has one, is checked up front, and every crop's size as it is read.
        scale: Upsampling factor of the network (4 or 8 in the paper).

    Raises:
        ConfigError: S is not a multiple of `scale`, or S / scale is under the network's minimum
            input side (the message names ``data.image_size`` and ``scale``).
    """

    def __init__(self, crops: Dataset[Tensor], *, scale: int) -> None:
        if scale < 1:
            raise ConfigError(f"scale must be >= 1, got {scale}")
        self.crops = crops
        self.scale = scale
        image_size = getattr(crops, "image_size", None)
        if isinstance(image_size, int):
            self._check_size(image_size, image_size)

    def _check_size(self, h: int, w: int) -> None:
        s = self.scale
        if h % s or w % s:
            size = h if h == w else f"{h}×{w}"
            raise ConfigError(
                f"data.image_size={size} is not a multiple of scale={s}: the high-resolution "
                f"crops must divide into {s}×{s} blocks (e.g. data.image_size="
                f"{max(s * math.ceil(min(h, w) / s), s * SuperResolutionNet.min_side)})"
            )
        if min(h, w) // s < SuperResolutionNet.min_side:
            raise ConfigError(
                f"data.image_size={min(h, w)} with scale={s} gives {min(h, w) // s}-px "
                f"low-resolution inputs; the network needs at least {SuperResolutionNet.min_side}"
                f" (data.image_size >= {s * SuperResolutionNet.min_side})"
            )

    def __len__(self) -> int:
        return len(self.crops)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        hr = self.crops[index]
        self._check_size(hr.shape[-2], hr.shape[-1])
        return degrade(hr, self.scale), hr


def check_superres_inputs(cfg: Any) -> None:
    """``task=superres``'s input check (``task.check_inputs``): the scale is one the network
    takes and the crops divide into low-resolution inputs it can run on, before anything is
    built.

    Raises:
        ConfigError: Naming ``scale`` or ``data.image_size`` / ``data.val_image_size``.
    """
    scale = cfg.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2 or scale & (scale - 1):
        raise ConfigError(f"scale={scale}: must be a power of 2 >= 2 (the paper trains 4 and 8)")
    data = cfg.get("data") or {}
    for key in ("image_size", "val_image_size"):
        size = data.get(key)
        if isinstance(size, int):
            try:
                SuperResolutionPairs([], scale=scale)._check_size(size, size)
            except ConfigError as err:
                raise ConfigError(str(err).replace("data.image_size", f"data.{key}")) from None

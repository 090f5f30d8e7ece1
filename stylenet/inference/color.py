"""Post-processing of a stylized image against its photo: colour preservation and strength."""

from __future__ import annotations

import torch
from torch import Tensor

from stylenet.errors import ConfigError

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

"""Known camera motions of an image batch, for the stability terms and the temporal metric.

A motion is an affine map in `torch.nn.functional.affine_grid`'s normalized coordinates
((-1, -1) and (1, 1) are the corners of the image), so one `theta` moves a low-res input and its
high-res output alike. `warp` resamples an image batch under it and says which output pixels
saw the image (the rest came from outside it).

    theta = random_motion(4, max_shift=0.03, max_zoom=0.03, max_angle=2.0, device=x.device)
    moved, visible = warp(x, theta)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def motion_matrix(shift: Tensor, zoom: Tensor, angle: Tensor, aspect: float = 1.0) -> Tensor:
    """(B, 2, 3) affine `theta`s of a camera that moves by `shift`, zooms by `zoom` and turns by
    `angle` about the image centre.

    The returned theta maps each pixel of the *new* frame to where it was in the old one (what
    `affine_grid` wants), so ``warp(old, theta)`` is the new frame.

    Args:
        shift: (B, 2) camera translation (x, y) as fractions of the half-width/half-height
            (normalized units: 0.02 at 320 px wide is 3.2 px).
        zoom: (B,) scale factor: > 1 zooms in (things look larger in the new frame).
        angle: (B,) camera rotation in radians (counter-clockwise).
        aspect: Width / height of the images, so that a rotation turns pixels, not the
            normalized square.
    """
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # In pixel-proportional coordinates (x scaled by the aspect), rotate and scale, then shift.
    row0 = torch.stack([cos, -sin / aspect, shift[:, 0]], dim=1)
    row1 = torch.stack([sin * aspect, cos, shift[:, 1]], dim=1)
    return torch.stack([row0, row1], dim=1)


def random_motion(
    batch: int,
    *,
    max_shift: float,
    max_zoom: float,
    max_angle: float,
    aspect: float = 1.0,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, 2, 3) random small camera motions, each parameter uniform in its range.

    Args:
        batch: Number of motions.
        max_shift: Largest translation along each axis, as a fraction of the image side
            (0.03: 3.8 px at 128 px).
        max_zoom: Largest relative zoom in or out (0.03: a scale in [0.97, 1.03]).
        max_angle: Largest rotation, in degrees.
        aspect: Width / height of the images.
        device: Where the matrices live.
        generator: Random source (default: torch's global one).
    """
    u = torch.rand(batch, 4, device=device, generator=generator) * 2 - 1  # in [-1, 1)
    shift = u[:, :2] * (2 * max_shift)  # normalized units span 2 per side
    zoom = 1 + u[:, 2] * max_zoom
    angle = u[:, 3] * math.radians(max_angle)
    return motion_matrix(shift, zoom, angle, aspect)


def warp(images: Tensor, theta: Tensor, *, padding: str = "reflection") -> tuple[Tensor, Tensor]:
    """Resample `images` (B, C, H, W) under the motions `theta` (B, 2, 3): bilinear,
    `align_corners=False`.

    Returns:
        (moved, visible): the moved images, and a (B, 1, H, W) float mask that is 1 where the
        pixel was interpolated from pixels of the image alone (between its outermost pixel
        centres) and 0 where `padding` ("reflection", "border" or "zeros") filled it in.
    """
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    h, w = images.shape[-2:]
    # The outermost pixel centres lie at ±(1 - 1/side) in normalized units.
    margin = torch.tensor([1 - 1 / w, 1 - 1 / h], device=grid.device, dtype=grid.dtype) + 1e-5
    visible = (grid.abs() <= margin).all(dim=-1).unsqueeze(1).to(images.dtype)
    return moved, visible

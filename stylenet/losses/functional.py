"""Loss terms of Johnson et al. 2016 (Sec. 3.1-3.2) as pure functions on tensors.

All functions average over the batch, so loss weights do not depend on batch size.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix normalized by C·H·W (Johnson et al. 2016, Eq. 3).

    Args:
        features: (B, C, H, W) activations.

    Returns:
        (B, C, C) with G[b, i, j] = sum_hw F[b,i,h,w] F[b,j,h,w] / (C·H·W).
    """
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)  # (B, C, H*W)
    # Computed in fp32 even under autocast: sums over H*W terms overflow fp16 at high resolution.
    f = f.float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Feature reconstruction loss: ||φ(ŷ) - φ(y)||² / (C·H·W) (Johnson Eq. 2), batch-averaged."""
    diff = (features.float() - target.float()).flatten(1)
    return diff.pow(2).mean(dim=1).mean()


def style_loss(gram: Tensor, target_gram: Tensor, weights: Tensor | None = None) -> Tensor:
    """Style reconstruction loss of one layer: squared Frobenius distance of Gram matrices
    (Johnson Eq. 4), batch-averaged. `target_gram` (1, C, C) broadcasts over the batch;
    `weights` (B,) scale each image's distance (a per-style weight)."""
    per_image = (gram - target_gram).pow(2).sum(dim=(1, 2))
    return (per_image if weights is None else per_image * weights).mean()


def total_variation(images: Tensor) -> Tensor:
    """Squared total variation: the mean over pixels of squared horizontal plus squared vertical
    neighbour differences (the TV regularizer of Johnson Sec. 3.3, as in Mahendran & Vedaldi 2015
    with β = 2). Mean rather than sum keeps the weight independent of image size.

    Args:
        images: (B, C, H, W).
    """
    dh = images[..., 1:, :] - images[..., :-1, :]  # (B, C, H-1, W)
    dw = images[..., :, 1:] - images[..., :, :-1]  # (B, C, H, W-1)
    return dh.float().pow(2).mean() + dw.float().pow(2).mean()


def pixel_loss(images: Tensor, target: Tensor) -> Tensor:
    """Pixel loss: ||ŷ - y||² / (C·H·W) (Johnson Sec. 3.3), batch-averaged."""
    return (images.float() - target.float()).pow(2).mean()
